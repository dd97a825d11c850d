#!/usr/bin/env bash
# One-call GPU check: build nofa in place against the machine's own python3/torch (for the
# visible GPU's architecture only), run the CUDA tests, `nofa check` on CUDA, the quick CUDA
# benchmarks and the animate-fps benchmark, and write logs + tables + plots to OUTDIR.
#
#   tools/gpu_check.sh OUTDIR          (or: make gpu-check OUT=OUTDIR)
#
# OUTDIR gets a log per step, summary.md and the result tables / plots (20-odd files). Where
# only a few files can come back from the machine, set NOFA_GPU_CHECK_PACK to a folder that
# comes back: after every step the kit writes OUTDIR packed as gpu_check.tgz, plus a copy of
# summary.md, into it (each file replaced atomically). A command killed at the machine's time
# limit then still returns every step that finished, e.g.
#   NOFA_GPU_CHECK_PACK="$OUT" tools/gpu_check.sh /tmp/gc
#
# Needs no network. Without a GPU it runs the steps that can run (build, CPU-side tests of the
# kit itself) and lists what it skipped in OUTDIR/summary.md. See README "Running the GPU checks".
set -uo pipefail
OUTDIR=${1:?usage: tools/gpu_check.sh OUTDIR}
mkdir -p "$OUTDIR"
OUTDIR=$(cd "$OUTDIR" && pwd)
if [ -n "${NOFA_GPU_CHECK_PACK:-}" ]; then
    mkdir -p "$NOFA_GPU_CHECK_PACK" && NOFA_GPU_CHECK_PACK=$(cd "$NOFA_GPU_CHECK_PACK" && pwd) || exit 2
    case "$NOFA_GPU_CHECK_PACK/" in
        "$OUTDIR"/*) echo "NOFA_GPU_CHECK_PACK must lie outside OUTDIR (the archive would pack itself)" >&2; exit 2 ;;
    esac
fi
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
SUMMARY="$OUTDIR/summary.md"
export PYTHONUNBUFFERED=1
T0=$(date +%s)

step() {  # step NAME TIMEOUT_S CMD... : run, log to OUTDIR/NAME.log, record status and seconds
    local name=$1 limit=$2; shift 2
    local t=$(date +%s)
    echo "== $name: $*" | tee -a "$OUTDIR/all.log"
    timeout "$limit" "$@" >"$OUTDIR/$name.log" 2>&1
    local rc=$?
    local dt=$(( $(date +%s) - t ))
    tail -n 25 "$OUTDIR/$name.log" | tee -a "$OUTDIR/all.log"
    local verdict=ok; [ $rc -ne 0 ] && verdict="FAILED (exit $rc)"; [ $rc -eq 124 ] && verdict="TIMED OUT after ${limit}s"
    echo "| $name | $verdict | ${dt} s |" >>"$SUMMARY"
    echo "== $name: $verdict in ${dt}s" | tee -a "$OUTDIR/all.log"
    pack
    return $rc
}
skip() { echo "| $1 | skipped: $2 | - |" >>"$SUMMARY"; echo "== $1: skipped: $2" | tee -a "$OUTDIR/all.log"; }
pack() {  # OUTDIR as NOFA_GPU_CHECK_PACK/gpu_check.tgz + summary.md, each written then renamed
    [ -n "${NOFA_GPU_CHECK_PACK:-}" ] || return 0
    mkdir -p "$NOFA_GPU_CHECK_PACK" &&
        tar -czf "$NOFA_GPU_CHECK_PACK/.gpu_check.tgz.tmp" -C "$(dirname "$OUTDIR")" "$(basename "$OUTDIR")" &&
        mv -f "$NOFA_GPU_CHECK_PACK/.gpu_check.tgz.tmp" "$NOFA_GPU_CHECK_PACK/gpu_check.tgz" &&
        cp "$SUMMARY" "$NOFA_GPU_CHECK_PACK/.summary.md.tmp" &&
        mv -f "$NOFA_GPU_CHECK_PACK/.summary.md.tmp" "$NOFA_GPU_CHECK_PACK/summary.md" ||
        echo "== pack: could not write $NOFA_GPU_CHECK_PACK" | tee -a "$OUTDIR/all.log"
}

HAS_GPU=$($PY -c "import torch; print(int(torch.cuda.is_available()))" 2>/dev/null || echo 0)
{
    echo "# nofa GPU check"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    # A copied working tree can carry a stale .git (the device machine's copy did): the
    # caller's NOFA_COMMIT wins, and a dirty tree is marked.
    echo "- commit: ${NOFA_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}$( [ -z "${NOFA_COMMIT:-}" ] && [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ] && echo ' (working tree differs from it)')"
    $PY - <<'EOF'
import platform, torch
print(f"- python: {platform.python_version()}, torch {torch.__version__} (CUDA {torch.version.cuda})")
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    print(f"- device: {p.name}, {p.multi_processor_count} SMs, {p.total_memory / 2**30:.0f} GiB, capability {p.major}.{p.minor}")
else:
    print("- device: no CUDA GPU visible")
EOF
    if command -v nvidia-smi >/dev/null; then
        echo "- driver: $(nvidia-smi --query-gpu=driver_version --format=csv,noheader | head -1)"
    fi
    echo "- CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) cores"
    echo
    echo "| step | result | time |"
    echo "| --- | --- | --- |"
} >"$SUMMARY"
cat "$SUMMARY"
pack  # the header alone already says where the run was

# Build for this GPU only (setup.py reads the visible device's capability when no list is set).
export MAX_JOBS=${MAX_JOBS:-$(nproc)}
if [ "$HAS_GPU" = 1 ]; then
    unset TORCH_CUDA_ARCH_LIST
fi
step build 420 $PY setup.py -q build_ext --inplace || { echo "build failed: see $OUTDIR/build.log"; exit 1; }
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
step info 60 $PY -m nofa.cli info

# pytest-xdist, where installed, runs the CUDA tests in 4 worker processes: faster, and a test
# that crashes its process is reported as failed instead of ending the whole run.
XDIST=()
if $PY -c "import xdist" 2>/dev/null; then XDIST=(-n 4); fi
# A test case that crashes its process (tests/isolated_cases.py) is re-run under this
# debugger for its native stack (cuda-gdb also debugs host code; the image has no gdb).
if command -v cuda-gdb >/dev/null; then export NOFA_CRASH_DEBUGGER=cuda-gdb; fi
if [ "$HAS_GPU" = 1 ]; then
    step cuda_tests ${NOFA_GPU_TEST_LIMIT:-300} $PY -m pytest -q -m cuda -rfEs "${XDIST[@]}" --continue-on-collection-errors -p no:cacheprovider \
        --junitxml="$OUTDIR/cuda_tests.xml" tests
    step check_cuda 120 $PY -m nofa.cli check --device cuda
    # Most wanted first: a command cut short by the lender's limit keeps the steps before.
    # --long: animate-bench's CUDA default is a 1000-frame flat-memory drive, longer than the
    # step's limit (the second H200 run ended in this step without its frames/s); 200 frames
    # still compare peak memory after frame 100 and at the end.
    step animate_fps 120 $PY -m nofa.cli animate-bench --device cuda --preset paper --size 512 --frames 30 \
        --long 200 --no-progress --out "$OUTDIR/animate"
    # The quick CUDA suite: every kernel case and the full render, kernels vs the PyTorch
    # reference in the same run (no torch.compile, no sweeps: minutes matter on a lent GPU),
    # in two steps so that a timeout loses one half (results are written at a step's end).
    step bench_ops 150 $PY -m nofa.cli bench --device cuda --no-compile --no-sweeps --budget 0.3 \
        --cases sample_triplane decode_triplane composite_rays composite_rays_merged deform_points \
        --out "$OUTDIR/bench_ops"
    step bench_render 120 $PY -m nofa.cli bench --device cuda --no-compile --no-sweeps --budget 0.3 \
        --cases render render_deformed --out "$OUTDIR/bench_render"
    step animate_fps_bf16 120 $PY -m nofa.cli animate-bench --device cuda --preset paper --size 512 --frames 30 \
        --autocast bf16 --long 0 --no-progress --out "$OUTDIR/animate_bf16"
    step animate_fps_torch 120 $PY -m nofa.cli animate-bench --device cuda --preset paper --size 512 --frames 30 \
        --backend torch --long 0 --no-progress --out "$OUTDIR/animate_torch"
    # The reference under autocast runs the deformation MLP as bfloat16 cuBLAS GEMMs (tensor
    # cores), while the deform_points kernel computes in float32 whatever the autocast: this
    # row's per-stage split says whether that GEMM path beats the kernel (docs/deformation.md).
    step animate_fps_torch_bf16 120 $PY -m nofa.cli animate-bench --device cuda --preset paper --size 512 --frames 30 \
        --backend torch --autocast bf16 --long 0 --no-progress --out "$OUTDIR/animate_torch_bf16"
    # Last: where the time goes, kernel by kernel (so a missed target can be diagnosed from
    # this run alone).
    step profile 120 $PY -m nofa.cli profile --device cuda --cases render render_deformed avatar_animate --repeats 2 \
        --out "$OUTDIR/profile"
else
    # Still collect and run the CUDA selection: every test skips with its reason, which checks
    # that the marker selects them and that they import here.
    step cuda_tests_selection 300 $PY -m pytest -q -m cuda -rs -p no:cacheprovider tests
    skip cuda_tests "no CUDA GPU visible (the selection above ran and skipped)"
    skip check_cuda "no CUDA GPU visible"
    skip bench_ops "no CUDA GPU visible"
    skip bench_render "no CUDA GPU visible"
    skip animate_fps "no CUDA GPU visible"
    skip animate_fps_bf16 "no CUDA GPU visible"
    skip animate_fps_torch "no CUDA GPU visible"
    skip animate_fps_torch_bf16 "no CUDA GPU visible"
    skip profile "no CUDA GPU visible"
fi
echo >>"$SUMMARY"
echo "Total: $(( $(date +%s) - T0 )) s" >>"$SUMMARY"
cat "$SUMMARY"
pack

