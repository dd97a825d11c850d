# Shared by tools/gpu_check.sh and tools/gpu_sanitize.sh (sourced with the script's
# arguments, after it sets KIT_NAME, KIT_TITLE and KIT_SUMMARY_COPY): checks OUTDIR and
# NOFA_GPU_CHECK_PACK, changes to the repository root, defines step / skip / pack, writes the
# summary header (date, commit, python and torch, device, driver, CPU) and builds the
# extension in place (for the visible GPU's architecture only). See README "Running the GPU
# checks".
set -uo pipefail
OUTDIR=${1:?usage: tools/$KIT_NAME.sh OUTDIR}
mkdir -p "$OUTDIR"
OUTDIR=$(cd "$OUTDIR" && pwd)
if [ -n "${NOFA_GPU_CHECK_PACK:-}" ]; then
    mkdir -p "$NOFA_GPU_CHECK_PACK" && NOFA_GPU_CHECK_PACK=$(cd "$NOFA_GPU_CHECK_PACK" && pwd) || exit 2
    case "$NOFA_GPU_CHECK_PACK/" in
        "$OUTDIR"/*) echo "NOFA_GPU_CHECK_PACK must lie outside OUTDIR (the archive would pack itself)" >&2; exit 2 ;;
    esac
fi
cd "$(dirname "${BASH_SOURCE[0]}")/.."
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
pack() {  # OUTDIR as NOFA_GPU_CHECK_PACK/$KIT_NAME.tgz + $KIT_SUMMARY_COPY, each written then renamed
    [ -n "${NOFA_GPU_CHECK_PACK:-}" ] || return 0
    mkdir -p "$NOFA_GPU_CHECK_PACK" &&
        tar -czf "$NOFA_GPU_CHECK_PACK/.$KIT_NAME.tgz.tmp" -C "$(dirname "$OUTDIR")" "$(basename "$OUTDIR")" &&
        mv -f "$NOFA_GPU_CHECK_PACK/.$KIT_NAME.tgz.tmp" "$NOFA_GPU_CHECK_PACK/$KIT_NAME.tgz" &&
        cp "$SUMMARY" "$NOFA_GPU_CHECK_PACK/.$KIT_SUMMARY_COPY.tmp" &&
        mv -f "$NOFA_GPU_CHECK_PACK/.$KIT_SUMMARY_COPY.tmp" "$NOFA_GPU_CHECK_PACK/$KIT_SUMMARY_COPY" ||
        echo "== pack: could not write $NOFA_GPU_CHECK_PACK" | tee -a "$OUTDIR/all.log"
}

HAS_GPU=$($PY -c "import torch; print(int(torch.cuda.is_available()))" 2>/dev/null || echo 0)
# A copied working tree can carry a stale .git (the device machine's copy did): the caller's
# NOFA_COMMIT wins, and a dirty tree is marked.
COMMIT="${NOFA_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}$( [ -z "${NOFA_COMMIT:-}" ] && [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ] && echo ' (working tree differs from it)')"
DATE=$(date -u '+%Y-%m-%d %H:%M UTC')
CPU="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) cores"
GPU=$($PY -c "import torch; print(torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no CUDA GPU')" 2>/dev/null || echo "no CUDA GPU")
{
    # The result header of nofa.bench.provenance (docs/benchmarks.md, "Result files"), so a
    # summary copied into benchmarks/results/ says how it was made.
    echo "<!-- nofa-result"
    echo "command: tools/$KIT_NAME.sh $1"
    echo "commit: $COMMIT"
    echo "machine: $GPU; host $CPU"
    echo "date: $DATE"
    echo "repeats: n/a (one run of each step)"
    echo "-->"
    echo
    echo "# $KIT_TITLE"
    echo
    echo "- date: $DATE"
    echo "- commit: $COMMIT"
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
    echo "- CPU: $CPU"
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
