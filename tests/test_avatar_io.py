"""Avatar files: round trip, clear errors for damaged/foreign files, atomic saves."""
from __future__ import annotations

import json
import os
import warnings

import pytest
import torch

import nofa.io.avatar as avatar_mod
from nofa.io import Avatar, AvatarFileError, load_avatar, save_avatar
from nofa.render import OSGDecoder, RenderOptions, default_label


def _avatar(seed=0, C=6) -> Avatar:
    torch.manual_seed(seed)
    dec = OSGDecoder(n_features=C, hidden=8, out_features=4)
    opts = RenderOptions(box_warp=0.9, coarse_samples=6, importance_samples=4, deterministic=True, white_back=True)
    return Avatar(torch.randn(1, 3, C, 8, 8), dec.state_dict(), dec.config(), opts, {"name": "test", "steps": 3})


def test_round_trip(tmp_path):
    av = _avatar()
    path = save_avatar(tmp_path / "sub" / "a.nofa", av)
    back = load_avatar(path)
    assert torch.equal(back.planes, av.planes)
    assert back.decoder_config == av.decoder_config
    assert back.options == av.options
    assert back.metadata == {"name": "test", "steps": 3}
    for k, v in av.decoder_state.items():
        assert torch.equal(back.decoder_state[k], v)
    # The reloaded avatar renders exactly like the original.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        a = av.renderer()(av.planes, default_label()[None], 4)
        b = back.renderer()(back.planes, default_label()[None], 4)
    for x, y in zip(a, b):
        assert torch.equal(x, y)
    # Plain tensors + JSON: loadable with weights_only=True by anyone.
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == "nofa-avatar" and json.loads(raw["header"])["box_warp"] == 0.9
    assert not list(tmp_path.joinpath("sub").glob(".*.tmp"))


def test_truncated_file_raises_clear_error(tmp_path):
    path = save_avatar(tmp_path / "a.nofa", _avatar())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(AvatarFileError, match="truncated, corrupt"):
        load_avatar(path)


@pytest.mark.parametrize("content", [b"", b"\x89PNG\r\n\x1a\n not an avatar", b"x" * 1000])
def test_non_torch_file_raises(tmp_path, content):
    path = tmp_path / "junk.nofa"
    path.write_bytes(content)
    with pytest.raises(AvatarFileError, match="not a readable nofa avatar"):
        load_avatar(path)


def test_foreign_torch_file_raises(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, path)
    with pytest.raises(AvatarFileError, match="not a nofa avatar"):
        load_avatar(path)
    torch.save(torch.zeros(3), path)
    with pytest.raises(AvatarFileError, match="not a nofa avatar"):
        load_avatar(path)


def test_pickled_objects_are_refused(tmp_path):
    path = tmp_path / "evil.nofa"
    torch.save({"format": "nofa-avatar", "version": 1, "obj": RenderOptions()}, path)
    with pytest.raises(AvatarFileError, match="not a readable nofa avatar"):
        load_avatar(path)


def test_newer_version_and_bad_shapes(tmp_path):
    path = save_avatar(tmp_path / "a.nofa", _avatar())
    raw = torch.load(path, weights_only=True)
    torch.save({**raw, "version": 99}, path)
    with pytest.raises(AvatarFileError, match="upgrade nofa"):
        load_avatar(path)
    torch.save({**raw, "planes": torch.zeros(1, 2, 6, 4, 4)}, path)
    with pytest.raises(AvatarFileError, match=r"\[N, 3, C, H, W\]"):
        load_avatar(path)
    torch.save({**raw, "planes": torch.zeros(1, 3, 5, 4, 4)}, path)
    with pytest.raises(AvatarFileError, match="C=5"):
        load_avatar(path)
    torch.save({k: v for k, v in raw.items() if k != "header"}, path)
    with pytest.raises(AvatarFileError, match="header"):
        load_avatar(path)


def test_missing_file():
    with pytest.raises(FileNotFoundError, match="avatar file not found"):
        load_avatar("/nonexistent/x.nofa")


def test_interrupted_save_leaves_old_file_intact(tmp_path, monkeypatch):
    path = save_avatar(tmp_path / "a.nofa", _avatar(seed=0))
    before = path.read_bytes()

    def dying_save(obj, f, *a, **k):
        f.write(b"PK\x03\x04 half a zip")  # some bytes reach the temp file, then the process "dies"
        raise KeyboardInterrupt("simulated interruption")

    monkeypatch.setattr(avatar_mod.torch, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        save_avatar(path, _avatar(seed=1))
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert torch.equal(load_avatar(path).planes, _avatar(seed=0).planes)
    assert sorted(os.listdir(tmp_path)) == ["a.nofa"]  # no temp file left behind
