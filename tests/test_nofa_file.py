"""One reader/writer for every nofa file (nofa.io.nofa_file): each kind round-trips, a wrong
kind, a too-new version and a truncated file fail clearly, older files load with a note,
`nofa info FILE` describes every kind and `nofa upgrade` converts older files."""

from __future__ import annotations

import re
import warnings

import pytest
import torch

from nofa.cli import main
from nofa.io import Avatar, AvatarFileError, NofaFileError, NofaFileWarning, load_avatar
from nofa.io import save_avatar as save_volume
from nofa.io.nofa_file import (
    ANIMATABLE,
    KINDS,
    MODEL,
    TRAINING_CHECKPOINT,
    VOLUME_AVATAR,
    read_nofa_file,
    tensor_stats,
    write_nofa_file,
)
from nofa.models import NOFAAvatar
from nofa.models.animatable import AnimatableAvatar, load_animatable, save_animatable
from nofa.models.model_file import ModelFileError, load_model, save_model
from nofa.render import OSGDecoder, RenderOptions, default_label
from nofa.train.checkpoint import (
    CheckpointFileError,
    checkpoint_paths,
    latest_checkpoint,
    load_training_checkpoint,
    save_training_checkpoint,
)


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return NOFAAvatar.from_preset("tiny", render={"deterministic": True}).eval()


def _volume() -> Avatar:
    torch.manual_seed(1)
    dec = OSGDecoder(8, 16, 8)
    return Avatar(
        torch.randn(1, 3, 8, 16, 16),
        dec.state_dict(),
        dec.config(),
        RenderOptions(coarse_samples=6, importance_samples=6, deterministic=True),
        {"subject": "test"},
    )


def _checkpoint_state(tiny) -> dict:
    return {
        "stage": "encoder",
        "preset": "tiny",
        "config": {"run": {"steps": 3}},
        "model_config": tiny.config,
        "model": tiny.state_dict(),
        "optimizer": {"state": {0: {"exp_avg": torch.zeros(4)}}, "param_groups": []},
        "data_position": 12,
        "world_batch": 4,
    }


@pytest.fixture(scope="module")
def files(tiny, tmp_path_factory):
    """One file of every kind, each under its documented suffix."""
    d = tmp_path_factory.mktemp("kinds")
    av = AnimatableAvatar.from_model(
        tiny, torch.rand(1, 3, 64, 64) * 2 - 1, default_label()[None], torch.randn(1, 80)
    )
    return {
        MODEL.format: save_model(d / "m.nofa-model", tiny, preset="tiny"),
        VOLUME_AVATAR.format: save_volume(d / "v.nofa-avatar", _volume()),
        ANIMATABLE.format: save_animatable(d / "a.nofa-anim", av),
        TRAINING_CHECKPOINT.format: save_training_checkpoint(
            d / "ckpt", 3, _checkpoint_state(tiny), "[run]\nsteps = 3\n", keep=2
        ),
    }


# one loader per kind: (load, its error type, the file's name in its messages)
LOADERS = {
    MODEL.format: (load_model, ModelFileError, "nofa model file"),
    VOLUME_AVATAR.format: (load_avatar, AvatarFileError, "nofa avatar file"),
    ANIMATABLE.format: (load_animatable, ModelFileError, "nofa avatar file"),
    TRAINING_CHECKPOINT.format: (
        load_training_checkpoint,
        CheckpointFileError,
        "nofa training checkpoint",
    ),
}


def test_every_kind_round_trips_under_its_suffix(files, tiny):
    for fmt, path in files.items():
        assert path.suffix == KINDS[fmt].suffix
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # current format, documented suffix: no note
            f = read_nofa_file(path)
        assert f.kind.format == fmt and f.version == KINDS[fmt].version and not f.notes
        assert f.payload["format"] == fmt
        raw = torch.load(path, weights_only=True)  # plain data only
        assert tensor_stats(raw) == tensor_stats(f.payload)
    model = load_model(files[MODEL.format])
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in tiny.state_dict().items())
    vol = load_avatar(files[VOLUME_AVATAR.format])
    assert torch.equal(vol.planes, _volume().planes) and vol.metadata == {"subject": "test"}
    anim = load_animatable(files[ANIMATABLE.format])
    assert anim.planes.shape == (1, 3, 8, 32, 32) and not anim.identity_deformation
    ckpt = load_training_checkpoint(files[TRAINING_CHECKPOINT.format])
    assert ckpt["step"] == 3 and ckpt["stage"] == "encoder"
    assert all(torch.equal(v, ckpt["model"][k]) for k, v in tiny.state_dict().items())


