"""Eye/mouth boxes from 68 landmarks, the differentiable box crop, and the identity loss."""

from __future__ import annotations

import pytest
import torch

from nofa.models.arcface import IResNet
from nofa.train.boxes import crop_boxes, face_boxes, region_box
from nofa.train.identity import IdentityLoss, build_face_recognizer


def landmarks_with(
    mouth: tuple[float, float, float, float], eyes: tuple[float, float, float, float]
) -> torch.Tensor:
    """[1, 68, 2]: every point at the image centre except the mouth (48-67) and brow/eye
    (17-26, 36-47) points, spread over the given (x0, y0, x1, y1) extents."""
    lm = torch.full((1, 68, 2), 32.0)
    for idx, (x0, y0, x1, y1) in (
        (range(48, 68), mouth),
        (list(range(17, 27)) + list(range(36, 48)), eyes),
    ):
        idx = list(idx)
        t = torch.linspace(0, 1, len(idx))
        lm[0, idx, 0] = x0 + t * (x1 - x0)
        lm[0, idx, 1] = y0 + t.flip(0) * (y1 - y0)
    return lm


def test_region_boxes_margin_aspect_min_size_and_clamping():
    lm = landmarks_with(mouth=(24, 40, 40, 48), eyes=(16, 20, 48, 30))
    boxes = face_boxes(lm, 64)
    # mouth: 16 x 8 extent, + 25 % per side -> 24 x 12, squared -> 24 x 24 about the centre (32, 44)
    assert torch.allclose(boxes["mouth"], torch.tensor([[20.0, 32.0, 44.0, 56.0]]))
    # eyes: 32 x 10 -> 48 x 15, aspect 2:1 -> 48 x 24 about (32, 25)
    assert torch.allclose(boxes["eyes"], torch.tensor([[8.0, 13.0, 56.0, 37.0]]))
    # a closed mouth (a line) still gets a box of at least min_size * S
    flat = region_box(
        landmarks_with(mouth=(30, 44, 34, 44), eyes=(16, 20, 48, 30)), "mouth", 64, min_size=0.25
    )
    assert torch.allclose(flat[0, 2:] - flat[0, :2], torch.tensor([16.0, 16.0]))
    # near the border: shifted inside, size kept
    edge = region_box(landmarks_with(mouth=(50, 54, 62, 62), eyes=(16, 20, 48, 30)), "mouth", 64)
    assert edge[0, 0] >= 0 and edge[0, 1] >= 0 and edge[0, 2] <= 64 and edge[0, 3] <= 64
    assert torch.allclose(edge[0, 2:] - edge[0, :2], torch.tensor([18.0, 18.0]))
    # larger than the image: shrunk to the image, aspect kept
    big = region_box(landmarks_with(mouth=(0, 0, 64, 64), eyes=(16, 20, 48, 30)), "mouth", 64)
    assert torch.allclose(big, torch.tensor([[0.0, 0.0, 64.0, 64.0]]))
    with pytest.raises(ValueError, match=r"landmarks must be a tensor \[N, 68, 2\]"):
        region_box(torch.zeros(1, 5, 2), "mouth", 64)
    with pytest.raises(ValueError, match="region must be one of"):
        region_box(lm, "nose", 64)


def test_crop_boxes_samples_the_box_and_is_differentiable():
    # image value = x pixel coordinate of the pixel centre: a crop of [8, 16) x [0, 8) at 8 x 8 is
    # 8.5 .. 15.5
    x = (torch.arange(32.0) + 0.5).expand(1, 1, 32, 32).clone().requires_grad_(True)
    crop = crop_boxes(x, torch.tensor([[8.0, 0.0, 16.0, 8.0]]), (8, 8))
    assert torch.allclose(crop[0, 0, 3], torch.arange(8.0) + 8.5, atol=1e-5)
    crop.sum().backward()
    assert (
        x.grad is not None
        and x.grad[0, 0, :8, 8:16].sum() > 0
        and x.grad[0, 0, 16:].abs().sum() == 0
    )
    with pytest.raises(ValueError, match=r"boxes must be \[1, 4\]"):
        crop_boxes(x, torch.zeros(2, 4), (8, 8))


def test_identity_loss_zero_for_identical_images_and_bounded():
    loss = IdentityLoss(build_face_recognizer(random=True, seed=0))
    a = torch.rand(3, 3, 64, 64) * 2 - 1
    b = torch.rand(3, 3, 64, 64) * 2 - 1
    assert float(loss(a, a)) < 1e-5
    for p, t in ((a, b), (a, -a), (b, a.flip(-1))):
        v = float(loss(p, t))
        assert 0.0 <= v <= 2.0
    assert float(loss(a, b)) > 1e-3  # different faces are told apart
    p = a.clone().requires_grad_(True)
    loss(p, b).backward()
    assert p.grad is not None and p.grad.abs().sum() > 0
    assert not any(q.requires_grad for q in loss.net.parameters())  # the recogniser is frozen
    assert isinstance(loss.net, IResNet) and loss.crop(a).shape == (3, 3, 112, 112)


def test_identity_loss_needs_weights(tmp_path):
    with pytest.raises(FileNotFoundError, match="loss.arcface_weights"):
        build_face_recognizer("")
    with pytest.raises(FileNotFoundError, match="ArcFace weights not found"):
        build_face_recognizer(tmp_path / "backbone.pth")
    net = IResNet(layers=(1, 1, 1, 1), widths=(8, 8, 8, 8), num_features=16)
    torch.save(net.state_dict(), tmp_path / "backbone.pth")
    loaded = build_face_recognizer(tmp_path / "backbone.pth")
    assert torch.equal(loaded.fc.weight, net.fc.weight) and not loaded.training
