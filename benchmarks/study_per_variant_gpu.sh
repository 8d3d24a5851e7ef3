#!/usr/bin/env bash
# A study file on ONE GPU within about 10 minutes: one process per variant, all at once,
# each training its seeds in turn, under hard time caps. For the Beauty study files
# (studies/cold_gpu.toml: the cold-start protocol; studies/item_tables_gpu.toml: the item
# tables).
#
#
#   TFLLMER_DATA=/path/to/shared/data bash benchmarks/study_per_variant_gpu.sh STUDY.toml [OUT]
#
# Time plan (Beauty, SASRec): an epoch takes 2.75 s alone on an H200 with prefix rows (0.62 s
# with window rows) and 4.2-6.4 s with six processes time-slicing the GPU; the study files cap
# epochs at 25-30 (patience 5), so a run takes at most ~2-2.5 min and a process's 3 seeds
# ~6-7.5 min. Hard caps: the build gets BUILD_S (default 120 s), training TRAIN_S (default
# 420 s; then every process gets SIGINT, finished runs are kept and interrupted ones resume
# from their checkpoints on the next call); the report is written from whatever finished.
set -uo pipefail
cd "$(dirname "$0")/.."
CONFIG=${1:?usage: study_per_variant_gpu.sh STUDY.toml [OUT]}
OUT=${2:-runs/$(basename "$CONFIG" .toml)}
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
variants=$(python -c "import sys; from tfllmer_fast.experiment.study import StudySpec; print(' '.join(StudySpec.from_file(sys.argv[1]).variants))" "$CONFIG") || exit 1

mkdir -p "$OUT/logs"
start=$(date +%s)
pids=()
for v in $variants; do
    timeout --signal=INT --kill-after=30 "$TRAIN_S" $CLI study --config "$CONFIG" \
        --output "$OUT" --variants "$v" --no-report --quiet > "$OUT/logs/$v.log" 2>&1 &
    pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || echo "a shard exited with $? (124/130: the time cap)"; done
echo "training phase: $(( $(date +%s) - start )) s (cap ${TRAIN_S} s)"
timeout 60 $CLI study --config "$CONFIG" --output "$OUT" --report-only
echo "total: $(( $(date +%s) - start )) s; report: $OUT/STUDY.md"
