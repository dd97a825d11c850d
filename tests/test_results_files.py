"""Every figure in benchmarks/results/ is reproducible: each Markdown and CSV file starts with
the header of nofa.bench.provenance (command, commit, machine, date, repeats), its command
names a script of this repository, a module or a `nofa` subcommand whose options (and
benchmark cases) still exist, and its commit is in the history; every picture is shown by a
results file (which says how it was made); timings rest on at least 5 repeats.
docs/benchmarks.md, "Result files"."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from nofa.bench.provenance import HeaderError, parse_header, repeats_value

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
FILES = sorted(p for p in RESULTS.rglob("*") if p.is_file())
TABLES = [p for p in FILES if p.suffix in (".md", ".csv")]
MIN_REPEATS = 5
# Programs a command may use besides nofa, python and this repository's scripts (to copy a
# result out of a kit's output folder, say).
UTILITIES = {"cp", "mv", "mkdir", "tar"}

# Files whose figures rest on fewer than MIN_REPEATS repeats, kept until the lead re-runs
# them (docs/benchmarks.md lists the commands). Strict: a file that passes must leave the list.
PENDING = {
    "cpu_results.md": "medians on 1 repeat, before 14 commits to csrc/cpu",
    "cpu_results.csv": "medians on 1 repeat, before 14 commits to csrc/cpu",
    "train_step_cpu.md": "step timings best of 2-3 steps",
    "gpu/h200_first_run_cuda_results.md": "repeats not recorded",
    "gpu/h200_second_run_cuda_results.md": "one median on 1 repeat",
    "gpu/h200_second_run_cuda_results.csv": "one median on 1 repeat",
}


def _rel(p: Path) -> str:
    return p.relative_to(RESULTS).as_posix()


def _nofa_problems(args: list[str]) -> list[str]:
    """Problems of `nofa ARGS`: an unknown subcommand or option, an unknown benchmark case."""
    from nofa.bench import CASES
    from nofa.cli import build_parser

    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            ns = build_parser().parse_args(args)
    except SystemExit:
        why = err.getvalue().strip().splitlines()[-1:] or ["rejected"]
        return [f"`nofa {' '.join(args)}` is no longer a valid command line: {why[0]}"]
    if getattr(ns, "command", None) is None:
        return ["`nofa` without a subcommand"]
    unknown = sorted(set(getattr(ns, "cases", None) or ()) - set(CASES))
    return [f"unknown benchmark case(s) {unknown}"] if unknown else []


def command_problems(command: str) -> list[str]:
    """What no longer exists of a header's command: `[VAR=value ...] PROGRAM ARGS`, parts
    joined by && or ;. PROGRAM: nofa, python -m MODULE, python SCRIPT, SCRIPT, make TARGET."""
    problems = []
    for part in re.split(r"\s*(?:&&|;)\s*", command):
        words = shlex.split(part)
        while words and re.match(r"^[A-Za-z_]\w*=", words[0]):  # environment assignments
            words.pop(0)
        if not words:
            continue
        prog, args = Path(words[0]).name, words[1:]
        if prog == "nofa":
            problems += _nofa_problems(args)
        elif re.fullmatch(r"python(3(\.\d+)?)?", prog):
            if args[:1] == ["-m"] and len(args) > 1:
                if args[1] == "nofa.cli":
                    problems += _nofa_problems(args[2:])
                elif importlib.util.find_spec(args[1]) is None:
                    problems.append(f"no module {args[1]}")
            elif not args or not (ROOT / args[0]).is_file():
                problems.append(f"no script {args[0] if args else '(none)'} in the repository")
        elif prog == "make":
            targets = re.findall(r"^([\w.-]+):", (ROOT / "Makefile").read_text(), re.M)
            problems += [f"no make target {t}" for t in args if t not in targets]
        elif prog in UTILITIES:
            continue
        elif not (ROOT / words[0]).is_file():
            problems.append(f"{words[0]} is neither a script of the repository nor a known program")
    return problems


def _in_git_history(commit: str) -> bool | None:
    """Whether `commit` is a commit of this repository (None: not a git checkout)."""
    try:
        inside = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--git-dir"], capture_output=True, timeout=30
        )
        if inside.returncode != 0:
            return None
        found = subprocess.run(
            ["git", "-C", str(ROOT), "cat-file", "-e", f"{commit}^{{commit}}"],
            capture_output=True,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return found.returncode == 0


def test_results_hold_tables_and_pictures_only():
    odd = [_rel(p) for p in FILES if p.suffix not in (".md", ".csv", ".png")]
    assert not odd, f"files that cannot carry a header: {odd} (keep .md, .csv and .png)"


@pytest.mark.parametrize("path", TABLES, ids=_rel)
def test_header_is_complete_and_its_command_exists(path):
    try:
        head = parse_header(path.read_text())
    except HeaderError as e:
        pytest.fail(f"{_rel(path)}: {e}")
    problems = command_problems(head["command"])
    assert not problems, f"{_rel(path)}: command `{head['command']}`: {problems}"
    sha = head["commit"].split()[0]
    assert _in_git_history(sha) is not False, f"{_rel(path)}: commit {sha} is not in the history"


@pytest.mark.parametrize(
    "path",
    [
        pytest.param(p, marks=pytest.mark.xfail(strict=True, reason=PENDING[_rel(p)]))
        if _rel(p) in PENDING
        else p
        for p in TABLES
    ],
    ids=_rel,
)
def test_timings_rest_on_enough_repeats(path):
    head = parse_header(path.read_text())
    value = repeats_value(head)
    assert value is not None or head["repeats"].startswith("n/a"), (
        f"{_rel(path)}: repeats {head['repeats']!r}"
    )
    assert value is None or value >= MIN_REPEATS, f"{_rel(path)}: repeats {head['repeats']!r}"


def test_pending_names_existing_files():
    assert set(PENDING) <= {_rel(p) for p in TABLES}, "re-run or removed: update PENDING"


@pytest.mark.parametrize("path", [p for p in FILES if p.suffix == ".png"], ids=_rel)
def test_every_picture_is_shown_by_a_results_file(path):
    shown = [
        md
        for md in path.parent.glob("*.md")
        if re.search(rf"\]\({re.escape(path.name)}\)", md.read_text())
    ]
    assert shown, f"{_rel(path)}: no results file shows it, so nothing says how it was made"


@pytest.mark.parametrize("path", [p for p in TABLES if p.suffix == ".md"], ids=_rel)
def test_links_between_results_resolve(path):
    links = re.findall(r"\]\(([^)#\s]+)\)", path.read_text())
    local = [x for x in links if "://" not in x]
    missing = [x for x in local if not (path.parent / x).exists()]
    assert not missing, f"{_rel(path)} links to missing {missing}"


@pytest.mark.parametrize(
    "command, ok",
    [
        ("nofa bench --device cpu --out benchmarks/results --repeats 5", True),
        ("NOFA_CPU_ISA=avx2 nofa bench --cases render decode_triplane --no-sweeps", True),
        ("nofa bench --cases no_such_case", False),
        ("nofa bench --no-such-option", False),
        ("nofa no-such-command", False),
        ("PYTHONPATH=. python benchmarks/train_proof.py --report", True),
        ("python benchmarks/bench_render.py --repeats 7", False),
        ("python -m nofa.bench.faces.camera --skip-dlib", True),
        ("python -m nofa.no_such_module", False),
        ("tools/gpu_check.sh /tmp/gc && cp /tmp/gc/summary.md benchmarks/results/gpu/", True),
        ("NOFA_CPU_ISA=avx2 make demo", True),
        ("make no-such-target", False),
        ("rm -rf /", False),
    ],
)
def test_command_check(command, ok):
    assert (not command_problems(command)) == ok, command_problems(command)
