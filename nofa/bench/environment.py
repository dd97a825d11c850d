"""What a result was measured on: device, CPU, threads, versions, date, command, commit."""

from __future__ import annotations

import datetime
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path

import torch

from .. import ops

# Environment variables that change what a run measures: the command line a result file
# records starts with the ones that are set, so that it reproduces the run.
RELEVANT_ENV = ("NOFA_BACKEND", "NOFA_CPU_ISA")


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _cpu_family_model() -> str:
    """The CPU's "family F model M" from /proc/cpuinfo (the generic model names of cloud CPUs, e.g.
    "Intel(R) Xeon(R) Processor", do not say which generation they are); "" elsewhere."""
    found: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:  # the first processor's block
                key, _, value = line.partition(":")
                if key.strip() in ("cpu family", "model"):
                    found.setdefault(key.strip(), value.strip())
                if len(found) == 2 or not line.strip():
                    break
    except OSError:
        return ""
    if len(found) != 2:
        return ""
    return f"family {found['cpu family']} model {found['model']}"


def machine(device: str, threads: int | None = None) -> str:
    """One line for a result header: the GPU (on CUDA), the CPU with its logical CPUs and the
    torch threads, and the instruction-set tier nofa's CPU kernels run."""
    fm = _cpu_family_model()
    n = threads or torch.get_num_threads()
    cpu = (
        f"{cpu_model()}{f' ({fm})' if fm else ''}, {os.cpu_count()} logical CPUs, "
        f"{n} torch thread{'' if n == 1 else 's'}"
    )
    isa = ops.cpu_isa.cpu_isa_info()
    if isa.get("compiled"):
        cpu += f", CPU kernels {isa.get('active') or isa.get('detected')}"
    if device == "cuda" and torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)}; host {cpu}"
    return cpu


def command_line(argv: list[str]) -> str:
    """`argv` shell-quoted, after the RELEVANT_ENV variables that are set."""
    env = [f"{k}={os.environ[k]}" for k in RELEVANT_ENV if os.environ.get(k)]
    return " ".join(shlex.quote(a) for a in [*env, *argv])


def git_commit() -> str:
    root = Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if out.returncode != 0:
        return "unknown"
    return out.stdout.strip() + (" (modified)" if dirty.stdout.strip() else "")


def describe(device: str, command: list[str] | None = None, threads: int | None = None) -> dict:
    """Environment facts written at the top of every result file (`machine`, `command`,
    `commit` and `date` feed its header, nofa.bench.provenance)."""
    import nofa

    info = {
        "device": device,
        "device_name": cpu_model(),
        "cpu_model": cpu_model(),
        "cpu_threads": threads or torch.get_num_threads(),
        "cpu_cores": os.cpu_count(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda or "none",
        "python": platform.python_version(),
        "nofa": nofa.__version__,
        "commit": git_commit(),
        "kernels": ops.build_info(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": command_line(command if command is not None else ["nofa", *sys.argv[1:]]),
        "machine": machine(device, threads),
    }
    if device == "cuda" and torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info["device_name"] = torch.cuda.get_device_name(0)
        info["gpu_memory_gib"] = round(props.total_memory / 2**30, 1)
        info["gpu_capability"] = f"sm_{props.major}{props.minor}"
        info["cuda_runtime"] = torch.version.cuda
    return info
