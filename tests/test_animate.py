"""`nofa animate` and nofa.pipelines.animate: driving formats, MP4 (frames, fps, audio), PNGs,
cameras, smoothing, the demo animation, the benchmark command."""

from __future__ import annotations

import wave

import imageio.v2 as imageio
import numpy as np
import pytest
import scipy.io
import torch

from nofa.cli import main
from nofa.io import Avatar, save_avatar
from nofa.io.coeffs import CoeffFileError, save_deep3d, save_deep3d_folder, save_expression
from nofa.io.eg3d_labels import deep3d_to_eg3d_labels
from nofa.models import NOFAAvatar
from nofa.models.animatable import AnimatableAvatar, load_animatable, save_animatable
from nofa.models.model_file import save_model
from nofa.pipelines.animate import (
    CAMERA_MODES,
    AnimateOptions,
    animate,
    smooth_coeffs,
    write_demo_animation,
    write_png_frames,
    write_video,
)
from nofa.render import OSGDecoder, RenderOptions, default_label

imageio_ffmpeg = pytest.importorskip(
    "imageio_ffmpeg", reason="imageio-ffmpeg (pinned in requirements) missing"
)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("anim")
    torch.manual_seed(0)
    model = NOFAAvatar.from_preset("tiny").eval()
    # a non-zero deformation field, so that expressions visibly change the frames
    with torch.no_grad():
        model.deformation.d_weights[-1].normal_(0, 0.05)
    save_model(d / "model.nofa-model", model, preset="tiny")
    img = torch.rand(1, 3, 64, 64) * 2 - 1
    from PIL import Image

    Image.fromarray(((img[0].permute(1, 2, 0) + 1) * 127.5).round().byte().numpy()).save(
        d / "portrait.png"
    )
    av = AnimatableAvatar.from_model(model, img, default_label()[None], torch.randn(1, 80))
    save_animatable(d / "src.nofa-anim", av)
    dec = OSGDecoder(8, 16, 8)
    save_avatar(
        d / "demo.nofa-avatar",
        Avatar(
            torch.randn(1, 3, 8, 16, 16),
            dec.state_dict(),
            dec.config(),
            RenderOptions(coarse_samples=6, importance_samples=6),
        ),
    )
    rng = np.random.default_rng(0)
    c = (rng.standard_normal((5, 257)) * 0.3).astype(np.float32)
    c[:, 224:227] *= 0.3
    save_deep3d(d / "seq257.npy", c)
    save_deep3d_folder(d / "matdir", c)
    save_expression(d / "exp64.npy", c[:, 80:144])
    save_expression(
        d / "exp70.mat", np.concatenate([c[:, 80:144], c[:, 224:227], c[:, 254:257]], 1)
    )
    frames = d / "frames"
    frames.mkdir()
    for i in range(3):
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(frames / f"f{i}.png")
        save_deep3d(frames / "coeffs" / f"f{i}.mat", c[i : i + 1])
    with wave.open(str(d / "speech.wav"), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(
            (np.sin(np.arange(16000) * 2 * np.pi * 440 / 16000) * 8000).astype(np.int16).tobytes()
        )
    return d


@pytest.mark.parametrize(
    "drive,n", [("seq257.npy", 5), ("matdir", 5), ("exp64.npy", 5), ("exp70.mat", 5), ("frames", 3)]
)
def test_every_driving_format(files, drive, n):
    anim = animate(files / "src.nofa-anim", files / drive, AnimateOptions(batch=2))
    frames = list(anim)
    assert (
        len(anim) == n
        and len(frames) == n
        and frames[0].shape == (64, 64, 3)
        and frames[0].dtype == np.uint8
    )
    assert anim.fps == 25.0
    assert not np.array_equal(frames[0], frames[1])  # the expression moved the face


@pytest.mark.parametrize("case", ["width", "nan", "mat_nan", "frame_without_coeffs"])
def test_bad_driving_names_the_file(files, tmp_path, case):
    if case == "width":
        bad = tmp_path / "w.npy"
        np.save(bad, np.zeros((4, 65), np.float32))
        msg = r"w.npy.*\[4, 65\]"
    elif case == "nan":
        bad = tmp_path / "n.npy"
        a = np.zeros((4, 70), np.float32)
        a[2, 1] = np.nan
        np.save(bad, a)
        msg = "n.npy.*NaN"
    elif case == "mat_nan":
        save_deep3d_folder(tmp_path / "m", np.zeros((3, 257), np.float32))
        a = np.zeros((1, 257))
        a[0, 90] = np.nan
        scipy.io.savemat(tmp_path / "m" / "000002.mat", {"coeff": a})
        bad, msg = tmp_path / "m", "000002.mat.*NaN"
    else:
        (tmp_path / "fr").mkdir()
        imageio.imwrite(tmp_path / "fr" / "a.png", np.zeros((4, 4, 3), np.uint8))
        bad, msg = tmp_path / "fr", "a.png: driving frame without a coefficient file"
    with pytest.raises(CoeffFileError, match=msg):
        animate(files / "src.nofa-anim", bad)


def test_batched_stream_equals_frame_by_frame(files):
    opts = AnimateOptions(batch=3, camera="driving")
    anim = animate(files / "src.nofa-anim", files / "exp70.mat", opts)
    frames = list(anim)
    av = load_animatable(files / "src.nofa-anim")
    av.renderer.options = av.renderer.options.replace(deterministic=True)
    from nofa.io.coeffs import load_coeffs

    c = load_coeffs(files / "exp70.mat")
    cams = torch.from_numpy(deep3d_to_eg3d_labels(c.angle, c.trans))
    for i, f in enumerate(frames):
        with torch.no_grad():
            one = av.render(torch.from_numpy(c.exp[i : i + 1]), cams[i : i + 1])["image"][0]
        ref = ((one.clamp(-1, 1) + 1) * 127.5).permute(1, 2, 0).numpy()
        # each byte is the frame-by-frame value rounded; batched convolutions differ from
        # unbatched ones by ~1e-5 here, which may tip a value lying on a .5 boundary
        assert np.abs(f.astype(np.float64) - ref).max() <= 0.5 + 1e-3, i


def test_cli_mp4_with_audio_frames_fps(files, tmp_path, capsys):
    out = tmp_path / "talk.mp4"
    assert (
        main(
            [
                "animate",
                str(files / "src.nofa-anim"),
                "--drive",
                str(files / "exp64.npy"),
                "--out",
                str(out),
                "--audio",
                str(files / "speech.wav"),
                "--fps",
                "20",
                "--batch",
                "2",
                "--no-progress",
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "5 frames, 0.25 s at 20 fps" in text and "peak memory" in text and "frames/s" in text
    reader = imageio_ffmpeg.read_frames(str(out))
    meta = next(reader)
    decoded = [np.frombuffer(b, np.uint8).reshape(64, 64, 3) for b in reader]
    assert len(decoded) == 5 and meta["fps"] == 20.0 and meta["size"] == (64, 64)
    assert meta["audio_codec"] == "aac"  # an audio stream is there
    want = list(animate(files / "src.nofa-anim", files / "exp64.npy"))
    err = np.mean([np.abs(a.astype(float) - b.astype(float)).mean() for a, b in zip(decoded, want)])
    assert err < 12, err  # H.264 is lossy: the same frames up to compression
    assert not list(tmp_path.glob(".*partial*"))


def test_png_frames_equal_animate(files, tmp_path):
    orbit = AnimateOptions(camera="orbit")
    anim = animate(files / "src.nofa-anim", files / "seq257.npy", orbit)
    s = write_png_frames(anim, tmp_path / "png", progress=False)
    assert s["frames"] == 5
    want = list(animate(files / "src.nofa-anim", files / "seq257.npy", orbit))
    for i, w in enumerate(want):
        assert np.array_equal(imageio.imread(tmp_path / "png" / f"{i:06d}.png"), w)


def test_no_audio_stream_without_audio(files, tmp_path):
    s = write_video(
        animate(files / "src.nofa-anim", files / "exp64.npy"), tmp_path / "a.mp4", progress=False
    )
    meta = next(imageio_ffmpeg.read_frames(str(tmp_path / "a.mp4")))
    assert s["frames"] == 5 and meta.get("audio_codec") is None


def test_cameras(files):
    src, drive = files / "src.nofa-anim", files / "exp64.npy"
    with pytest.raises(ValueError, match="exp64.npy has none"):
        animate(src, drive, AnimateOptions(camera="driving"))
    fixed = animate(src, drive, AnimateOptions(camera="fixed", yaw=20))
    assert torch.equal(fixed.cameras[0], fixed.cameras[-1]) and not torch.equal(
        fixed.cameras[0], default_label()
    )
    orbit = animate(src, drive, AnimateOptions(camera="orbit"))
    assert not torch.equal(orbit.cameras[0], orbit.cameras[1])
    # the defaults are `nofa animate`'s: the source's camera, 4 frames a batch
    plain = animate(src, drive)
    assert torch.equal(plain.cameras, animate(src, drive, AnimateOptions()).cameras)
    assert plain.batch == 4 and torch.equal(plain.cameras[0], plain.cameras[-1])


def test_options_are_checked_when_built():
    with pytest.raises(ValueError, match="camera must be one of"):
        AnimateOptions(camera="nope")
    with pytest.raises(ValueError, match="batch must be >= 1"):
        AnimateOptions(batch=0)
    with pytest.raises(ValueError, match="camera must be one of"):
        AnimateOptions().replace(camera="nope")
    assert AnimateOptions().replace(camera="orbit").camera == "orbit"


def test_cli_camera_choices_are_the_camera_modes():
    from nofa.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command").choices["animate"]
    camera = next(a for a in sub._actions if a.dest == "camera")
    assert tuple(camera.choices) == CAMERA_MODES and camera.default == AnimateOptions().camera


def test_smoothing():
    a = np.zeros((9, 2), np.float32)
    a[4] = 3.0
    s = smooth_coeffs(a, 3)
    np.testing.assert_allclose(s[3:6, 0], [1, 1, 1])
    assert s.sum() == pytest.approx(a.sum())
    np.testing.assert_array_equal(smooth_coeffs(a, 0), a)
    const = np.full((5, 3), 2.0, np.float32)
    np.testing.assert_allclose(smooth_coeffs(const, 5), const)
    with pytest.raises(ValueError, match="odd"):
        smooth_coeffs(a, 4)


def test_demo_avatar_animates_with_identity(files, tmp_path, capsys):
    out = write_demo_animation(
        files / "demo.nofa-avatar",
        tmp_path,
        frames=4,
        fps=10,
        resolution=48,
        samples=6,
        progress=False,
    )
    assert any("identity deformation" in n for n in out["notes"])
    gif = imageio.mimread(out["gif"])
    assert len(gif) == 4
    band = np.asarray(gif[0])[-10:, :, :3]  # the on-screen caption: light text on a black band
    assert (band.max(-1) < 30).mean() > 0.3 and (band.min(-1) > 120).any()
    meta = next(imageio_ffmpeg.read_frames(str(out["mp4"])))
    assert meta["size"] == (48, 48) and meta["fps"] == 10.0
    assert (
        main(
            [
                "animate",
                str(files / "demo.nofa-avatar"),
                "--drive",
                str(files / "exp64.npy"),
                "--resolution",
                "16",
                "--samples",
                "4",
                "--audio",
                str(files / "speech.wav"),
                "--out",
                str(tmp_path / "d.mp4"),
                "--no-progress",
            ]
        )
        == 0
    )
    assert "identity deformation" in capsys.readouterr().out
    meta = next(imageio_ffmpeg.read_frames(str(tmp_path / "d.mp4")))
    assert meta["size"] == (16, 16) and meta["audio_codec"] == "aac"


def test_portrait_source_with_model(files, tmp_path, capsys):
    out = tmp_path / "frames"
    assert (
        main(
            [
                "animate",
                str(files / "portrait.png"),
                "--aligned",
                "--model",
                str(files / "model.nofa-model"),
                "--drive",
                str(files / "exp64.npy"),
                "--max-frames",
                "2",
                "--out",
                str(out),
                "--save-avatar",
                str(tmp_path / "me.nofa-anim"),
                "--no-progress",
            ]
        )
        == 0
    )
    assert len(list(out.glob("*.png"))) == 2 and (tmp_path / "me.nofa-anim").is_file()
    with pytest.raises(ValueError, match="pass --model"):
        animate(files / "portrait.png", files / "exp64.npy")
    # an unaligned source goes through nofa.faces: a picture without a face is refused by name
    from nofa.faces import FaceDependencyError, NoFaceError

    with pytest.raises((NoFaceError, FaceDependencyError), match="portrait.png"):
        animate(files / "portrait.png", files / "exp64.npy", model=files / "model.nofa-model")


@pytest.mark.parametrize("aligned", [False, True])
@pytest.mark.parametrize("kind", ["1x1", "1xN", "2x2", "4000x3", "0-byte"])
def test_degenerate_portrait_source_is_one_line_naming_source(
    files, tmp_path, capsys, kind, aligned
):
    """A portrait SOURCE no face fits in: a one-line error naming SOURCE (exit 1), not a dlib
    stride traceback (unaligned) or a silently stretched crop (--aligned)."""
    from PIL import Image

    pytest.importorskip("dlib", reason="dlib-bin not installed: face intake not exercised")
    photo = tmp_path / f"{kind}.png"
    if kind == "0-byte":
        photo.write_bytes(b"")
    else:
        w, h = {"1x1": (1, 1), "1xN": (1, 300), "2x2": (2, 2), "4000x3": (4000, 3)}[kind]
        Image.fromarray(np.full((h, w, 3), 128, np.uint8)).save(photo)
    argv = ["animate", str(photo), "--model", str(files / "model.nofa-model")]
    argv += ["--drive", str(files / "exp64.npy"), "--out", str(tmp_path / "o"), "--no-progress"]
    with pytest.raises(SystemExit) as e:
        main(argv + (["--aligned"] if aligned else []))
    err = capsys.readouterr().err
    assert e.value.code == 1 and err.startswith(f"nofa animate: error: SOURCE: {photo}"), err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    if kind == "0-byte":
        assert "not an image file" in err, err
    elif aligned:
        assert f"square FFHQ/EG3D face crop of at least 40x40 px, got {w}x{h} px" in err, err
    else:
        assert f"the photo is {w}x{h} px; a face needs a photo of at least 40x40 px" in err, err
    assert not (tmp_path / "o").exists()


def test_unaligned_photo_source_is_aligned_by_nofa_faces(files, tmp_path):
    pytest.importorskip("dlib", reason="dlib-bin not installed: face intake not exercised")
    from PIL import Image
    from skimage import data

    photo = tmp_path / "astronaut.png"
    Image.fromarray(data.astronaut()).save(photo)
    anim = animate(
        photo,
        files / "exp64.npy",
        AnimateOptions(max_frames=1, resolution=16, samples=4),
        model=files / "model.nofa-model",
    )
    frames = list(anim)
    assert len(frames) == 1 and frames[0].dtype == np.uint8 and frames[0].ndim == 3
    assert any("nofa.faces" in n for n in anim.notes)
