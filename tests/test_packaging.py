"""Packaging: the build's CUDA/CPU decision and a complete sdist."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def setup_module():
    """setup.py imported as a module: its functions, without running setup()."""
    spec = importlib.util.spec_from_file_location("nofa_setup_py", ROOT / "setup.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize(
    "torch_cuda, cuda_home, cpu_only, builds_cuda, says",
    [
        ("12.4", "/opt/cuda", False, True, "CUDA kernels with /opt/cuda"),
        (
            None,
            "/opt/cuda",
            False,
            False,
            "torch.version.cuda is None",
        ),  # CPU torch, nvcc present: the reported failure
        (None, None, False, False, "torch.version.cuda is None"),
        ("12.4", None, False, False, "no CUDA toolkit"),
        ("12.4", "/opt/cuda", True, False, "NOFA_CPU_ONLY"),
    ],
)
def test_cuda_build_plan(setup_module, torch_cuda, cuda_home, cpu_only, builds_cuda, says):
    home, message = setup_module.cuda_build_plan(torch_cuda, cuda_home, cpu_only, "2.13.0")
    assert (home == cuda_home) if builds_cuda else home is None
    assert says in message and "\n" not in message and message.startswith("nofa: ")


def _fake_cuda_toolkit(tmp_path: Path) -> Path:
    home = tmp_path / "cuda"
    (home / "bin").mkdir(parents=True)
    (home / "include").mkdir()
    (home / "include" / "cuda_runtime.h").write_text("")
    nvcc = home / "bin" / "nvcc"
    nvcc.write_text("#!/bin/sh\necho 'Cuda compilation tools, release 12.4, V12.4.0'\n")
    nvcc.chmod(0o755)
    return home


def test_cpu_only_torch_with_nvcc_configures_a_cpu_build(tmp_path):
    """setup.py run against a CPU-only torch on a machine with nvcc: a CPU build, one line, no
    OSError."""
    home = _fake_cuda_toolkit(tmp_path)
    site = tmp_path / "site"
    site.mkdir()
    # make the installed torch look like a CPU-only build, as `torch 2.x+cpu` is
    (site / "sitecustomize.py").write_text(
        "import torch, torch.cuda\ntorch.version.cuda = None\n"
        "torch.cuda._is_compiled = lambda: False\n"
    )
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("CUDA_HOME", "CUDA_PATH", "NOFA_CPU_ONLY", "NOFA_NO_EXTENSION")
    }
    env.update(PYTHONPATH=str(site), PATH=f"{home / 'bin'}{os.pathsep}{env.get('PATH', '')}")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "setup.py"), "--name"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "nofa"
    lines = [line for line in proc.stderr.splitlines() if line.startswith("nofa: ")]
    assert len(lines) == 1 and "torch.version.cuda is None" in lines[0] and str(home) in lines[0], (
        proc.stderr
    )


def _includes(path: Path) -> list[str]:
    return re.findall(r'^\s*#\s*include\s+"([^"]+)"', path.read_text(errors="replace"), flags=re.M)


def test_sdist_holds_every_file_the_build_needs(tmp_path):
    """`setup.py sdist` from a copy of the source tree: every csrc file and every header a csrc
    file includes is in the archive, with setup.py, pyproject.toml, the package and the docs."""
    src = tmp_path / "src"
    shutil.copytree(
        ROOT,
        src,
        ignore=shutil.ignore_patterns(
            ".git",
            ".venv",
            "build",
            "dist",
            "*.egg-info",
            "__pycache__",
            "*.so",
            "*.o",
            "outputs",
            ".pytest_cache",
        ),
    )
    # NOFA_NO_EXTENSION: the file list then comes from MANIFEST.in alone (no torch import, fast),
    # a stricter test than the real sdist, where setuptools also adds the extension's sources
    env = dict(os.environ, NOFA_NO_EXTENSION="1")
    proc = subprocess.run(
        [sys.executable, "setup.py", "-q", "sdist", "-d", str(tmp_path / "dist")],
        cwd=src,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    (archive,) = (tmp_path / "dist").glob("nofa-*.tar.gz")
    with tarfile.open(archive) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    csrc = sorted(p for p in (src / "csrc").rglob("*") if p.is_file())
    assert csrc and not [p for p in csrc if str(p.relative_to(src)) not in names]
    needed = set()
    for path in csrc + sorted((src / "tests" / "cpp").rglob("*.[ch]*")):
        for inc in _includes(path):
            for base in (path.parent, src / "csrc", src / "tests" / "cpp"):
                if (base / inc).is_file():
                    needed.add(str((base / inc).resolve().relative_to(src.resolve())))
                    break
    assert len(needed) >= 20 and not sorted(needed - names)
    packages = {str(p.relative_to(src)) for p in (src / "nofa").rglob("*.py")}
    docs = {str(p.relative_to(src)) for p in (src / "docs").glob("*.md")}
    build = {
        "setup.py",
        "pyproject.toml",
        "MANIFEST.in",
        "README.md",
        "requirements.txt",
        "CMakeLists.txt",
        "Makefile",
    }
    # data files the package reads at run time, with the licence notice that must travel with them
    data = {str(p.relative_to(src)) for p in (src / "nofa" / "faces" / "data").iterdir()}
    assert "nofa/faces/data/LICENSE" in data and "nofa/faces/data/bfm_mean_landmarks68.txt" in data
    assert not sorted((packages | docs | build | data) - names)
    assert not [n for n in names if n.endswith((".so", ".o", ".pyc"))]


def test_readme_is_short_and_its_links_resolve():
    """The README is read in five minutes: at most 200 lines, and every relative link in it
    (docs, results files, pictures) points at a file of the tree."""
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 200
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    local = [t for t in targets if "://" not in t]
    assert local, "the README links no docs"
    missing = [t for t in local if not (ROOT / t).exists()]
    assert not missing, f"README links missing files: {missing}"
