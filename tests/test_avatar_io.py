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
    opts = RenderOptions(
        box_warp=0.9, coarse_samples=6, importance_samples=4, deterministic=True, white_back=True
    )
    return Avatar(
        torch.randn(1, 3, C, 8, 8),
        dec.state_dict(),
        dec.config(),
        opts,
        {"name": "test", "steps": 3},
    )


def test_round_trip(tmp_path):
    av = _avatar()
    path = save_avatar(tmp_path / "sub" / "a.nofa-avatar", av)
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
    path = save_avatar(tmp_path / "a.nofa-avatar", _avatar())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(AvatarFileError, match="truncated, corrupt"):
        load_avatar(path)


@pytest.mark.parametrize("content", [b"", b"\x89PNG\r\n\x1a\n not an avatar", b"x" * 1000])
def test_non_torch_file_raises(tmp_path, content):
    path = tmp_path / "junk.nofa-avatar"
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
    path = tmp_path / "evil.nofa-avatar"
    torch.save({"format": "nofa-avatar", "version": 1, "obj": RenderOptions()}, path)
    with pytest.raises(AvatarFileError, match="not a readable nofa avatar"):
        load_avatar(path)


def test_newer_version_and_bad_shapes(tmp_path):
    path = save_avatar(tmp_path / "a.nofa-avatar", _avatar())
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
        load_avatar("/nonexistent/x.nofa-avatar")


def test_interrupted_save_leaves_old_file_intact(tmp_path, monkeypatch):
    path = save_avatar(tmp_path / "a.nofa-avatar", _avatar(seed=0))
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
    assert sorted(os.listdir(tmp_path)) == ["a.nofa-avatar"]  # no temp file left behind


# --- contents checked at save and at load, not at the first render -------------------------


def _bad_avatars():
    good = _avatar()
    state = dict(good.decoder_state)
    missing = {k: v for k, v in state.items() if k != "fc1.bias"}
    wrong_shape = {**state, "fc0.weight": torch.zeros(3, 3)}
    int_state = {**state, "fc0.bias": state["fc0.bias"].long()}
    return [
        (
            "missing",
            Avatar(good.planes, missing, good.decoder_config, good.options),
            r"missing tensors \['fc1.bias'\]",
        ),
        (
            "extra",
            Avatar(
                good.planes,
                {**state, "fc9.weight": torch.zeros(2)},
                good.decoder_config,
                good.options,
            ),
            r"unexpected \['fc9.weight'\]",
        ),
        (
            "shape",
            Avatar(good.planes, wrong_shape, good.decoder_config, good.options),
            r"fc0.weight.*shape \[3, 3\]",
        ),
        (
            "int planes",
            Avatar(good.planes.long(), state, good.decoder_config, good.options),
            "floating-point",
        ),
        (
            "int decoder",
            Avatar(good.planes, int_state, good.decoder_config, good.options),
            "fc0.bias.*floating",
        ),
        (
            "no planes",
            Avatar(None, state, good.decoder_config, good.options),
            "planes must be a tensor",
        ),
        (
            "config",
            Avatar(good.planes, state, {**good.decoder_config, "hidden": 0}, good.options),
            "hidden",
        ),
    ]


@pytest.mark.parametrize("name,bad,match", _bad_avatars(), ids=[b[0] for b in _bad_avatars()])
def test_save_refuses_an_unrenderable_avatar(tmp_path, name, bad, match):
    with pytest.raises(ValueError, match=match):
        save_avatar(tmp_path / "a.nofa-avatar", bad)
    assert not list(tmp_path.iterdir())  # nothing written


@pytest.mark.parametrize("name,bad,match", _bad_avatars(), ids=[b[0] for b in _bad_avatars()])
def test_load_refuses_an_unrenderable_avatar(tmp_path, name, bad, match):
    # A file written by something else (or an older nofa) that skipped the checks.
    raw = torch.load(save_avatar(tmp_path / "a.nofa-avatar", _avatar()), weights_only=True)
    header = json.loads(raw["header"])
    header["decoder_config"] = bad.decoder_config
    torch.save(
        {**raw, "header": json.dumps(header), "planes": bad.planes, "decoder": bad.decoder_state},
        tmp_path / "bad.nofa-avatar",
    )
    with pytest.raises(AvatarFileError, match=match):
        load_avatar(tmp_path / "bad.nofa-avatar")


def test_text_file_is_not_an_avatar(tmp_path):
    # torch.load on text raises KeyError (not one of the usual exceptions).
    path = tmp_path / "notes.nofa-avatar"
    path.write_text("hello\n")
    with pytest.raises(AvatarFileError, match="not a readable nofa avatar"):
        load_avatar(path)


