"""`nofa bench --quick`: every case and both backends reach the table, CSV and PNG; the
memory probe and the backend assertion of the benchmark really measure what they claim.
No timing assertions (timings belong to benchmarks, not to unit tests)."""

from __future__ import annotations

import pytest
import torch

import nofa.ops as ops
from nofa import cli
from nofa.bench import all_cases, measure
from nofa.bench.calls import BackendMismatch, check_backends
from nofa.bench.provenance import parse_header, repeats_value
from nofa.bench.registry import MODES
from nofa.bench.report import read_csv


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    rc = cli.main(["bench", "--quick", "--threads", "1", "--repeats", "3", "--out", str(out)])
    assert rc == 0
    return out


def _kernels_compiled(case) -> bool:
    return all(ops.kernels_available("cpu", op) for op in case.ops)


def test_quick_writes_table_csv_png(quick_run):
    md, csv_path, png = (
        quick_run / f"cpu_quick_{n}" for n in ("results.md", "results.csv", "scaling.png")
    )
    for p in (md, csv_path, png):
        assert p.is_file() and p.stat().st_size > 0, f"{p.name} not written"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = md.read_text()
    assert "torch ms" in text and "kernels ms" in text
    for case in all_cases():
        assert f"| {case.name} |" in text, f"{case.name} missing from the Markdown table"
    assert "nofa bench --quick" in text  # the command that reproduces it


def test_quick_files_start_with_the_result_header(quick_run):
    for name in ("cpu_quick_results.md", "cpu_quick_results.csv"):
        head = parse_header((quick_run / name).read_text())
        assert head["command"].startswith("nofa bench --quick"), head
        assert "--repeats 3" in head["command"] and repeats_value(head) == 3, head
        assert "logical CPUs" in head["machine"] and head["date"][:2] == "20"
    rows = read_csv(quick_run / "cpu_quick_results.csv")
    assert min(int(r["repeats"]) for r in rows if r["status"] == "ok") == 3


def test_quick_csv_has_every_case_backend_and_mode(quick_run):
    rows = read_csv(quick_run / "cpu_quick_results.csv")
    assert not [r for r in rows if r["status"] == "error"], [
        r["reason"] for r in rows if r["status"] == "error"
    ]
    for case in all_cases():
        mine = [r for r in rows if r["case"] == case.name and r["suite"] == "headline"]
        for backend in ("kernels", "torch"):
            for mode in MODES:
                got = [r for r in mine if r["backend"] == backend and r["mode"] == mode]
                want = len(case.sizes["headline"]["quick"])
                assert len(got) == want, (
                    f"{case.name}/{backend}/{mode}: {len(got)} headline rows, not {want}"
                )
                for row in got:
                    if mode not in case.modes:  # forward-only cases say so
                        assert row["status"] == "n/a" and "forward only" in row["reason"], row
                        continue
                    runnable = case.unavailable() is None and (
                        backend == "torch" or _kernels_compiled(case)
                    )
                    if runnable:
                        assert row["status"] == "ok", row
                        assert float(row["median_ms"]) > 0 and row["peak_mib"] != ""
                    else:  # a missing API or kernel is reported, never measured on the fallback
                        assert row["status"] == "n/a" and row["reason"], row
        if case.unavailable() is None and _kernels_compiled(case):
            k = next(r for r in mine if r["backend"] == "kernels" and r["mode"] == MODES[0])
            assert float(k["speedup_vs_torch"]) > 0


def test_sweeps_reach_the_csv(quick_run):
    rows = read_csv(quick_run / "cpu_quick_results.csv")
    sweeps = {
        (r["case"], r["suite"]) for r in rows if r["status"] == "ok" and r["suite"] != "headline"
    }
    assert ("sample_triplane", "points") in sweeps and ("sample_triplane", "resolution") in sweeps


def test_sample_triplane_runs_on_render_ordered_points_too(quick_run):
    rows = [
        r
        for r in read_csv(quick_run / "cpu_quick_results.csv")
        if r["case"] == "sample_triplane" and r["suite"] == "headline"
    ]
    ordered = [r for r in rows if "in render order" in r["problem"]]
    assert {r["backend"] for r in ordered if r["status"] == "ok"} >= {"torch", "kernels"}
    assert any("in render order" not in r["problem"] for r in rows)  # the random-order rows stay

    from nofa.bench.cases.ops import SAMPLES, _ray_points

    pts = _ray_points(5 * SAMPLES)[0].view(5, SAMPLES, 3)
    depth = (pts - torch.tensor([0.0, 0.0, 2.7])).norm(dim=-1)
    assert (depth.diff(dim=1) > 0).all()  # depth-sorted along each ray
    assert (pts[:, :, :2].abs() < 0.5).all()  # inside the box across the rays


