#!/usr/bin/env bash
# The whole TF-LLMER study on ONE GPU within ~15 minutes of device time.
#
# UNTESTED ON A GPU: written on a CPU-only task; the time plan below is an estimate.
#
#   TFLLMER_DATA=/path/to/shared/data bash benchmarks/gpu_study.sh [OUT]
#
# Grid (studies/gpu.toml): 4 dataset rows (beauty, scientific MiniLM, scientific raw 512-d,
# ml-100k at max length 200) x {SASRec, GRU4Rec} x 5 variants x 3 seeds, plus the selection
# grid lam {0.25, 0.5, 1} x window {all, 5} x tau {1, 0.5} (each key only where it applies),
# chosen on validation NDCG@10 with the first seed: 32 runs per dataset/backbone, 256 runs.
#
# Plan: one process per (dataset, backbone, variant) shard, JOBS of them at once on the GPU
# (small models leave the GPU mostly idle, so processes overlap), largest shards first; each
# process uses one CPU thread. Estimate from the CPU timings (Beauty SASRec epoch 5.8 s on 2
# CPU threads, our trainer ~30x RecBole per epoch) and RecBole's H100 figures (23.3 s per
# Beauty epoch, 0.24 s per full ranking): a Beauty run of ~30-40 epochs at <1 s/epoch +
# 0.1-0.3 s evaluation = 20-40 s; the largest shard (Beauty x tfllmer: 14 runs) 5-9 min;
# all shards ~50-80 process-minutes / JOBS=10 -> 6-10 min wall, plus the build.
# A hard BUDGET_S stops training; finished runs are kept, interrupted ones resume from their
# checkpoints on the next call, and the report is written from whatever finished.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-${OUT:-runs/study-gpu}}
CONFIG=${CONFIG:-studies/gpu.toml}
JOBS=${JOBS:-10}
BUDGET_S=${BUDGET_S:-720}
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE PYTHONUNBUFFERED=1
: "${TFLLMER_DATA:?set TFLLMER_DATA to the folder with beauty/, scientific/, ml-100k/}"

if ! python -c "import tfllmer_fast" 2>/dev/null; then
    echo "building tfllmer_fast ..."
    python -m pip install --no-build-isolation -q -e . || exit 1
fi
python - <<'PY' || exit 1
import torch
assert torch.cuda.is_available(), "no CUDA device visible to torch"
print("GPU:", torch.cuda.get_device_name(0), "torch", torch.__version__)
PY

mkdir -p "$OUT/logs"
nvidia-smi --query-gpu=name,memory.used,utilization.gpu --format=csv -l 30 > "$OUT/logs/nvidia-smi.csv" 2>/dev/null &
SMI=$!
start=$(date +%s)
# Shards, most expensive first (beauty, then ml-100k; tfllmer/recpca have the largest grids).
for ds in beauty ml-100k scientific scientific-feat512; do
  for v in tfllmer recpca pca+norm llminit id; do
    for bb in sasrec gru4rec; do
      echo "$ds $bb $v"
    done
  done
done | timeout --signal=INT "$BUDGET_S" xargs -P "$JOBS" -L 1 sh -c \
  'python -m tfllmer_fast study --config "'"$CONFIG"'" --output "'"$OUT"'" --datasets "$0" --backbones "$1" --variants "$2" --no-report --quiet > "'"$OUT"'/logs/$0-$1-$2.log" 2>&1 || echo "shard $0 $1 $2 exited $?"'
echo "training phase: $(( $(date +%s) - start )) s (budget ${BUDGET_S} s)"
kill "$SMI" 2>/dev/null
python -m tfllmer_fast study --config "$CONFIG" --output "$OUT" --report-only
echo "total: $(( $(date +%s) - start )) s; report: $OUT/STUDY.md"
