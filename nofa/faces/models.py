"""Optional dependencies of face analysis: dlib (the `dlib-bin` wheel) and the model files
the `face_recognition_models` package ships. Imported lazily so nofa works without them."""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

__all__ = ["MODEL_FILES", "FaceDependencyError", "model_path", "require_dlib"]

# name -> file inside face_recognition_models/models/
MODEL_FILES = {
    "landmarks68": "shape_predictor_68_face_landmarks.dat",
    "landmarks5": "shape_predictor_5_face_landmarks.dat",
    "recognition": "dlib_face_recognition_resnet_model_v1.dat",
    "cnn_detector": "mmod_human_face_detector.dat",
}


class FaceDependencyError(ImportError):
    """dlib or the face_recognition_models package is missing."""


def require_dlib():
    """Return the dlib module or raise FaceDependencyError naming the package to install."""
    try:
        import dlib
    except ImportError as e:
        raise FaceDependencyError(
            "face detection and landmarks need dlib: pip install dlib-bin==20.0.1.post1 "
            "(and face_recognition_models==0.3.0 for the model files)"
        ) from e
    return dlib


def model_path(name: str) -> Path:
    """Path of one of face_recognition_models' files (see MODEL_FILES for the names).

    The package's own helpers import `pkg_resources`, which current setuptools no longer
    ships, so the files are located through the import system instead of importing it.
    """
    if name not in MODEL_FILES:
        raise ValueError(f"model name must be one of {sorted(MODEL_FILES)}, got {name!r}")
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or spec.origin is None:
        raise FaceDependencyError(
            "the dlib face models come from the face_recognition_models package: "
            "pip install face_recognition_models==0.3.0"
        )
    path = Path(spec.origin).parent / "models" / MODEL_FILES[name]
    if not path.is_file():
        raise FaceDependencyError(
            f"face_recognition_models is installed but {path} is missing: reinstall it"
        )
    return path


@functools.cache
def load_model(name: str):
    """The dlib object for a model name (cached): shape predictors, recogniser, CNN detector, or
    'hog_detector' (built into dlib, no file)."""
    dlib = require_dlib()
    if name == "hog_detector":
        return dlib.get_frontal_face_detector()
    path = str(model_path(name))
    if name.startswith("landmarks"):
        return dlib.shape_predictor(path)
    if name == "recognition":
        return dlib.face_recognition_model_v1(path)
    return dlib.cnn_face_detection_model_v1(path)
