"""Which build of the compiled core this machine runs.

A source build (``pip install .``) holds one module compiled for the building CPU
(``_core_native``). A portable wheel holds one module per x86-64 level
(``_core_x86_64``, ``_core_x86_64_v3``, ``_core_x86_64_v4``): Eigen's GEMM, the Rec-PCA Gram
path, is several times faster with AVX2/AVX-512, so the loader picks the best level that the
CPU runs, as numpy dispatches its kernels. ``TFLLMER_CORE_TARGET=<target>`` (read, never
set) asks for one build by name, e.g. to compare them.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
from pathlib import Path

#: build targets, best first (the names CMake's TFLLMER_TARGETS uses)
TARGETS = ("native", "x86-64-v4", "x86-64-v3", "x86-64-v2", "x86-64", "generic")

#: /proc/cpuinfo flags each x86-64 level adds (psABI; "pni" is SSE3, "abm" LZCNT). Linux
#: lists AVX/AVX-512 only when the OS saves their registers, so the flags say what runs.
LEVEL_FLAGS = {
    "x86-64-v2": {"cx16", "lahf_lm", "popcnt", "pni", "sse4_1", "sse4_2", "ssse3"},
    "x86-64-v3": {"avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "abm", "movbe", "xsave"},
    "x86-64-v4": {"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"},
}

ENV_VAR = "TFLLMER_CORE_TARGET"


def module_name(target: str) -> str:
    """The extension module of ``target``: ``x86-64-v3`` -> ``_core_x86_64_v3``."""
    return "_core_" + target.replace("-", "_")


def cpu_flags(cpuinfo: str = "/proc/cpuinfo") -> frozenset[str]:
    """The CPU's feature flags (empty when the file is unreadable, e.g. off Linux)."""
    try:
        with open(cpuinfo) as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.partition(":")[2].split())
    except OSError:
        pass
    return frozenset()


def runs_on(target: str, flags: frozenset[str]) -> bool:
    """Whether a module built for ``target`` runs on a CPU with ``flags``. ``native`` and
    ``generic`` are taken to run (a source build is for the CPU that built it)."""
    if not target.startswith("x86-64"):
        return True
    needed: set[str] = set()
    for level in ("x86-64-v2", "x86-64-v3", "x86-64-v4"):
        if TARGETS.index(level) >= TARGETS.index(target):
            needed |= LEVEL_FLAGS[level]
    return needed <= flags


def available_targets(package: str = "tfllmer_fast") -> list[str]:
    """The targets whose module is installed, best first."""
    return [t for t in TARGETS if importlib.util.find_spec(f"{package}.{module_name(t)}") is not None]


def choose_target(available: list[str], flags: frozenset[str], requested: str | None = None) -> str:
    """The best of ``available`` that runs on ``flags``, or ``requested`` when given.

    Raises ImportError naming what is installed when nothing fits."""
    if requested:
        if requested not in available:
            raise ImportError(
                f"{ENV_VAR}={requested!r}, but this installation has the core built for "
                f"{', '.join(available) or 'no target'}"
            )
        return requested
    for target in sorted(available, key=TARGETS.index):
        if runs_on(target, flags):
            return target
    raise ImportError(
        f"no build of tfllmer_fast's compiled core runs on this CPU (installed: "
        f"{', '.join(available) or 'none'}): reinstall from source with `pip install .`"
    )


def select(package: str = "tfllmer_fast") -> str:
    """The module name to load, e.g. ``_core_x86_64_v3``."""
    available = available_targets(package)
    requested = os.environ.get(ENV_VAR) or None
    # A source build needs no CPU probe: it is the only module and made for this CPU.
    flags = frozenset() if requested or available[:1] == ["native"] else cpu_flags()
    return module_name(choose_target(available, flags, requested))


def load_openmp_runtime() -> str:
    """Make ``libgomp.so.1`` loadable for a wheel whose core expects the system's (the wheel
    does not bundle one, so that torch and the core share one OpenMP runtime): load the copy
    that torch ships, found without importing torch. Returns its path; ImportError when
    there is none."""
    spec = importlib.util.find_spec("torch")
    folders = (spec.submodule_search_locations or []) if spec is not None else []
    for folder in folders:
        path = Path(folder) / "lib" / "libgomp.so.1"
        if path.is_file():
            ctypes.CDLL(str(path))  # the loader then resolves the core's libgomp.so.1 to it
            return str(path)
    raise ImportError(
        "tfllmer_fast's compiled core needs the GNU OpenMP runtime libgomp.so.1: install it "
        "(Debian/Ubuntu: apt-get install libgomp1; Fedora: dnf install libgomp) or torch, which ships one"
    )
