"""The matrices of the item co-occurrence graph: the checks every graph goes through, its
degrees, its Laplacians and the shifted operator ``I - lam L`` of Rec-PCA.

Definitions (DESIGN section 2), with ``A`` symmetric, non-negative, self-loops ignored and
``deg = A.sum(axis=1)``:

- ``normalized`` (default): ``L = I - D^{-1/2} A D^{-1/2}``. An isolated item (degree 0) gets
  a row of the identity, ``L[i, i] = 1``. (``scipy.sparse.csgraph.laplacian(normed=True)``
  puts 0 there instead; everywhere else the two agree.)
- ``combinatorial``: ``L = Deg - A``.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .. import _core
from .._validation import check_n_threads

KINDS = ("normalized", "combinatorial")


def check_kind(kind: str) -> str:
    if not isinstance(kind, str) or kind not in KINDS:
        raise ValueError(f"laplacian kind must be one of {KINDS}, got {kind!r}")
    return kind


def check_graph(
    A, n: int | None = None, name: str = "graph", *, symmetry_rtol: float = 1e-5, n_threads: int | None = None
) -> sp.csr_array:
    """Validate a co-occurrence graph and return it as a canonical ``csr_array``.

    Accepts any scipy sparse matrix/array or a dense 2-D array. The result has float32 or
    float64 weights (integer/bool weights become float64), sorted
    indices without duplicates and no diagonal (self-loops are ignored, as in
    ``scipy.sparse.csgraph.laplacian``). Nothing is copied when ``A`` already is such a
    matrix. (scipy may keep int64 indices; :func:`csr_parts` gives the kernels' types.)
    Raises ``ValueError`` for a non-square graph, a size other than ``n``, NaN/Inf,
    negative weights or an asymmetric graph.
    """
    if sp.issparse(A):
        G = sp.csr_array(A)
    else:
        arr = np.asarray(A)
        if arr.dtype == object or arr.ndim != 2:
            raise TypeError(f"{name} must be a scipy sparse matrix or a 2-D array, got {type(A).__name__}")
        G = sp.csr_array(arr)
    if G.ndim != 2 or G.shape[0] != G.shape[1]:
        raise ValueError(f"{name} must be square (n_items x n_items), got shape {G.shape}")
    if n is not None and G.shape[0] != n:
        raise ValueError(
            f"{name} has shape {G.shape} but X has {n} rows: the graph must be n_items x n_items "
            "with item i = row i of X"
        )
    if G.dtype.kind == "c":
        raise TypeError(f"{name} weights must be real, got dtype {G.dtype}")
    if G.dtype not in (np.float32, np.float64):
        G = G.astype(np.float64)
    if not G.has_canonical_format:
        G = G.copy()
        G.sum_duplicates()
    if G.nnz and not np.isfinite(G.data).all():
        raise ValueError(f"{name} contains NaN or Inf weights")
    if G.nnz and G.data.min() < 0:
        raise ValueError(f"{name} has negative weights (min {G.data.min():g}); co-occurrence weights must be >= 0")
    diag = G.diagonal()
    if np.any(diag != 0):
        G = G.copy()
        G.setdiag(0)
        G.eliminate_zeros()
    if G.shape[0] > np.iinfo(np.int32).max:
        raise ValueError(f"{name} has more than 2^31 - 1 items, which is not supported")
    if G.nnz:
        _check_symmetric(G, name, symmetry_rtol, n_threads)
    return G


def _check_symmetric(G: sp.csr_array, name: str, rtol: float, n_threads: int | None) -> None:
    # max |A - A.T| in C++ (binary search for each entry's mirror, in parallel): no
    # transpose copy, which for a large graph took longer than the rest of the checks.
    scale = float(abs(G.data).max())
    worst = _core.csr_max_asymmetry(*csr_parts(G), check_n_threads(n_threads))
    if worst > rtol * scale:
        raise ValueError(
            f"{name} is not symmetric (max |A - A.T| = {worst:g}, max |A| = {scale:g}); "
            "symmetrise it, e.g. (A + A.T) / 2 or A.maximum(A.T)"
        )


def csr_parts(G: sp.csr_array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(indptr int64, indices int32, data)`` of a checked graph, as the C++ kernels take them
    (scipy unifies the two index dtypes inside a matrix, so they are converted here)."""
    return G.indptr.astype(np.int64, copy=False), G.indices.astype(np.int32, copy=False), G.data


def degrees(G: sp.csr_array) -> np.ndarray:
    """Weighted degrees in float64 (self-loops already removed by ``check_graph``)."""
    return np.asarray(G.sum(axis=1, dtype=np.float64)).ravel()


def inv_sqrt_degrees(deg: np.ndarray) -> np.ndarray:
    """``deg^{-1/2}``, with 0 for isolated items."""
    out = np.zeros_like(deg, dtype=np.float64)
    pos = deg > 0
    out[pos] = 1.0 / np.sqrt(deg[pos])
    return out


def laplacian(A, kind: str = "normalized") -> sp.csr_array:
    """Graph Laplacian of a symmetric non-negative co-occurrence graph.

    Parameters
    ----------
    A : sparse matrix or array, shape (n_items, n_items)
        Symmetric, non-negative weights; the diagonal (self-loops) is ignored.
    kind : {"normalized", "combinatorial"}
        ``normalized``: ``L = I - D^{-1/2} A D^{-1/2}``, isolated items get ``L[i, i] = 1``.
        ``combinatorial``: ``L = Deg - A``.

    Returns
    -------
    scipy.sparse.csr_array
        float64, shape (n_items, n_items), sorted indices.

    Examples
    --------
    >>> import scipy.sparse as sp
    >>> A = sp.csr_array([[0, 2.0], [2.0, 0]])
    >>> laplacian(A).toarray()
    array([[ 1., -1.],
           [-1.,  1.]])
    """
    check_kind(kind)
    G = check_graph(A, name="A")
    n = G.shape[0]
    deg = degrees(G)
    G64 = G.astype(np.float64)
    if kind == "normalized":
        s = inv_sqrt_degrees(deg)
        S = sp.diags_array(s)
        L = sp.eye_array(n, format="csr") - S @ G64 @ S
    else:
        L = sp.diags_array(deg) - G64
    L = sp.csr_array(L)
    L.sum_duplicates()
    L.sort_indices()
    return L


def shifted_operator(G: sp.csr_array, kind: str, lam: float) -> tuple[np.ndarray, np.ndarray]:
    """``(t, s)`` with ``I - lam L = diag(t) + lam diag(s) A diag(s)`` for a checked graph."""
    deg = degrees(G)
    if kind == "normalized":
        return np.full(G.shape[0], 1.0 - lam), inv_sqrt_degrees(deg)
    return 1.0 - lam * deg, np.ones(G.shape[0])