def test_bad_map_location_names_the_device_not_the_file(tmp_path):
    path = save_avatar(tmp_path / "a.nofa-avatar", _avatar())
    with pytest.raises(ValueError, match="map_location") as e:
        load_avatar(path, map_location="bogus")
    assert not isinstance(e.value, AvatarFileError)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="map_location='cuda'") as e:
            load_avatar(path, map_location="cuda")
        assert not isinstance(e.value, AvatarFileError)


# --- interrupted saves -----------------------------------------------------------------------

_KILLED_SAVE = r"""
import os, signal, sys, torch
from nofa.io import atomic

def half_then_die(obj, f, *a, **k):
    f.write(b"PK\x03\x04" + bytes(4096))  # part of the zip reaches the temp file ...
    f.flush()
    os.kill(os.getpid(), signal.SIGKILL)  # ... then the process is killed outright

torch.save = half_then_die
atomic.atomic_torch_save({"x": torch.zeros(3)}, sys.argv[1])
"""


def test_killed_save_leaves_a_temp_file_that_the_next_save_removes(tmp_path):
    import subprocess
    import sys

    path = save_avatar(tmp_path / "a.nofa-avatar", _avatar(seed=0))
    before = path.read_bytes()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([os.getcwd(), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.run(
        [sys.executable, "-c", _KILLED_SAVE, str(path)], env=env, capture_output=True, timeout=120
    )
    assert proc.returncode == -9, proc.stderr.decode()
    assert path.read_bytes() == before  # the old file is intact ...
    leftovers = [p for p in tmp_path.iterdir() if p.name != "a.nofa-avatar"]
    assert (
        len(leftovers) == 1
        and leftovers[0].name.startswith(".a.nofa-avatar.nofa-")
        and leftovers[0].suffix == ".tmp"
    )
    unrelated = (
        tmp_path / ".b.nofa-avatar.nofa-00000000-1-x.tmp"
    )  # another target's temp: not ours to delete
    unrelated.write_bytes(b"x")
    save_avatar(path, _avatar(seed=1))  # ... and the next save to that target cleans up
    assert sorted(p.name for p in tmp_path.iterdir()) == [unrelated.name, "a.nofa-avatar"]
    assert torch.equal(load_avatar(path).planes, _avatar(seed=1).planes)


_SAVE_LOOP = r"""
import sys, torch
from nofa.io.atomic import atomic_torch_save

big = {f"t{i}": torch.zeros(1 << 20) for i in range(32)}  # 128 MB: each save takes a while
atomic_torch_save(big, sys.argv[1])
print("ready", flush=True)
while True:
    atomic_torch_save(big, sys.argv[1])
"""


@pytest.mark.skipif(os.name == "nt", reason="POSIX signals")
def test_ctrl_c_during_save_raises_keyboard_interrupt_promptly(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    path = tmp_path / "big.pt"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([os.getcwd(), os.environ.get("PYTHONPATH", "")]),
    }
    # SIG_DFL in the child: a shell that starts pytest in the background without job control
    # makes it ignore SIGINT, children inherit that, and Python then installs no Ctrl-C handler.
    proc = subprocess.Popen(
        [sys.executable, "-c", _SAVE_LOOP, str(path)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        assert proc.stdout.readline().strip() == b"ready"
        time.sleep(0.15)  # well inside one of the back-to-back saves
        sent = time.perf_counter()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        took = time.perf_counter() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = err.decode()
    assert err.rstrip().splitlines()[-1] == "KeyboardInterrupt", err
    assert "RuntimeError" not in err, err
    assert took < 10, f"the interrupt took {took:.1f} s to stop the save loop"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.pt"]  # no temp file
    back = torch.load(path, weights_only=True)  # a complete file (the previous save's)
    assert len(back) == 32


@pytest.mark.skipif(os.name == "nt", reason="POSIX signals")
def test_sigint_inside_torch_save_is_a_keyboard_interrupt(tmp_path, monkeypatch):
    """Ctrl-C while torch.save's C++ zip writer is writing (deterministic, in-process)."""
    import signal

    import nofa.io.atomic as atomic_mod

    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        pytest.skip("a custom SIGINT handler is installed: the save leaves it in charge")
    path = save_avatar(tmp_path / "a.nofa-avatar", _avatar(seed=0))
    before = path.read_bytes()
    real_fdopen = os.fdopen

    class CtrlCOnThirdWrite:
        def __init__(self, f):
            self.f, self.calls = f, 0

        def write(self, data):
            self.calls += 1
            if self.calls == 3:
                os.kill(os.getpid(), signal.SIGINT)  # the user presses Ctrl-C mid-save
            return self.f.write(data)

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return self.f.__exit__(*exc)

    monkeypatch.setattr(
        atomic_mod.os, "fdopen", lambda *a, **k: CtrlCOnThirdWrite(real_fdopen(*a, **k))
    )
    with pytest.raises(KeyboardInterrupt):  # not RuntimeError: [enforce fail ...] unexpected pos
        save_avatar(path, _avatar(seed=1))
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["a.nofa-avatar"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored
