"""The crash-isolating case runner that the CUDA error tests use (tests/isolated_cases.py),
checked on the CPU with a case that really crashes its process."""

from __future__ import annotations

import shutil
import textwrap

import pytest
from isolated_cases import CASE_RUNNER, run_isolated

SCRIPT = (
    textwrap.dedent(
        r"""
    import ctypes
    cases = []
    def case(name, word):
        def deco(fn):
            cases.append((name, word, fn))
            return fn
        return deco

    @case("raises the right error", "bad value")
    def _():
        raise RuntimeError("nofa: bad value")

    @case("segfaults", "never reached")
    def _():
        ctypes.string_at(0)  # reads address 0: SIGSEGV

    @case("wrong message", "expected words")
    def _():
        raise RuntimeError("something else")

    @case("after the crash", "still runs")
    def _():
        raise RuntimeError("still runs")

    @case("no error", "anything")
    def _():
        pass
    """
    )
    + CASE_RUNNER
    + "\nrun_cases(cases)\n"
)


def test_a_crash_is_reported_and_the_later_cases_still_run():
    report = run_isolated(SCRIPT, timeout=60)
    assert report.outcomes["raises the right error"] == "ok"
    assert report.crashes == ["segfaults"]
    assert report.outcomes["segfaults"].startswith("CRASH (exit -11")
    assert report.outcomes["wrong message"].startswith("FAIL (wrong message")
    assert report.outcomes["after the crash"] == "ok"
    assert report.outcomes["no error"] == "FAIL (no error)"
    assert set(report.failures) == {"segfaults", "wrong message", "no error"}
    # faulthandler's Python stack of the crash is in the log, pointing at the case's line.
    assert "Segmentation fault" in report.text() and "string_at" in report.text()


@pytest.mark.skipif(shutil.which("gdb") is None, reason="no gdb on PATH")
def test_a_crash_comes_back_with_the_debuggers_native_stack():
    report = run_isolated(SCRIPT, timeout=60, debugger="gdb", debugger_timeout=120)
    assert report.crashes == ["segfaults"]
    trace = report.text().split("native stack of 'segfaults' from gdb", 1)[1]
    assert "SIGSEGV" in trace and "#0" in trace, trace[:2000]
