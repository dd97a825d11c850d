"""One photo -> EG3D-ready face: detection, 68 landmarks, aligned crop, camera label, preview."""

from __future__ import annotations

import dataclasses

import numpy as np

from .align import AlignedFace, align_face
from .camera import CameraFit, estimate_camera
from .detect import FaceDetection, detect_faces, find_face, landmarks68
from .photo import as_rgb8

__all__ = ["PreparedFace", "prepare_face", "preview_sheet"]


@dataclasses.dataclass
class PreparedFace:
    detection: FaceDetection  # in photo pixels
    aligned: AlignedFace  # crop, crop_to_photo, landmarks in the crop
    camera: CameraFit  # EG3D label of the crop


def prepare_face(
    image, size: int = 512, detector: str = "hog", name: str = "image", refine: int = 1
) -> PreparedFace:
    """Detect the (largest) face, align it to an EG3D crop [size, size] and estimate its camera.

    `refine` times, the 68 landmarks are detected again on a 512 px aligned crop (where dlib's
    predictor sees an upright face of a fixed size; averaged over jittered boxes and the
    mirror image, `crop_landmarks`) and the crop is rebuilt from them; the camera is fitted
    to those landmarks. detection.landmarks stay the first detection's.
    """
    img = as_rgb8(image, name)
    det = find_face(img, detector=detector, name=name)
    photo_lm = det.landmarks
    for _ in range(refine):
        # Re-run the predictor on the upright, normalised 512 crop and re-align from those
        # landmarks: dlib's points on a small or tilted face are noisier than on the crop.
        work = align_face(img, photo_lm, 512)
        lm = crop_landmarks(work.image)
        photo_lm = lm @ work.crop_to_photo[:2, :2].T + work.crop_to_photo[:2, 2]
    aligned = align_face(img, photo_lm, size)
    camera = estimate_camera(aligned.landmarks, size)
    return PreparedFace(det, aligned, camera)


# Where dlib's HOG box falls on a frontal face in the aligned crop (measured on the template
# head's frontal render, which is its own crop): used when the detector misses on the crop.
CROP_BOX = (0.217, 0.334, 0.740, 0.857)
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
        f"landmark fit rms {face.camera.rms_px:.1f} px (crop {face.aligned.size} px)",
        fill=(0, 0, 0),
    )
    dd.text((8, height - 18), "pitch > 0: camera below, looking up", fill=(90, 90, 90))
    sheet = Image.new("RGB", (3 * height, height), (255, 255, 255))
    for i, im in enumerate((canvas, crop, disc)):
        sheet.paste(im, (i * height, 0))
    return np.asarray(sheet)
