#!/usr/bin/env bash
# Create an isolated virtualenv with RecBole 1.2.1 for the benchmark comparison.
#
# RecBole is a benchmark-only dependency: it pins old numpy/pandas (its Config assigns
# np.float = np.float_, removed in numpy 2), so it lives in its own venv, never in the
# package's environment.
#
# Usage: benchmarks/recbole/setup_venv.sh [VENV_DIR]   (default .venv-recbole in the repository root)
set -euo pipefail

VENV="${1:-$(cd "$(dirname "$0")/../.." && pwd)/.venv-recbole}"
PYTHON="${PYTHON:-python3}"
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0}"

start=$(date +%s)
"$PYTHON" -m venv "$VENV"      # deliberately NOT --system-site-packages
PIP=("$VENV/bin/python" -m pip install --no-input --quiet)

# torch first, so the resolver keeps this exact build (CPU wheel locally; CUDA on a GPU host).
"${PIP[@]}" "$TORCH_SPEC"

# RecBole itself without its declared deps: it requires ray<=2.6.3 (only for its
# quick_start hyper-parameter tuning, which the benchmark does not use) and exact old
# colorlog/colorama pins. We install what its modules import at run time instead.
"${PIP[@]}" --no-deps "recbole==1.2.1"
"${PIP[@]}" \
    "$TORCH_SPEC" \
    "numpy<2" \
    "pandas<3" \
    "scipy<1.16" \
    "scikit-learn<1.8" \
    "tqdm>=4.48.2" \
    "colorlog==4.7.2" \
    "colorama==0.4.4" \
    "pyyaml>=5.1" \
    "tensorboard>=2.5" \
    "texttable>=0.9" \
    "tabulate>=0.8.10" \
    "psutil>=5.9" \
    "thop>=0.1.1.post2207130030"

# Smoke test: the modules the benchmark uses import, and versions are what we pinned.
"$VENV/bin/python" - <<'PY'
import numpy, pandas, torch, recbole
from recbole.config import Config                      # noqa: F401
from recbole.data import create_dataset, data_preparation  # noqa: F401
from recbole.trainer import Trainer                    # noqa: F401
from recbole.model.sequential_recommender import SASRec, GRU4Rec  # noqa: F401
print(f"recbole {recbole.__version__}  torch {torch.__version__}  "
      f"numpy {numpy.__version__}  pandas {pandas.__version__}")
PY

end=$(date +%s)
echo "venv: $VENV  size: $(du -sh "$VENV" | cut -f1)  install time: $((end - start)) s"
