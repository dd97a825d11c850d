"""`nofa profile`: per-kernel breakdown of benchmark cases (nofa/bench/profile.py)."""

from __future__ import annotations

import json

import pytest
from conftest import DEVICES, require_kernels

from nofa.bench.profile import _short, profile_case
from nofa.bench.provenance import parse_header, repeats_value
from nofa.cli import main


@pytest.mark.parametrize("device", DEVICES)
def test_render_profile_names_nofa_ops_and_host_reads(device):
    require_kernels(device)
    p = profile_case(
        "render", device, "kernels", "forward+backward", quick=True, repeats=2, top=10_000
    )
    names = [r.name for r in p.rows]
    # The render's kernels are there and flagged; their time is part of the busy time.
    wanted = "nofa::decode_triplane_backward" if device == "cpu" else "nofa::"
    assert any(wanted in n for n in names), names
    assert all(r.nofa == ("nofa" in r.name) for r in p.rows)
    assert 0 < p.nofa_ms < p.busy_ms
    assert sum(r.ms for r in p.rows) == pytest.approx(p.busy_ms, rel=1e-9)  # every row listed
    assert p.wall_ms > 0
    # The compositing ops' depth-order checks read one value each from the device.
    assert p.host_reads >= 3
    if device == "cuda":
        assert p.launches > 0
    ref = profile_case("render", device, "torch", "forward", quick=True, repeats=1)
    assert ref.nofa_ms == 0 and not any(r.nofa for r in ref.rows)


def test_profile_checks_its_arguments():
    with pytest.raises(ValueError, match="backend must be"):
        profile_case("render", backend="compile", quick=True)
    with pytest.raises(ValueError, match="mode must be one of"):
        profile_case("avatar_animate", mode="forward+backward", quick=True)
    with pytest.raises(ValueError, match="repeats must be"):
        profile_case("render", quick=True, repeats=0)
    with pytest.raises(KeyError, match="unknown benchmark case"):
        profile_case("no_such_case")


def test_kernel_names_are_shortened_to_the_function():
    assert (
        _short("void nofa::(anonymous namespace)::forward_vec4_kernel(float const*, float*, long)")
        == "nofa::forward_vec4_kernel"
    )
    assert (
        _short(
            "void at::native::vectorized_elementwise_kernel<4, at::native::(anonymous "
            "namespace)::f<(int)1>>"
            "(int, float*)"
        )
        == "at::native::vectorized_elementwise_kernel<4, at::native::f<(int)1>>"
    )
    assert _short("aten::addmm_") == "aten::addmm_"
    assert (
        _short("Memcpy DtoH (Device -> Pageable)") == "Memcpy DtoH (Device -> Pageable)"
    )  # not a parameter list
    assert len(_short("x" * 200, width=50)) == 50


def test_cli_writes_the_tables(tmp_path, capsys):
    require_kernels("cpu")
    rc = main(
        [
            "profile",
            "--quick",
            "--cases",
            "sample_triplane",
            "--backends",
            "kernels",
            "--repeats",
            "1",
            "--out",
            str(tmp_path),
        ]
    )
    assert rc == 0
    md = (tmp_path / "cpu_profile.md").read_text()
    assert "| sample_triplane |" in md and "`nofa::sample_triplane`" in md
    head = parse_header(md)  # the result header: command, commit, machine, date, repeats
    assert head["command"].startswith("nofa ") and repeats_value(head) == 1
    data = json.loads((tmp_path / "cpu_profile.json").read_text())
    assert [(p["backend"], p["mode"]) for p in data["profiles"]] == [
        ("kernels", "forward"),
        ("kernels", "forward+backward"),
    ]
    assert data["environment"]["device"] == "cpu"
    assert main(["profile", "--cases", "no_such_case", "--out", str(tmp_path)]) == 2
    assert "unknown benchmark case" in capsys.readouterr().err