def test_wrong_kind_is_a_clear_error(files):
    for fmt, (load, error, what) in LOADERS.items():
        for other, path in files.items():
            if other == fmt or (fmt == ANIMATABLE.format and other == VOLUME_AVATAR.format):
                continue  # a volume avatar is an animatable source (identity deformation)
            with pytest.raises(error, match=f"is not a {what} \\(format '{other}'") as e:
                load(path)
            assert e.value.path == path and str(path) in str(e.value)
    with pytest.raises(ModelFileError, match="pass it as the source, not as --model"):
        load_model(files[ANIMATABLE.format])
    with pytest.raises(AvatarFileError, match="drive it with `nofa animate`"):
        load_avatar(files[ANIMATABLE.format])


def test_too_new_version_and_truncated_file(files, tmp_path):
    for fmt, (load, error, what) in LOADERS.items():
        raw = torch.load(files[fmt], weights_only=True)
        new = tmp_path / f"new{KINDS[fmt].suffix}"
        torch.save({**raw, "version": KINDS[fmt].version + 1}, new)
        with pytest.raises(error, match=f"{what} version 2; this nofa reads up to 1: upgrade nofa"):
            load(new)
        torch.save({**raw, "version": "1"}, new)
        with pytest.raises(error, match="version entry '1' is not an integer"):
            load(new)
        cut = tmp_path / f"cut{KINDS[fmt].suffix}"
        data = files[fmt].read_bytes()
        cut.write_bytes(data[: len(data) // 2])
        with pytest.raises(error, match=f"cut.*is not a readable {what}: it is truncated"):
            load(cut)
        with pytest.raises(FileNotFoundError, match=f"{what} not found"):
            load(tmp_path / "missing")
    torch.save({"weights": {}}, tmp_path / "foreign.pt")
    with pytest.raises(NofaFileError, match=r"not a nofa file \(no 'format' entry; it holds keys"):
        read_nofa_file(tmp_path / "foreign.pt")


def test_writer_refuses_older_formats_and_own_entries(tmp_path):
    with pytest.raises(ValueError, match="older format"):
        write_nofa_file(tmp_path / "x", KINDS["nofa-avatar-model"], {})
    with pytest.raises(ValueError, match="the file's own"):
        write_nofa_file(tmp_path / "x", MODEL, {"version": 3})
    assert not list(tmp_path.iterdir())


def test_old_and_misleading_suffixes_load_with_a_note(files, tmp_path):
    old = tmp_path / "avatar.nofa"  # what `nofa demo` wrote before
    old.write_bytes(files[VOLUME_AVATAR.format].read_bytes())
    with pytest.warns(NofaFileWarning, match=r"old shared suffix \.nofa.*\*\.nofa-avatar") as rec:
        av = load_avatar(old)
    assert rec[0].filename == __file__  # the note points at the caller, not at nofa's loader
    assert torch.equal(av.planes, _volume().planes)
    odd = tmp_path / "model.nofa-avatar"  # a model file under a volume avatar's suffix
    odd.write_bytes(files[MODEL.format].read_bytes())
    with pytest.warns(NofaFileWarning, match=r"named like a volume avatar .* holds a model file"):
        load_model(odd)
    other = tmp_path / "weights.pt"  # any other suffix: the content decides, silently
    other.write_bytes(files[MODEL.format].read_bytes())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_model(other)


def test_old_checkpoint_names_are_resumed_from(files, tiny, tmp_path):
    folder = tmp_path / "ckpts"
    folder.mkdir()
    (folder / "step-00000003.pt").write_bytes(files[TRAINING_CHECKPOINT.format].read_bytes())
    assert latest_checkpoint(folder) == folder / "step-00000003.pt"
    assert load_training_checkpoint(folder / "step-00000003.pt")["step"] == 3
    new = save_training_checkpoint(folder, 4, _checkpoint_state(tiny), "", keep=1)
    assert new.name == "step-00000004.nofa-ckpt" and checkpoint_paths(folder) == [new]
    assert sorted(p.name for p in folder.iterdir()) == [new.name, "step-00000004.toml"]


def _info(capsys, path) -> str:
    assert main(["info", str(path)]) == 0
    return capsys.readouterr().out


def test_nofa_info_describes_every_kind(files, capsys):
    text = _info(capsys, files[MODEL.format])
    assert "nofa model file" in text and "nofa-model, version 1" in text, text
    assert ".nofa-model (documented)" in text and re.search(r"preset:\s+tiny\n", text), text
    assert re.search(r"planes:\s+\[3, 8, 32, 32\]", text) and "bytes" in text, text
    text = _info(capsys, files[VOLUME_AVATAR.format])
    assert "nofa volume avatar" in text and "[1, 3, 8, 16, 16] float32" in text, text
    assert "features 8, hidden 16" in text and re.search(r"metadata:\s+subject", text), text
    text = _info(capsys, files[ANIMATABLE.format])
    assert "nofa animatable avatar" in text and "[1, 3, 8, 32, 32]" in text, text
    assert "64 px (after SR)" in text and re.search(r"deformation:\s+field", text), text
    text = _info(capsys, files[TRAINING_CHECKPOINT.format])
    assert "nofa training checkpoint" in text and re.search(r"step:\s+3 ", text), text
    assert "encoder, preset tiny, batch 4" in text, text


def test_nofa_info_of_a_non_nofa_file_is_one_line(tmp_path, capsys):
    (tmp_path / "photo.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    for path, why in (
        (tmp_path / "photo.png", "is not a readable nofa file"),
        (tmp_path / "missing.nofa-model", "nofa file not found"),
    ):
        with pytest.raises(SystemExit) as e:
            main(["info", str(path)])
        err = capsys.readouterr().err
        assert e.value.code == 1 and err.startswith("nofa info: error: ") and why in err, err
        assert err.count("\n") == 1 and "Traceback" not in err


def test_upgrade_converts_a_legacy_model_and_renames_old_suffixes(files, tiny, tmp_path, capsys):
    legacy = tmp_path / "ffhq.nofa"
    torch.save(
        {
            "format": "nofa-avatar-model",
            "version": 1,
            "config": tiny.config,
            "state_dict": tiny.state_dict(),
        },
        legacy,
    )
    text = _info(capsys, legacy)
    assert "older NOFAAvatar format" in text and "note:" in text and "nofa upgrade" in text, text
    assert main(["upgrade", str(legacy)]) == 0
    assert "wrote" in capsys.readouterr().out
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = load_model(tmp_path / "ffhq.nofa-model")
    assert all(torch.equal(v, m.state_dict()[k]) for k, v in tiny.state_dict().items())
    assert m.file_header["metadata"] == {"upgraded_from": "nofa-avatar-model"}
    assert legacy.is_file()  # the old file is left as it was
    # a current file under the old suffix: a byte copy under its documented suffix
    old = tmp_path / "avatar.nofa"
    old.write_bytes(files[VOLUME_AVATAR.format].read_bytes())
    assert main(["upgrade", str(old)]) == 0
    assert (tmp_path / "avatar.nofa-avatar").read_bytes() == old.read_bytes()
    with pytest.raises(SystemExit):  # refuses to overwrite without --force
        main(["upgrade", str(old)])
    assert "exists" in capsys.readouterr().err
    assert main(["upgrade", str(tmp_path / "avatar.nofa-avatar")]) == 0
    assert "already a current volume avatar" in capsys.readouterr().out
