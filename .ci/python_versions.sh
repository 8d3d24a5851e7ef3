#!/usr/bin/env bash
# The oldest and the newest Python that pyproject declares: build the package, import it and
# run the torch-free tests (data and graph layers, the build, OpenMP, the config module) with
# no torch installed (torch's CPU wheel exists here for one Python only; elsewhere pip would
# pull a multi-GB CUDA build).
#
#   .ci/python_versions.sh                       # the versions below
#   TFLLMER_CI_PYTHONS="3.12" .ci/python_versions.sh
#
# An interpreter is found as python3.X on PATH, else through pyenv; a missing one is reported
# as not checked.
set -euo pipefail
cd "$(dirname "$0")/.."
VERSIONS=${TFLLMER_CI_PYTHONS-3.10 3.13}

find_python() {
  local v=$1
  if command -v "python$v" >/dev/null && "python$v" --version >/dev/null 2>&1; then
    command -v "python$v"
  elif command -v pyenv >/dev/null; then
    local full
    full=$(pyenv versions --bare | grep -E "^${v//./\\.}(\.[0-9]+)?$" | tail -1)
    [ -n "$full" ] && echo "$(pyenv prefix "$full")/bin/python$v"
  fi
}

for v in $VERSIONS; do
  start=$(date +%s)
  py=$(find_python "$v") || true
  if [ -z "$py" ] || [ ! -x "$py" ]; then
    # A machine without that interpreter cannot check it; say so loudly rather than fail CI.
    echo "Python $v: NOT CHECKED, interpreter not found (python$v on PATH or pyenv)" >&2
    continue
  fi
  env_dir=".venv-ci-py$v"
  "$py" -m venv --clear "$env_dir"
  "$env_dir/bin/python" -m pip install -q --upgrade pip
  # What the torch-free tests need; tomli is what 3.10 reads TOML with (no tomllib).
  "$env_dir/bin/python" -m pip install -q numpy scipy tqdm pytest pytest-benchmark hypothesis pandas pyarrow \
    scikit-learn "tomli; python_version < '3.11'"
  # The package alone (its torch requirement is not installed), built for this Python; the
  # build folder is kept so that a second run rebuilds only what changed.
  "$env_dir/bin/python" -m pip install -q --no-deps -Cbuild-dir="build/ci-py$v" .
  "$env_dir/bin/python" -c "import tfllmer_fast, json; print(json.dumps(tfllmer_fast.build_info()))"
  "$env_dir/bin/python" -m pytest -q -p no:cacheprovider tests/data tests/graph tests/test_build.py \
    tests/test_openmp.py tests/test_python_versions.py
  "$env_dir/bin/python" -c "import sys; sys.exit('torch' in sys.modules)"
  echo "Python $v: passed in $(( $(date +%s) - start )) s"
done
