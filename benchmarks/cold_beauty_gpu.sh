#!/usr/bin/env bash
# Beauty under the cold-start protocol (studies/cold_gpu.toml) within 10 minutes of ONE GPU.
#
# UNTESTED ON A GPU: written on a CPU-only task; the time plan is an estimate.
#
#   TFLLMER_DATA=/path/to/shared/data bash benchmarks/cold_beauty_gpu.sh [OUT]
#
# Plan: one process per variant (5 at once on the GPU, one CPU thread each), each training
# its 3 seeds in turn. Measured on an H200: a SASRec Beauty epoch takes 2.75 s alone and
# 4.2-6.4 s with six processes; 25 epochs at most (patience 5) + evaluation and the aligned
# map (7 validation passes, 0.03 s each) -> at most ~2.5 min per run, ~7.5 min per process.
# Hard caps: the build gets BUILD_S (default 120 s), training TRAIN_S (default 420 s; then
# every process gets SIGINT, finished runs are kept and interrupted ones resume from their
# checkpoints on the next call), the report is written from whatever finished.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-${OUT:-runs/cold-beauty-gpu}}
CONFIG=${CONFIG:-studies/cold_gpu.toml}
BUILD_S=${BUILD_S:-120}
TRAIN_S=${TRAIN_S:-420}
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE PYTHONUNBUFFERED=1
: "${TFLLMER_DATA:?set TFLLMER_DATA to the folder with beauty/}"
CLI="python -m tfllmer_fast"

if ! python -c "import tfllmer_fast._core" 2>/dev/null; then
    echo "building tfllmer_fast ..."
    timeout "$BUILD_S" python -m pip install --no-build-isolation -q -e . || exit 1
fi
python - <<'PY' || exit 1
import torch
assert torch.cuda.is_available(), "no CUDA device visible to torch"
print("GPU:", torch.cuda.get_device_name(0), "torch", torch.__version__)
PY

mkdir -p "$OUT/logs"
start=$(date +%s)
pids=()
for v in tfllmer recpca pca+norm llminit id; do
    timeout --signal=INT --kill-after=30 "$TRAIN_S" $CLI study --config "$CONFIG" \
        --output "$OUT" --variants "$v" --no-report --quiet > "$OUT/logs/$v.log" 2>&1 &
    pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || echo "a shard exited with $? (124/130: the time cap)"; done
echo "training phase: $(( $(date +%s) - start )) s (cap ${TRAIN_S} s)"
timeout 60 $CLI study --config "$CONFIG" --output "$OUT" --report-only
echo "total: $(( $(date +%s) - start )) s; report: $OUT/STUDY.md"
