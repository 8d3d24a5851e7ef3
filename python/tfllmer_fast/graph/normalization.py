"""L2 normalisation of item embeddings (DESIGN section 3).

Zero rows (e.g. items without text) stay zero: they are reported, never turned into NaN.
"""

from __future__ import annotations

import warnings

import numpy as np

from .. import _core
from .._validation import check_float_matrix, check_n_threads

# Rows per block when norms are accumulated in float64: bounds the temporary to a few MB
# whatever n is, so a float32 X is never upcast as a whole.
_BLOCK_ROWS = 1 << 14


def row_norms(X: np.ndarray, n_threads: int | None = None) -> np.ndarray:
    """Euclidean norm of every row, accumulated in float64 (no full copy of X).

    C-contiguous float32/float64 input goes through the OpenMP kernel; anything else
    through numpy, block by block.
    """
    if X.ndim == 2 and X.dtype in (np.float32, np.float64) and X.flags.c_contiguous and X.size:
        return _core.row_norms(X, check_n_threads(n_threads))
    n = X.shape[0]
    out = np.empty(n, dtype=np.float64)
    for start in range(0, n, _BLOCK_ROWS):
        block = np.asarray(X[start : start + _BLOCK_ROWS], dtype=np.float64)
        out[start : start + block.shape[0]] = np.sqrt(np.einsum("ij,ij->i", block, block))
    return out


def checked_row_norms(X: np.ndarray, name: str = "X", n_threads: int | None = None) -> np.ndarray:
    """:func:`row_norms`, raising ValueError naming the first row whose norm is not finite.

    A NaN or Inf entry makes its row's norm NaN or Inf, so this one pass also replaces the
    finiteness scan of the input. (A finite float64 row can still overflow the sum of
    squares; that is reported as such.)
    """
    norms = row_norms(X, n_threads)
    bad = np.flatnonzero(~np.isfinite(norms))
    if bad.size:
        i = int(bad[0])
        if np.isfinite(X[i]).all():
            raise ValueError(f"{name}: row {i} is too large: its squared norm overflows float64")
        raise ValueError(f"{name}: row {i} contains NaN or Inf")
    return norms


def inverse_norms(norms: np.ndarray) -> np.ndarray:
    """``1 / norm`` with 0 for zero rows (so scaling keeps them zero)."""
    inv = np.zeros_like(norms)
    pos = norms > 0
    inv[pos] = 1.0 / norms[pos]
    return inv


def warn_zero_rows(zero_rows: np.ndarray, n: int, stacklevel: int = 3) -> None:
    if zero_rows.size:
        shown = ", ".join(map(str, zero_rows[:5])) + (", ..." if zero_rows.size > 5 else "")
        warnings.warn(
            f"{zero_rows.size} of {n} embedding rows have zero norm (rows {shown}); they are left as zero vectors",
            RuntimeWarning,
            stacklevel=stacklevel,
        )


def normalize_embeddings(X, *, copy: bool = True, return_zero_rows: bool = False, warn: bool = True):
    """Scale every row of ``X`` to unit L2 norm.

    Parameters
    ----------
    X : array-like, shape (n_items, dim)
        float32 or float64 embeddings (other real dtypes become float64). Must be finite.
    copy : bool, default True
        ``False`` normalises ``X`` in place when it is a writeable float array.
    return_zero_rows : bool, default False
        Also return the indices of the zero rows.
    warn : bool, default True
        Emit a ``RuntimeWarning`` naming how many rows have zero norm (if any).

    Returns
    -------
    Xn : ndarray, same dtype as ``X``
        Unit-norm rows; zero rows stay exactly zero.
    zero_rows : ndarray of int64, only if ``return_zero_rows``
        Sorted indices of the rows whose norm is zero.

    Examples
    --------
    >>> import numpy as np
    >>> normalize_embeddings(np.array([[3.0, 4.0], [0.0, 0.0]]), warn=False)
    array([[0.6, 0.8],
           [0. , 0. ]])
    """
    arr = check_float_matrix(X, "X", finite=False)
    norms = checked_row_norms(arr, "X")
    zero_rows = np.flatnonzero(norms == 0)
    if warn:
        warn_zero_rows(zero_rows, arr.shape[0])
    inv = inverse_norms(norms)
    if copy or not arr.flags.writeable or arr is not X:
        out = np.empty_like(arr)
    else:
        out = arr
    for start in range(0, arr.shape[0], _BLOCK_ROWS):
        stop = start + _BLOCK_ROWS
        np.multiply(arr[start:stop], inv[start:stop, None].astype(arr.dtype), out=out[start:stop])
    return (out, zero_rows) if return_zero_rows else out
