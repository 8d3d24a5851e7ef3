"""The tasks of the Rec-PCA Gram pass (run on the workers)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ..graph.partial import RowBlock
from ._cluster import maybe_fault


def block_facts(Xb: np.ndarray, block: RowBlock, lo: int, n_threads: int):
    import tfllmer_fast._core as core

    Xb = np.ascontiguousarray(Xb)
    norms = core.row_norms(Xb, n_threads)
    rows = sp.csr_array((block.data, block.indices, block.indptr), shape=(block.indptr.size - 1, block.n_items))
    deg_full = np.asarray(rows.sum(axis=1, dtype=np.float64)).ravel()  # as laplacian.degrees sums them
    cols = np.unique(block.indices)
    hi = lo + Xb.shape[0]
    needed = cols[(cols < lo) | (cols >= hi)].astype(np.int64)
    return norms, deg_full, needed


def graph_times_task(block: RowBlock, v: np.ndarray) -> np.ndarray:
    G = sp.csr_array(
        (block.data.astype(np.float64), block.indices, block.indptr),
        shape=(block.indptr.size - 1, block.n_items),
    )
    return G @ v


def take_rows(Xb: np.ndarray, local: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(Xb)[local])


def concat_rows(*parts):
    return np.concatenate(parts, axis=0) if parts else None


def gram_task(
    Xb,
    block: RowBlock,
    lo: int,
    vec,
    lam: float,
    ids_list: list,
    rows_list: list,
    hub_ids,
    hub_rows,
    n_threads: int,
    fault=None,
):
    """(X_b^T (T' X)_b, X_b^T wa_b, X_b^T wm_b) in float64 for rows [lo, lo + len(X_b))."""
    maybe_fault(fault, "gram")
    import tfllmer_fast._core as core

    t, s, wa, wm = vec
    Xb = np.ascontiguousarray(Xb)
    rows = Xb.shape[0]
    ids = [np.asarray(i, dtype=np.int64) for i in ids_list] + [np.asarray(hub_ids, dtype=np.int64)]
    mats = [np.asarray(r) for r in rows_list] + [np.asarray(hub_rows)]
    ids_all = np.concatenate(ids) if ids else np.zeros(0, np.int64)
    order = np.argsort(ids_all, kind="stable")
    ext_ids = ids_all[order]
    X_other = (
        np.concatenate(mats, axis=0)[order].astype(Xb.dtype, copy=False)
        if ids_all.size
        else np.zeros((0, Xb.shape[1]), Xb.dtype)
    )
    X_ext = np.ascontiguousarray(np.concatenate([Xb, X_other], axis=0))
    cols = block.indices.astype(np.int64)
    inside = (cols >= lo) & (cols < lo + rows)
    local = np.where(inside, cols - lo, rows + np.searchsorted(ext_ids, cols))
    if np.any(~inside) and not np.array_equal(
        ext_ids[np.clip(local[~inside] - rows, 0, max(ext_ids.size - 1, 0))], cols[~inside]
    ):
        raise RuntimeError("Rec-PCA exchange plan is missing neighbour rows")
    n_ext = X_ext.shape[0]
    indptr = np.concatenate([block.indptr, np.full(n_ext - rows, block.indptr[-1], np.int64)])
    t_ext = np.concatenate([t[lo : lo + rows], np.zeros(n_ext - rows)])
    s_ext = np.concatenate([s[lo : lo + rows], s[ext_ids]])
    Y = core.shifted_graph_matmat(X_ext, indptr, local.astype(np.int32), block.data, t_ext, s_ext, lam, n_threads)
    X64 = Xb.astype(np.float64, copy=False)
    G = X64.T @ Y[:rows].astype(np.float64, copy=False)
    a = X64.T @ wa[lo : lo + rows] if wa is not None else None
    mu = X64.T @ wm[lo : lo + rows] if wm is not None else None
    return G, a, mu


def sum_task(*parts):
    """Left-to-right float64 sum of (G, a, mu) triples: a fixed order, hence fixed bits."""
    G, a, mu = parts[0]
    G = G.copy()
    a = None if a is None else a.copy()
    mu = None if mu is None else mu.copy()
    for g2, a2, m2 in parts[1:]:
        G += g2
        if a is not None:
            a += a2
            mu += m2
    return G, a, mu


def read_memmap_rows(filename: str, dtype: str, shape: tuple, offset: int, lo: int, hi: int) -> np.ndarray:
    mm = np.memmap(filename, dtype=np.dtype(dtype), mode="r", offset=offset, shape=tuple(shape))
    return np.array(mm[lo:hi])
