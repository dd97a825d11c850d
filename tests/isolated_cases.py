"""Run a script's test cases in child processes so that one case crashing the process (a
segfault in native code) neither ends the pytest run nor hides the cases after it.

The script defines its cases and runs them with `run_cases(cases)` (the CASE_RUNNER text
below, pasted at its end): it prints "start NAME" before a case and "ok NAME" or
"FAIL (...) NAME" after it, then "done K" (K failures). Its command line lists cases to
skip (already reported); `--only NAME` runs one case.

`run_isolated` starts the script, and whenever a child dies before "done", records the case
it was in as crashed (with the child's stderr: `-X faulthandler` puts the Python stack of
the crash there) and starts a new child for the cases not yet reported. For a crashed case it
can also ask a debugger for the native stack (`debugger=`): the only way to see where a
crash on a lent GPU machine happened, since the case itself is lost with the process.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field

CASE_RUNNER = r"""
def run_cases(cases):
    import re, sys
    argv = sys.argv[1:]
    if argv[:1] == ["--only"]:
        cases = [c for c in cases if c[0] == argv[1]]
    else:
        cases = [c for c in cases if c[0] not in set(argv)]
    failed = 0
    for name, word, fn in cases:
        print("start", name, flush=True)
        try:
            fn()
            print("FAIL (no error)", name, flush=True)
            failed += 1
        except RuntimeError as e:
            ok = re.search(word, str(e)) is not None
            print(("ok" if ok else "FAIL (wrong message: %r)" % str(e)[:300]), name, flush=True)
            failed += not ok
        except Exception as e:
            print("FAIL (%s: %s)" % (type(e).__name__, str(e)[:300]), name, flush=True)
            failed += 1
    print("done", failed, flush=True)
    sys.exit(1 if failed else 0)
"""


@dataclass
class Report:
    outcomes: dict[str, str] = field(
        default_factory=dict
    )  # case -> "ok" / "FAIL ..." / "CRASH ..."
    crashes: list[str] = field(default_factory=list)
    log: list[str] = field(default_factory=list)  # every child's output, in order

    @property
    def failures(self) -> list[str]:
        return [n for n, o in self.outcomes.items() if o != "ok"]

    def text(self) -> str:
        lines = [f"{o}: {n}" for n, o in self.outcomes.items()]
        return "\n".join(lines + ["", *self.log])


def _debugger_trace(debugger: str, script: str, name: str, env: dict, timeout: float) -> str:
    """The native stack of case `name` crashing, from `debugger` (gdb-compatible) in batch mode."""
    cmd = [
        debugger,
        "-batch",
        "-ex",
        "run",
        "-ex",
        "bt 40",
        "--args",
        sys.executable,
        "-c",
        script,
        "--only",
        name,
    ]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
        out = proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as e:
        out = (
            f"{debugger} timed out after {timeout:.0f} s\n"
            + (e.stdout or b"").decode(errors="replace")[-3000:]
        )
    # The stack follows the signal line; the symbol loading before it is noise.
    at = out.find("received signal")
    return out[at:][:6000] if at >= 0 else out[-3000:]


def run_isolated(
    script: str,
    env: dict | None = None,
    timeout: float = 240,
    debugger: str | None = None,
    debugger_timeout: float = 90,
) -> Report:
    """Run the cases of `script` (which ends by calling CASE_RUNNER's run_cases) in child
    processes, restarting after a crash, until every case has an outcome."""
    env = {**os.environ, **(env or {})}
    report = Report()
    done: list[str] = []
    while True:
        proc = subprocess.run(
            [sys.executable, "-X", "faulthandler", "-c", script, *done],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
        )
        report.log.append(
            f"--- child (skipping {len(done)} reported cases), exit {proc.returncode}\n"
            + proc.stdout
            + proc.stderr[-4000:]
        )
        current = None
        finished = False
        for line in proc.stdout.splitlines():
            if line.startswith("start "):
                current = line[len("start ") :]
                done.append(current)
            elif line.startswith("done "):
                finished = True
            elif current is not None and line.endswith(" " + current):
                report.outcomes[current] = line[: -len(current) - 1]
                current = None
        if finished:
            return report
        if current is None:  # died before starting a case (import error, say): nothing to skip
            report.outcomes["<child start>"] = f"CRASH (exit {proc.returncode}) before any case"
            return report
        report.outcomes[current] = (
            f"CRASH (exit {proc.returncode}; negative: killed by that signal)"
        )
        report.crashes.append(current)
        path = shutil.which(debugger) if debugger else None
        if path:
            report.log.append(
                f"--- native stack of {current!r} from {debugger}\n"
                + _debugger_trace(path, script, current, env, debugger_timeout)
            )
