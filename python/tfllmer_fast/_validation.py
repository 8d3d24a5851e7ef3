"""Argument checks shared by the public API: clear exceptions before anything reaches C++."""

from __future__ import annotations

import numpy as np

from ._openmp import available_cpus


def check_int(value, name: str, *, minimum: int | None = None, allow_none: bool = False) -> int | None:
    """``value`` as a Python int, or a clear exception naming ``name``.

    Accepts Python and numpy integers; rejects ``bool`` (``True`` is an int to Python, never a
    count here), floats (even ``2.0``) and anything else with a ``TypeError``, and values below
    ``minimum`` with a ``ValueError``. ``allow_none=True`` passes ``None`` through.

    Examples
    --------
    >>> check_int(3, "window", minimum=1)
    3
    >>> check_int(None, "top_k", minimum=1, allow_none=True) is None
    True
    """
    if value is None and allow_none:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        bound = "" if minimum is None else f" >= {minimum}"
        alt = " or None" if allow_none else ""
        shown = repr(value) if isinstance(value, (bool, float, str, np.generic)) else type(value).__name__
        raise TypeError(f"{name} must be an int{bound}{alt}, got {shown}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}{' (or None)' if allow_none else ''}, got {value}")
    return int(value)


def check_n_threads(n_threads: int | None) -> int:
    """Return a positive thread count; ``None`` means every CPU this process may run on
    (OpenMP's default)."""
    if n_threads is None:
        return available_cpus()
    return check_int(n_threads, "n_threads", minimum=1)


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
