"""File formats: every nofa file (read and written by nofa.io.nofa_file), avatar volumes
(tensors + JSON), images and animations, written atomically. (EG3D snapshots are read by
nofa.io.eg3d_pickle and converted by nofa.models.eg3d_import.)"""

from .avatar import FORMAT, VERSION, Avatar, AvatarFileError, load_avatar, save_avatar
from .images import (
    ImageFileError,
    check_animation_path,
    depth_to_rgb,
    load_image,
    save_animation,
    save_image,
    to_uint8,
)
from .nofa_file import NofaFileError, NofaFileWarning

__all__ = [
    "FORMAT",
    "VERSION",
    "Avatar",
    "AvatarFileError",
    "ImageFileError",
    "NofaFileError",
    "NofaFileWarning",
    "check_animation_path",
    "depth_to_rgb",
    "load_avatar",
    "load_image",
    "save_animation",
    "save_avatar",
    "save_image",
    "to_uint8",
]
