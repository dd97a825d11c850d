"""Build nofa and its extension nofa._C.

CUDA sources are compiled whenever a CUDA toolkit is found, even with no GPU visible
(then for an explicit arch list); otherwise, or with NOFA_CPU_ONLY=1, the build is
CPU-only. Build against the installed torch: `pip install --no-build-isolation .`
"""
import glob
import os
import re
import shutil
import subprocess

from setuptools import find_packages, setup

ROOT = os.path.dirname(os.path.abspath(__file__))
DEFAULT_ARCHS = "8.0;8.6;8.9;9.0+PTX"


def _nvcc_target(nvcc: str) -> str:
    """Resolve `nvcc`, following symlinks and the one-line `exec` wrappers some images use."""
    path = os.path.realpath(nvcc)
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError:
        return path
    if head.startswith(b"#!"):
        m = re.search(rb"exec\s+\"?([^\s\"]+/nvcc)\b", head)
        if m:
            return os.path.realpath(m.group(1).decode())
    return path


def find_cuda_home() -> str | None:
    if os.environ.get("NOFA_CPU_ONLY", "0") not in ("", "0"):
        return None
    home = os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH")
    if home and os.path.exists(os.path.join(home, "bin", "nvcc")):
        return home
    nvcc = shutil.which("nvcc")
    candidates = []
    if nvcc:
        candidates.append(os.path.dirname(os.path.dirname(_nvcc_target(nvcc))))
    candidates.append("/usr/local/cuda")
    for c in candidates:
        if os.path.exists(os.path.join(c, "bin", "nvcc")) and os.path.exists(
            os.path.join(c, "include", "cuda_runtime.h")
        ):
            return c
    return None


CUDA_HOME = find_cuda_home()
if CUDA_HOME:
    # torch.utils.cpp_extension reads CUDA_HOME when it is imported: set it first.
    os.environ["CUDA_HOME"] = CUDA_HOME

import torch  # noqa: E402
from torch.utils.cpp_extension import BuildExtension, CppExtension, CUDAExtension  # noqa: E402


def cuda_archs() -> str:
    archs = os.environ.get("TORCH_CUDA_ARCH_LIST")
    if not archs:
        if torch.cuda.is_available():
            cap = torch.cuda.get_device_capability()
            archs = f"{cap[0]}.{cap[1]}"
        else:
            archs = DEFAULT_ARCHS
        os.environ["TORCH_CUDA_ARCH_LIST"] = archs
    return archs


def extensions():
    rel = lambda pattern: sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, pattern)))  # noqa: E731
    sources = ["csrc/ops.cpp", "csrc/python_module.cpp"] + rel("csrc/cpu/*.cpp")
    include_dirs = [os.path.join(ROOT, "csrc")]
    cxx = ["-O3", "-fopenmp"]
    define_macros = []
    if CUDA_HOME:
        archs = cuda_archs()
        sources += rel("csrc/cuda/*.cpp") + rel("csrc/cuda/*.cu")
        define_macros += [("NOFA_WITH_CUDA", None), ("NOFA_CUDA_ARCHS", f'"{archs}"')]
        nvcc = ["-O3", "--use_fast_math", "-lineinfo"]
        return [
            CUDAExtension(
                "nofa._C", sources, include_dirs=include_dirs, define_macros=define_macros,
                extra_compile_args={"cxx": cxx, "nvcc": nvcc}, extra_link_args=["-fopenmp"],
            )
        ]
    return [
        CppExtension(
            "nofa._C", sources, include_dirs=include_dirs, define_macros=define_macros,
            extra_compile_args={"cxx": cxx}, extra_link_args=["-fopenmp"],
        )
    ]


if os.environ.get("NOFA_NO_EXTENSION", "0") not in ("", "0"):
    ext_modules, cmdclass = [], {}
else:
    ext_modules, cmdclass = extensions(), {"build_ext": BuildExtension.with_options(use_ninja=True)}

setup(
    name="nofa",
    version="0.1.0",
    description="NOFA++: one-shot generalizable 3D facial avatars with fast tri-plane kernels",
    packages=find_packages(include=["nofa", "nofa.*"]),
    python_requires=">=3.10",
    install_requires=["torch>=2.4", "numpy", "tqdm"],
    extras_require={"mesh": ["scikit-image", "trimesh"], "demo": ["scikit-image", "trimesh", "imageio", "matplotlib"]},
    ext_modules=ext_modules,
    cmdclass=cmdclass,
    entry_points={"console_scripts": ["nofa=nofa.cli:main"]},
    zip_safe=False,
)
