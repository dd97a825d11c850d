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
KIT_NAME=gpu_check KIT_TITLE="nofa GPU check" KIT_SUMMARY_COPY=summary.md
# OUTDIR, NOFA_GPU_CHECK_PACK, step/skip/pack, the summary header, the in-place build.
source "$(dirname "$0")/gpu_steps.sh" "$@"
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
    # Where the time goes, kernel by kernel (so a missed target can be diagnosed from this
    # run alone); before the reference's frames/s, which only compare.
    step profile 120 $PY -m nofa.cli profile --device cuda --cases render render_deformed avatar_animate --repeats 2 \
        --out "$OUTDIR/profile"
    step animate_fps_torch 120 $PY -m nofa.cli animate-bench --device cuda --preset paper --size 512 --frames 30 \
        --backend torch --long 0 --no-progress --out "$OUTDIR/animate_torch"
    # The reference under autocast runs the deformation MLP as bfloat16 cuBLAS GEMMs (tensor
    # cores), while the deform_points kernel computes in float32 whatever the autocast: this
    # row's per-stage split says whether that GEMM path beats the kernel (docs/deformation.md).
    step animate_fps_torch_bf16 120 $PY -m nofa.cli animate-bench --device cuda --preset paper --size 512 --frames 30 \
        --backend torch --autocast bf16 --long 0 --no-progress --out "$OUTDIR/animate_torch_bf16"
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

