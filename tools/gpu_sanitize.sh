#!/usr/bin/env bash
# NVIDIA compute-sanitizer over every nofa CUDA kernel variant: memcheck (out-of-bounds and
# misaligned accesses, device exceptions), racecheck (shared-memory hazards) and synccheck
# (invalid barriers and warp syncs), each over tools/sanitize_ops.py (every op forward and
# backward on small inputs), only nofa's kernels instrumented where the sanitizer can filter
# by name. Builds in place first (a no-op on a machine that already ran tools/gpu_check.sh).
#
#   tools/gpu_sanitize.sh OUTDIR       (NOFA_GPU_CHECK_PACK as for tools/gpu_check.sh;
#                                       the archive is gpu_sanitize.tgz)
#
# Without a GPU or without compute-sanitizer it runs the same workload on the CPU kernels
# and marks the sanitizer steps skipped. See README "Running the GPU checks".
KIT_NAME=gpu_sanitize KIT_TITLE="nofa CUDA sanitizer check" KIT_SUMMARY_COPY=sanitize_summary.md
# OUTDIR, NOFA_GPU_CHECK_PACK, step/skip/pack, the summary header, the in-place build.
source "$(dirname "$0")/gpu_steps.sh" "$@"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

SANITIZER=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer 2>/dev/null || true)
if [ "$HAS_GPU" = 1 ] && [ -n "$SANITIZER" ]; then
    FILTER=()
    # Only nofa's kernels are instrumented (faster; torch's own are not ours to fix).
    if "$SANITIZER" --help 2>&1 | grep -q -- "--kernel-name"; then FILTER=(--kernel-name kns=nofa); fi
    step sanitize_plain 120 $PY tools/sanitize_ops.py --device cuda
    for tool in memcheck racecheck synccheck; do
        step "sanitize_$tool" 240 "$SANITIZER" --tool "$tool" --error-exitcode 1 "${FILTER[@]}" \
            $PY tools/sanitize_ops.py --device cuda
    done
else
    why="no CUDA GPU visible"; [ "$HAS_GPU" = 1 ] && why="compute-sanitizer not found"
    step sanitize_workload_cpu 120 $PY tools/sanitize_ops.py --device cpu
    for tool in memcheck racecheck synccheck; do skip "sanitize_$tool" "$why"; done
fi
echo >>"$SUMMARY"
echo "Total: $(( $(date +%s) - T0 )) s" >>"$SUMMARY"
cat "$SUMMARY"
pack
