"""Build information of the compiled core."""

from __future__ import annotations

from . import _core


def build_info() -> dict:
    """Versions the C++ core was built with, the build loaded and the OpenMP thread count.

    Keys: ``version``, ``eigen``, ``spectra``, ``openmp`` (the ``_OPENMP`` date),
    ``openmp_max_threads``, ``compiler``, ``simd`` (vector extensions compiled in),
    ``target`` (the CPU level of the loaded build: ``native`` for a source build, else
    ``x86-64``, ``x86-64-v3``, ... of a portable wheel, the best one this CPU runs) and
    ``openmp_library`` (the OpenMP runtime file in use).
    """
    info = dict(_core.build_info())
    info["openmp_library"] = _core.openmp_library()
    return info
