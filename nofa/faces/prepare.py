"""One photo -> EG3D-ready face: detection, 68 landmarks, EG3D's crop, EG3D camera label,
preview."""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from .align import AlignedFace, align_face
from .camera import CameraFit, estimate_camera
from .detect import FaceDetection, detect_faces, find_face, landmarks68
from .eg3d_crop import eg3d_crop_transform
from .photo import as_rgb8, warp_affine

__all__ = ["PreparedFace", "prepare_face", "preview_sheet"]


@dataclasses.dataclass
class PreparedFace:
    detection: FaceDetection  # in photo pixels
    aligned: AlignedFace  # crop, crop_to_photo / photo_to_crop, landmarks in the crop
    camera: CameraFit  # EG3D label of the crop (and its confidence)


def prepare_face(
    image,
    size: int = 512,
    detector: str = "hog",
    name: str = "image",
    refine: int = 1,
    padding: str = "fade",
    on_unreliable: str = "warn",
) -> PreparedFace:
    """Detect the (largest) face, cut EG3D's crop [size, size] and estimate its camera.

    `refine` times, the 68 landmarks are detected again on a 512 px aligned crop turned so
    the eyes are level (where dlib's predictor sees an upright face of a fixed size;
    averaged over jittered boxes and the mirror image, `crop_landmarks`) and mapped back to
    the photo; the crop and the camera come from those landmarks. detection.landmarks stay
    the first detection's. padding: out-of-photo pixels of the crop ("fade" or "black",
    nofa.faces.eg3d_crop); on_unreliable: what to do when the camera cannot be trusted
    ("warn" naming `name`, "raise" UnreliablePoseError, "ignore").
    """
    img = as_rgb8(image, name)
    det = find_face(img, detector=detector, name=name)
    photo_lm = det.landmarks
    for _ in range(refine):
        # Re-run the predictor on an upright 512 crop: dlib's points on a small or tilted face
        # are noisier than on a level face of a fixed size (EG3D's crop keeps the roll).
        work, crop_to_photo = _upright_crop(img, photo_lm, 512)
        lm = crop_landmarks(work)
        photo_lm = lm @ crop_to_photo[:2, :2].T + crop_to_photo[:2, 2]
    aligned = align_face(img, photo_lm, size, padding=padding)
    camera = estimate_camera(photo_lm, img.shape[:2], name=name, on_unreliable=on_unreliable)
    return PreparedFace(det, aligned, camera)


def _upright_crop(
    img: np.ndarray, landmarks: np.ndarray, size: int
) -> tuple[np.ndarray, np.ndarray]:
    """EG3D's crop [size, size, 3] turned about its centre so the eyes are level (outside the
    photo: black), and its map [3, 3] from crop to photo pixels."""
    m = np.eye(3)
    m[:2] = eg3d_crop_transform(landmarks, img.shape[:2], size)
    eyes = landmarks[42:48].mean(0) - landmarks[36:42].mean(0)
    a = math.atan2(eyes[1], eyes[0])
    c = size / 2
    turn = np.array(
        [
            [math.cos(a), -math.sin(a), c - c * math.cos(a) + c * math.sin(a)],
            [math.sin(a), math.cos(a), c - c * math.sin(a) - c * math.cos(a)],
            [0, 0, 1],
        ]
    )
    crop_to_photo = np.linalg.inv(m) @ turn
    return warp_affine(img, crop_to_photo, (size, size), order=1, mode="constant"), crop_to_photo


# Where dlib's HOG box falls on a frontal face in EG3D's crop, in fractions of its side
# (measured on the astronaut's crop): used when the detector misses on the crop.
CROP_BOX = (0.186, 0.254, 0.791, 0.857)
# Relative offsets and scales of the detector box at which the predictor runs on the crop;
# its answers are averaged (see crop_landmarks).
BOX_JITTER = (
    (0.0, 0.0, 1.0),
    (0.06, 0.0, 1.0),
    (-0.06, 0.0, 1.0),
    (0.0, 0.06, 1.0),
    (0.0, -0.06, 1.0),
    (0.0, 0.0, 1.06),
    (0.0, 0.0, 0.94),
)


