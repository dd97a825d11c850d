"""A test video of a face with known motion, and a random Deep3DFaceRecon checkpoint, shared by
tests/test_faces_video.py and tests/test_deep3d_prepare.py.

The video: astronaut() (public domain) moving smoothly on a canvas with sensor-like noise (so
that dlib's landmarks jitter as on a real video), one blank frame, H.264 through
imageio-ffmpeg. Its true landmarks are known: the reference landmarks of the still photo
carried by the known motion (`pose`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

W, H, FPS = 320, 240, 25
BLANK = 12  # the frame with no face


def base() -> np.ndarray:
    from skimage import data

    return data.astronaut()[:300, 60:360]


def pose(t: float) -> tuple[float, float, float]:
    """Scale and centre (x, y) of the 300 px photo on the canvas at time t (seconds)."""
    s = 0.62 + 0.03 * np.sin(2 * np.pi * 0.4 * t)
    return s, 160 + 18 * np.sin(2 * np.pi * 0.5 * t), 118 + 6 * np.cos(2 * np.pi * 0.3 * t)


def frame(t: float, rng: np.random.Generator) -> np.ndarray:
    from PIL import Image

    s, x, y = pose(t)
    # canvas point (u, v) -> photo point ((u - x) / s + 150, (v - y) / s + 150): sub-pixel exact
    a = (1 / s, 0, 150 - x / s, 0, 1 / s, 150 - y / s)
    im = Image.fromarray(base()).transform(
        (W, H), Image.AFFINE, a, Image.BILINEAR, fillcolor=(40, 60, 90)
    )
    noisy = np.asarray(im).astype(np.float32) + rng.normal(0, 10, (H, W, 3))
    return np.clip(noisy, 0, 255).astype(np.uint8)


def write_video(path, frames, fps) -> None:
    import imageio_ffmpeg

    w = imageio_ffmpeg.write_frames(
        str(path), (frames[0].shape[1], frames[0].shape[0]), fps=fps, quality=9
    )
    w.send(None)
    for f in frames:
        w.send(np.ascontiguousarray(f))
    w.close()


def make_face_video(d: Path) -> Path:
    """d/talk.mp4: 30 frames at 25 fps, frame BLANK without a face."""
    rng = np.random.default_rng(0)
    frames = [
        frame(i / FPS, rng) if i != BLANK else np.full((H, W, 3), 90, np.uint8) for i in range(30)
    ]
    write_video(d / "talk.mp4", frames, FPS)
    return d / "talk.mp4"


def make_deep3d_weights(d: Path) -> Path:
    """d/epoch_20.pth: a random Deep3DFaceRecon network in its checkpoint layout
    (tests/test_deep3d_net.py), outputs kept moderate."""
    from nofa.faces.deep3d_net import Deep3DReconNet

    torch.manual_seed(0)
    net = Deep3DReconNet()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.2, 0.6)  # keeps the outputs moderate
        for layer in net.final_layers:
            layer.weight.mul_(0.1)
    path = d / "epoch_20.pth"
    torch.save({"net_recon": net.state_dict(), "epoch": 20}, path)
    return path
