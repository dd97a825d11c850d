"""File formats: avatar volumes (tensors + JSON), images and animations, written atomically. (EG3D
snapshots are read by nofa.io.eg3d_pickle and converted by nofa.models.eg3d_import.)"""

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

__all__ = [
    "FORMAT",
    "VERSION",
    "Avatar",
    "AvatarFileError",
    "ImageFileError",
    "check_animation_path",
    "depth_to_rgb",
    "load_avatar",
    "load_image",
    "save_animation",
    "save_avatar",
    "save_image",
    "to_uint8",
]