def crop_landmarks(crop: np.ndarray) -> np.ndarray:
    """The 68 landmarks [68, 2] of the face in the middle of an aligned crop [S, S, 3].

    dlib's predictor answers differently for slightly different boxes, and its detector's
    box moves in steps of its scale pyramid, so one prediction jitters by 1-2 px from one
    photo of a face to a shifted or rescaled copy of it. The predictor is run on boxes
    shifted by +-6 % of their side and scaled by 0.94 and 1.06 (and each on the mirror
    image, `landmarks68`) and the answers averaged: the mean is steadier than any one.
    """
    box = _crop_box(crop)
    centre, half = (box[:2] + box[2:]) / 2, (box[2:] - box[:2]) / 2
    boxes = [
        np.concatenate(
            [centre + 2 * half * (dx, dy) - half * k, centre + 2 * half * (dx, dy) + half * k]
        )
        for dx, dy, k in BOX_JITTER
    ]
    return np.mean([landmarks68(crop, b) for b in boxes], 0)


def _crop_box(crop: np.ndarray) -> np.ndarray:
    """The detector's box for the face in the middle of an aligned crop (or the usual place)."""
    s = crop.shape[0]
    faces = detect_faces(crop, upsample=0, rotations=())
    if faces:
        centre = np.array([s / 2, s * 0.6])
        return min(faces, key=lambda f: np.hypot(*((f.box[:2] + f.box[2:]) / 2 - centre))).box
    return np.array(CROP_BOX) * s


def preview_sheet(photo, face: PreparedFace, height: int = 384) -> np.ndarray:
    """uint8 [height, 3 * height, 3]: photo with landmarks and crop box | crop with its landmarks |
    the camera as a point on a yaw/pitch disc."""
    from PIL import Image, ImageDraw

    img = Image.fromarray(as_rgb8(photo, "photo"))
    k = height / max(img.size)
    left = img.resize((max(1, round(img.width * k)), max(1, round(img.height * k))), Image.BILINEAR)
    canvas = Image.new("RGB", (height, height), (255, 255, 255))
    canvas.paste(left, ((height - left.width) // 2, (height - left.height) // 2))
    off = np.array([(height - left.width) // 2, (height - left.height) // 2])
    d = ImageDraw.Draw(canvas)
    quad = face.aligned.quad * k + off
    d.line([tuple(p) for p in np.vstack([quad, quad[:1]])], fill=(0, 220, 0), width=2)
    d.line([tuple(quad[0]), tuple(quad[3])], fill=(255, 0, 0), width=3)  # top edge
    r = max(1.0, height / 250)
    for x, y in face.detection.landmarks * k + off:
        d.ellipse([x - r, y - r, x + r, y + r], fill=(255, 40, 40))
    crop = Image.fromarray(face.aligned.image).resize((height, height), Image.BILINEAR)
    dc = ImageDraw.Draw(crop)
    kc = height / face.aligned.size
    for x, y in face.aligned.landmarks * kc:
        dc.ellipse([x - r, y - r, x + r, y + r], fill=(40, 255, 40))
    disc = Image.new("RGB", (height, height), (255, 255, 255))
    dd = ImageDraw.Draw(disc)
    c, rad = height / 2, height * 0.4
    dd.ellipse([c - rad, c - rad, c + rad, c + rad], outline=(0, 0, 0))
    for deg in (-60, -30, 30, 60):  # grid every 30 degrees; full disc radius = 90 degrees
        dd.line([c + deg / 90 * rad, c - rad, c + deg / 90 * rad, c + rad], fill=(210, 210, 210))
        dd.line([c - rad, c + deg / 90 * rad, c + rad, c + deg / 90 * rad], fill=(210, 210, 210))
    dd.line([c, c - rad, c, c + rad], fill=(150, 150, 150))
    dd.line([c - rad, c, c + rad, c], fill=(150, 150, 150))
    # The disc is seen from the subject: yaw > 0 (camera towards the subject's left = image right).
    px, py = c + face.camera.yaw / 90 * rad, c + face.camera.pitch / 90 * rad
    dd.ellipse([px - 6, py - 6, px + 6, py + 6], fill=(220, 0, 0))
    dd.text(
        (8, 8),
        f"camera yaw {face.camera.yaw:+.1f} deg, pitch {face.camera.pitch:+.1f} deg",
        fill=(0, 0, 0),
    )
    dd.text(
        (8, 22),
        f"fit rms {face.camera.rms_px:.1f} px at 224, confidence {face.camera.confidence:.2f}",
        fill=(0, 0, 0),
    )
    for i, problem in enumerate(face.camera.problems):
        dd.text((8, 36 + 14 * i), f"unreliable: {problem[:60]}", fill=(200, 0, 0))
    dd.text((8, height - 18), "pitch > 0: camera below, looking up", fill=(90, 90, 90))
    sheet = Image.new("RGB", (3 * height, height), (255, 255, 255))
    for i, im in enumerate((canvas, crop, disc)):
        sheet.paste(im, (i * height, 0))
    return np.asarray(sheet)
