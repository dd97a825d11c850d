"""The NOFA++ networks: StyleGAN2 blocks, tri-plane generator, super-resolution, image
encoder, detail + fusion networks, deformation field, and the whole avatar model.

    from nofa.models import NOFAAvatar
    model = NOFAAvatar.from_preset("tiny")
    vol = model.reconstruct(image, camera)  # image [N, 3, 64, 64], camera [N, 25]
    out = model.animate(vol, alpha, beta, camera)  # out["image"], ["image_raw"], ["depth"]
"""

from .avatar import AvatarVolume, NOFAAvatar
from .deformation import DeformationField
from .detail import DetailNetwork, FusionNetwork, fuse
from .encoder import ImageEncoder
from .generator import SynthesisNetwork, TriplaneGenerator
from .mapping import MappingNetwork
from .presets import PRESETS, get_config
from .superres import SuperResolution

__all__ = [
    "AvatarVolume",
    "DeformationField",
    "DetailNetwork",
    "FusionNetwork",
    "ImageEncoder",
    "MappingNetwork",
    "NOFAAvatar",
    "PRESETS",
    "SuperResolution",
    "SynthesisNetwork",
    "TriplaneGenerator",
    "fuse",
    "get_config",
]