def test_backend_check_rejects_a_fallback_run():
    case = next(c for c in all_cases() if c.name == "sample_triplane")
    planes, points = torch.randn(1, 3, 4, 8, 8), torch.rand(1, 16, 3) - 0.5
    with ops.use_backend("torch"), ops.trace_backends() as tr:
        ops.sample_triplane(planes, points)
    check_backends(tr, case, "torch")
    with pytest.raises(BackendMismatch):
        check_backends(tr, case, "kernels")  # labelled "kernels" but ran the reference


@pytest.mark.skipif(
    not measure.reset_hwm(), reason="VmHWM cannot be reset here (needs Linux /proc/self/clear_refs)"
)
def test_cpu_peak_memory_sees_reused_allocations():
    # Freeing a 40 MiB block raises glibc's mmap threshold: smaller blocks then come from the
    # heap, and a block freed by a warm-up stays resident. The probe must still see the next
    # allocation of that size in full (it trims the heap before measuring).
    big = torch.ones(40 * 2**20 // 4)
    del big
    for mib in (8, 20, 20):
        n = mib * 2**20 // 4
        warm = torch.ones(n)
        del warm
        peak = measure.peak_memory(lambda n=n: torch.ones(n), torch.device("cpu"))
        assert 0.9 * n * 4 <= peak <= 1.5 * n * 4, (
            f"{mib} MiB allocation measured as {peak / 2**20:.1f} MiB"
        )


def test_every_median_rests_on_at_least_min_repeats():
    # A call far longer than the budget still gets min_repeats timed calls (the old rule
    # fell back to one repeat for multi-second calls).
    calls = []
    res = measure.measure_call(
        lambda: calls.append(1), torch.device("cpu"), last_s=10.0, budget_s=1e-3, min_repeats=5
    )
    assert res["repeats"] == 5 and len(calls) == 5  # warm-up skipped: the last call was slow


def test_bench_rejects_nonpositive_repeats(capsys):
    assert cli.main(["bench", "--quick", "--repeats", "0", "--cases", "sample_triplane"]) == 2
    assert "--repeats" in capsys.readouterr().err


@pytest.mark.cuda
@pytest.mark.skipif(
    not torch.cuda.is_available(),
    reason="no CUDA GPU visible: the CUDA benchmark path not exercised",
)
def test_quick_cuda_writes_bandwidth_figure(tmp_path):
    assert cli.main(["bench", "--quick", "--device", "cuda", "--out", str(tmp_path)]) == 0
    rows = read_csv(tmp_path / "cuda_quick_results.csv")
    assert not [r for r in rows if r["status"] == "error"], [
        r["reason"] for r in rows if r["status"] == "error"
    ]
    for p in ("cuda_quick_results.md", "cuda_quick_scaling.png", "cuda_quick_bandwidth.png"):
        assert (tmp_path / p).is_file(), p
    assert "copy bandwidth" in (tmp_path / "cuda_quick_results.md").read_text()


def test_every_public_op_and_pipeline_has_a_case():
    names = {c.name for c in all_cases()}
    assert (
        set(ops.OPS) - {"channels_last_planes"} <= names
    )  # the relayout is timed inside the render
    assert {"render", "render_deformed", "avatar_reconstruct", "avatar_animate", "mesh"} <= names


def test_cases_import_without_a_cycle():
    # The registry defines what a case is and imports no case module; case modules import
    # the registry, never the runner: one direction, the list of cases is explicit.
    import ast
    import inspect

    import nofa.bench.cases as cases_pkg
    from nofa.bench import registry
    from nofa.bench.cases import ops as c_ops
    from nofa.bench.cases import pipelines as c_pipe
    from nofa.bench.cases import render as c_render

    def imported(mod):
        names = set()
        for node in ast.walk(ast.parse(inspect.getsource(mod))):
            if isinstance(node, ast.ImportFrom):
                names.add("." * node.level + (node.module or ""))
        return names

    assert not {n for n in imported(registry) if "cases" in n}
    for mod in (cases_pkg, c_ops, c_pipe, c_render):
        assert not {
            n for n in imported(mod) if n.split(".")[-1] in ("suite", "worker", "report")
        }, mod
