"""Build information of the compiled core."""

from __future__ import annotations

from . import _core


def build_info() -> dict:
    """Versions the C++ core was built with and the OpenMP thread count.

    Keys: ``version``, ``eigen``, ``spectra``, ``openmp`` (the ``_OPENMP`` date),
    ``openmp_max_threads``, ``compiler`` and ``simd`` (vector extensions compiled in).
    """
    return dict(_core.build_info())
