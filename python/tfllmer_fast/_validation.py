"""Argument checks shared by the public API: clear exceptions before anything reaches C++."""

from __future__ import annotations

import os

import numpy as np


def check_n_threads(n_threads: int | None) -> int:
    """Return a positive thread count; ``None`` means all cores (OpenMP's default)."""
    if n_threads is None:
        return os.cpu_count() or 1
    if isinstance(n_threads, bool) or not isinstance(n_threads, (int, np.integer)):
        raise TypeError(f"n_threads must be an int or None, got {type(n_threads).__name__}")
    if n_threads < 1:
        raise ValueError(f"n_threads must be >= 1, got {n_threads}")
    return int(n_threads)


def check_float_matrix(X, name: str = "X", *, allow_empty: bool = False, finite: bool = True) -> np.ndarray:
    """A 2-D float32/float64 array, checked finite (unless ``finite=False``), without copying
    when it already is one.

    Read-only and memory-mapped arrays pass through untouched; other dtypes are converted
    to float64 (integers) or rejected (complex, object). ``finite=False`` skips the NaN/Inf
    scan for callers that get it from :func:`tfllmer_fast.graph.normalization.checked_row_norms`
    (one pass over X instead of two).
    """
    if hasattr(X, "toarray"):
        raise TypeError(f"{name} must be a dense array, got a sparse matrix")
    arr = np.asarray(X)
    if arr.dtype.kind == "c" or arr.dtype == object:
        raise TypeError(f"{name} must be a real float array, got dtype {arr.dtype}")
    if arr.dtype not in (np.float32, np.float64):
        arr = arr.astype(np.float64)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n_items, dim), got shape {arr.shape}")
    if not allow_empty and (arr.shape[0] == 0 or arr.shape[1] == 0):
        raise ValueError(f"{name} is empty (shape {arr.shape})")
    if finite:
        check_finite_rows(arr, name)
    return arr


def check_finite_rows(arr: np.ndarray, what: str = "X", block_elems: int = 1 << 22) -> None:
    """Raise ValueError naming the first row with NaN/Inf. Scans blocks of rows, so a large
    or memory-mapped matrix never gets an n x D temporary."""
    rows = max(1, block_elems // max(arr.shape[1] if arr.ndim > 1 else 1, 1))
    for start in range(0, arr.shape[0], rows):
        block = np.asarray(arr[start : start + rows])
        ok = np.isfinite(block).reshape(block.shape[0], -1).all(axis=1)
        if not ok.all():
            bad = start + int(np.flatnonzero(~ok)[0])
            raise ValueError(f"{what}: row {bad} contains NaN or Inf")
