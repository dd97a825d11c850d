"""Eye and mouth boxes from the 68 dlib landmarks, and a differentiable crop-and-resize of
them (the local reconstruction loss, paper eq. 11; docs/training.md, "Eye and mouth boxes").

The paper takes the boxes from MTCNN's five points; nofa has the 68-point dlib layout of
every frame (nofa.faces, or the dataset's landmarks.npy), so a region's box is made from
its points:

    eyes:  points 17-26 (both brows) and 36-47 (both eyes)   aspect (width : height) 2 : 1
    mouth: points 48-67 (outer and inner lip contour)        aspect 1 : 1 (square)

1. the tight bounding box of the region's points (pixel coordinates, x right, y down);
2. grown by `margin` (0.25: a quarter of its width/height on every side), so the eye box
   also holds lids and brows and the mouth box the lips' surroundings and an open jaw;
3. its shorter side grown (about the same centre) to the region's aspect, so the crop is
   resized without distortion, and both sides to at least `min_size` (a fraction of the
   image side, 0.15) so a closed mouth or a shut eye does not give a sliver;
4. clamped into the image: a box larger than the image is shrunk to the image size (keeping
   the aspect), then shifted (not cut) to lie inside [0, S] x [0, S].

The box of the TARGET frame's landmarks crops both the target and the prediction: the
prediction is supervised where the target has its eyes and mouth.

`crop_boxes` samples a box to a fixed size with bilinear interpolation
(torch.nn.functional.grid_sample), differentiable with respect to the image; the image spans
[0, S] in continuous pixel coordinates (pixel i covers [i, i + 1)).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["REGIONS", "crop_boxes", "face_boxes", "region_box"]

# name -> (landmark indices, aspect width / height, output size (height, width) of a crop:
# at least 64 px high, what the LPIPS trunks need)
REGIONS: dict[str, tuple[tuple[int, ...], float, tuple[int, int]]] = {
    "eyes": (tuple(range(17, 27)) + tuple(range(36, 48)), 2.0, (64, 128)),
    "mouth": (tuple(range(48, 68)), 1.0, (64, 64)),
}


def _check_landmarks(landmarks: torch.Tensor) -> None:
    if (
        not isinstance(landmarks, torch.Tensor)
        or landmarks.dim() != 3
        or landmarks.shape[1:] != (68, 2)
    ):
        got = (
            list(landmarks.shape)
            if isinstance(landmarks, torch.Tensor)
            else type(landmarks).__name__
        )
        raise ValueError(
            f"landmarks must be a tensor [N, 68, 2] (dlib's 68 points, pixels), got {got}"
        )


def region_box(
    landmarks: torch.Tensor,
    region: str,
    image_size: int,
    margin: float = 0.25,
    min_size: float = 0.15,
) -> torch.Tensor:
    """Box of `region` ("eyes" | "mouth") for each face: landmarks [N, 68, 2] pixel coordinates
    in an image of `image_size` px -> boxes [N, 4] (x0, y0, x1, y1) in pixels, inside the image."""
    _check_landmarks(landmarks)
    if region not in REGIONS:
        raise ValueError(f"region must be one of {sorted(REGIONS)}, got {region!r}")
    if margin < 0 or not 0 < min_size <= 1:
        raise ValueError(f"margin must be >= 0 and min_size in (0, 1], got {margin}, {min_size}")
    idx, aspect, _ = REGIONS[region]
    pts = landmarks.detach().float()[:, list(idx)]
    lo, hi = pts.min(1).values, pts.max(1).values
    centre = (lo + hi) / 2
    w = (hi[:, 0] - lo[:, 0]) * (1 + 2 * margin)
    h = (hi[:, 1] - lo[:, 1]) * (1 + 2 * margin)
    w = torch.maximum(w, h * aspect)
    h = w / aspect
    s = float(image_size)
    floor_h = min_size * s / max(aspect, 1.0)  # the longer side is at least min_size * S
    h = h.clamp_min(floor_h)
    w = h * aspect
    scale = torch.minimum(s / w, s / h).clamp_max(1.0)  # larger than the image: shrink, keep aspect
    w, h = w * scale, h * scale
    x0 = (centre[:, 0] - w / 2).clamp(0.0, None)
    y0 = (centre[:, 1] - h / 2).clamp(0.0, None)
    x0 = torch.minimum(x0, s - w)
    y0 = torch.minimum(y0, s - h)
    return torch.stack([x0, y0, x0 + w, y0 + h], 1)


def face_boxes(
    landmarks: torch.Tensor,
    image_size: int,
    regions: tuple[str, ...] = ("eyes", "mouth"),
    margin: float = 0.25,
    min_size: float = 0.15,
) -> dict[str, torch.Tensor]:
    """{region: boxes [N, 4]} for each of `regions` (see region_box)."""
    return {r: region_box(landmarks, r, image_size, margin, min_size) for r in regions}


def crop_boxes(images: torch.Tensor, boxes: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Crop box i of images [N, C, H, W] (boxes [N, 4] x0, y0, x1, y1 in pixels) and resize it
    to size (h, w) by bilinear sampling -> [N, C, h, w]; gradients flow to `images`."""
    if images.dim() != 4:
        raise ValueError(f"images must be [N, C, H, W], got {list(images.shape)}")
    if boxes.dim() != 2 or boxes.shape != (images.shape[0], 4):
        raise ValueError(
            f"boxes must be [{images.shape[0]}, 4] (x0, y0, x1, y1), got {list(boxes.shape)}"
        )
    n, _, hh, ww = images.shape
    oh, ow = int(size[0]), int(size[1])
    b = boxes.to(device=images.device, dtype=torch.float32)
    # centres of the output pixels in input pixel coordinates, then grid_sample's [-1, 1]
    # (align_corners=False: -1 and 1 are the outer edges of the image)
    ty = (torch.arange(oh, device=images.device, dtype=torch.float32) + 0.5) / oh
    tx = (torch.arange(ow, device=images.device, dtype=torch.float32) + 0.5) / ow
    ys = b[:, 1, None] + ty[None] * (b[:, 3] - b[:, 1])[:, None]
    xs = b[:, 0, None] + tx[None] * (b[:, 2] - b[:, 0])[:, None]
    gy = 2 * ys / hh - 1
    gx = 2 * xs / ww - 1
    grid = torch.stack([gx[:, None, :].expand(n, oh, ow), gy[:, :, None].expand(n, oh, ow)], -1)
    return F.grid_sample(
        images.float(), grid, mode="bilinear", padding_mode="border", align_corners=False
    )
