"""Rec-PCA across a cluster: partial Grams of row blocks, summed in a fixed-order float64
tree, solved on the client (see the package docstring)."""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp

from .._validation import check_n_threads
from ..graph.partial import (
    RowBlock,
)
from ._cluster import (
    _get_client,
    _worker_memory_limit,
)
from .cooccurrence import GraphBlocks


def _block_facts(Xb: np.ndarray, block: RowBlock, lo: int, n_threads: int):
    import tfllmer_fast._core as core

    Xb = np.ascontiguousarray(Xb)
    norms = core.row_norms(Xb, n_threads)
    rows = sp.csr_array((block.data, block.indices, block.indptr), shape=(block.indptr.size - 1, block.n_items))
    deg_full = np.asarray(rows.sum(axis=1, dtype=np.float64)).ravel()  # as laplacian.degrees sums them
    cols = np.unique(block.indices)
    hi = lo + Xb.shape[0]
    needed = cols[(cols < lo) | (cols >= hi)].astype(np.int64)
    return norms, deg_full, needed


def _graph_times_task(block: RowBlock, v: np.ndarray) -> np.ndarray:
    G = sp.csr_array(
        (block.data.astype(np.float64), block.indices, block.indptr),
        shape=(block.indptr.size - 1, block.n_items),
    )
    return G @ v


def _take_rows(Xb: np.ndarray, local: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(Xb)[local])


def _concat_rows(*parts):
    return np.concatenate(parts, axis=0) if parts else None


def _gram_task(
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
):
    """(X_b^T (T' X)_b, X_b^T wa_b, X_b^T wm_b) in float64 for rows [lo, lo + len(X_b))."""
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


def _sum_task(*parts):
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


def _read_memmap_rows(filename: str, dtype: str, shape: tuple, offset: int, lo: int, hi: int) -> np.ndarray:
    mm = np.memmap(filename, dtype=np.dtype(dtype), mode="r", offset=offset, shape=tuple(shape))
    return np.array(mm[lo:hi])


def _x_blocks(X, bounds: list[int] | None, client, n_workers: int):
    """(futures of row blocks of X, bounds, n, D, dtype)."""
    import dask.array as da

    if isinstance(X, da.Array):
        if X.ndim != 2:
            raise ValueError(f"X must be 2-D, got shape {X.shape}")
        n, D = X.shape
        if bounds is None:
            bounds = [0] + [int(x) for x in np.cumsum(X.chunks[0])]
        Xr = X.rechunk({0: tuple(int(x) for x in np.diff(bounds)), 1: -1})
        futures = client.compute(list(Xr.to_delayed()[:, 0]))
        return futures, bounds, n, D, X.dtype
    if isinstance(X, np.memmap) and X.filename is not None and X.flags.c_contiguous:
        n, D = X.shape
        if bounds is None:
            bounds = [int(x) for x in np.linspace(0, n, 2 * n_workers + 1).round()]
        base = X
        while isinstance(base.base, np.memmap):
            base = base.base
        offset = X.offset + (X.__array_interface__["data"][0] - base.__array_interface__["data"][0])
        futures = [
            client.submit(_read_memmap_rows, X.filename, X.dtype.str, X.shape, offset, lo, hi, pure=False)
            for lo, hi in zip(bounds[:-1], bounds[1:])
        ]
        return futures, bounds, n, D, X.dtype
    arr = np.asarray(X)
    if arr.ndim != 2:
        raise ValueError(f"X must be 2-D, got shape {arr.shape}")
    n, D = arr.shape
    if bounds is None:
        bounds = [int(x) for x in np.linspace(0, n, 2 * n_workers + 1).round()]
    futures = [client.scatter(np.ascontiguousarray(arr[lo:hi]), hash=False) for lo, hi in zip(bounds[:-1], bounds[1:])]
    return futures, bounds, n, D, arr.dtype


def recpca_gram(
    X,
    graph,
    *,
    lam: float = 0.5,
    laplacian: str = "normalized",
    normalize: bool = True,
    center: bool = True,
    n_threads: int = 1,
    hub_fraction: float = 0.5,
    split_every: int = 4,
    client=None,
) -> dict:
    """The centred D x D matrix M of Rec-PCA computed across the workers.

    Returns a dict with ``M`` (float64, symmetric), ``mean`` (mu), ``zero_rows`` and the
    exchange plan's sizes (``n_hubs``, ``rows_sent``). See :func:`recpca_fit`.
    """
    from ..graph.laplacian import check_graph, check_kind, inv_sqrt_degrees
    from ..graph.normalization import inverse_norms, warn_zero_rows

    client = _get_client(client)
    check_kind(laplacian)
    if (
        isinstance(lam, bool)
        or not isinstance(lam, (int, float, np.integer, np.floating))
        or not np.isfinite(lam)
        or lam < 0
    ):
        raise ValueError(f"lam must be a finite number >= 0, got {lam!r}")
    lam = float(lam)
    n_threads = check_n_threads(n_threads)
    if not 0 < hub_fraction <= 1:
        raise ValueError(f"hub_fraction must lie in (0, 1], got {hub_fraction!r}")
    _, n_workers = _worker_memory_limit(client, None)

    if isinstance(graph, GraphBlocks):
        bounds = list(graph.bounds)
        gblocks = graph.blocks
        n_graph = graph.n_items
    else:
        G = check_graph(graph, None, name="graph", n_threads=n_threads)
        n_graph = G.shape[0]
        bounds = None
        gblocks = None
    xfut, bounds, n, D, dtype = _x_blocks(X, bounds, client, n_workers)
    if np.dtype(dtype) not in (np.float32, np.float64):
        raise TypeError(f"X must be float32 or float64, got {dtype}")
    if n_graph != n:
        raise ValueError(f"graph has shape {(n_graph, n_graph)} but X has {n} rows")
    if gblocks is None:
        indptr = G.indptr.astype(np.int64)
        gblocks = []
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            a, b = int(indptr[lo]), int(indptr[hi])
            rb = RowBlock(lo, n, indptr[lo : hi + 1] - a, G.indices[a:b].astype(np.int32), G.data[a:b])
            gblocks.append(client.scatter(rb, hash=False))
    nb = len(bounds) - 1

    facts = [
        client.submit(_block_facts, x, g, lo, n_threads, pure=False) for x, g, lo in zip(xfut, gblocks, bounds[:-1])
    ]
    facts = client.gather(facts)
    norms = np.concatenate([f[0] for f in facts])
    deg = np.concatenate([f[1] for f in facts])
    needed = [f[2] for f in facts]
    if not np.all(np.isfinite(norms)):
        bad = int(np.flatnonzero(~np.isfinite(norms))[0])
        raise ValueError(f"X: row {bad} contains NaN or Inf")
    if laplacian == "normalized":
        t0, s0 = np.full(n, 1.0 - lam), inv_sqrt_degrees(deg)
    else:
        t0, s0 = 1.0 - lam * deg, np.ones(n)
    if normalize:
        r = inverse_norms(norms)
        zero_rows = np.flatnonzero(norms == 0)
        warn_zero_rows(zero_rows, n)
    else:
        r = np.ones(n)
        zero_rows = np.zeros(0, np.int64)
    t, s = t0 * r * r, s0 * r
    if center:
        s0_f = client.scatter(s0, broadcast=True, hash=False)
        Gs = np.concatenate(client.gather([client.submit(_graph_times_task, g, s0_f, pure=False) for g in gblocks]))
        u = t0 + lam * s0 * Gs
        wa, wm, c = r * u, r / n, float(u.sum())
    else:
        wa = wm = None
        c = 0.0

    # The exchange plan: rows wanted by at least hub_fraction of the blocks (and by two) are
    # hubs, gathered once and replicated; every other wanted row goes to its block alone.
    want = np.bincount(np.concatenate(needed), minlength=n) if n else np.zeros(0, np.int64)
    hub_min = max(2, math.ceil(hub_fraction * nb))
    hubs = np.flatnonzero(want >= hub_min)
    hub_parts, hub_ids = [], []
    for c_ in range(nb):
        lo, hi = bounds[c_], bounds[c_ + 1]
        ids = hubs[(hubs >= lo) & (hubs < hi)]
        if ids.size:
            hub_parts.append(client.submit(_take_rows, xfut[c_], ids - lo, pure=False))
            hub_ids.append(ids)
    hub_rows = (
        client.submit(_concat_rows, *hub_parts, pure=False)
        if hub_parts
        else client.scatter(np.zeros((0, D), dtype), hash=False)
    )
    hub_ids = np.concatenate(hub_ids) if hub_ids else np.zeros(0, np.int64)
    if nb > 1 and hub_parts:
        client.replicate([hub_rows])
    vec = client.scatter((t, s, wa, wm), broadcast=True, hash=False)
    is_hub = np.zeros(n, bool)
    is_hub[hubs] = True
    grams, rows_sent = [], 0
    for b in range(nb):
        lo = bounds[b]
        own = needed[b][~is_hub[needed[b]]]
        ids_list, rows_list = [], []
        for c_ in range(nb):
            if c_ == b:
                continue
            clo, chi = bounds[c_], bounds[c_ + 1]
            ids = own[(own >= clo) & (own < chi)]
            if ids.size:
                ids_list.append(ids)
                rows_list.append(client.submit(_take_rows, xfut[c_], ids - clo, pure=False))
                rows_sent += ids.size
        grams.append(
            client.submit(
                _gram_task,
                xfut[b],
                gblocks[b],
                lo,
                vec,
                lam,
                ids_list,
                rows_list,
                hub_ids,
                hub_rows,
                n_threads,
                pure=False,
            )
        )
    level = grams
    while len(level) > 1:
        level = [
            client.submit(_sum_task, *level[i : i + split_every], pure=False) for i in range(0, len(level), split_every)
        ]
    Gm, a, mu = level[0].result()
    if center:
        M = Gm - np.outer(a, mu) - np.outer(mu, a) + c * np.outer(mu, mu)
    else:
        M = Gm
        mu = np.zeros(D)
    M = 0.5 * (M + M.T)
    return {
        "M": M,
        "mean": mu,
        "zero_rows": zero_rows,
        "n_hubs": int(hubs.size),
        "rows_sent": int(rows_sent),
        "bounds": bounds,
    }


def recpca_fit(
    X,
    graph,
    n_components: int,
    *,
    lam: float = 0.5,
    laplacian: str = "normalized",
    normalize: bool = True,
    center: bool = True,
    tol: float = 1e-10,
    max_iter: int = 1000,
    ncv: int | None = None,
    random_state=None,
    normalize_output: bool = False,
    n_threads: int = 1,
    hub_fraction: float = 0.5,
    split_every: int = 4,
    client=None,
):
    """Fit :class:`tfllmer_fast.RecPCA` with the Gram pass spread over the workers.

    ``X``: a dask array chunked by rows (any column chunking is undone), a ``numpy.memmap``
    of a file every worker can read, or an in-memory array (scattered in row blocks).
    ``graph``: a csr_array (split into row blocks like X) or the :class:`GraphBlocks` that
    :func:`cooccurrence` returned with ``return_blocks=True`` (X then follows its bounds).
    The other options are RecPCA's; the result is a fitted ``RecPCA`` (``solver_ = "gram"``)
    whose M agrees with the single-process one to rounding (float64 X: about 1e-15 relative).
    """
    import tfllmer_fast._core as core

    from ..graph.recpca import RecPCA, RecPCAConvergenceError, default_ncv, use_dense_eig

    est = RecPCA(
        n_components,
        lam=lam,
        laplacian=laplacian,
        normalize=normalize,
        center=center,
        solver="gram",
        tol=tol,
        max_iter=max_iter,
        ncv=ncv,
        n_threads=n_threads,
        random_state=random_state,
        normalize_output=normalize_output,
    )
    shape = X.shape
    if len(shape) != 2:
        raise ValueError(f"X must be 2-D, got shape {shape}")
    d, lam_f, ncv_v = est._check_params(int(shape[0]), int(shape[1]))
    res_m = recpca_gram(
        X,
        graph,
        lam=lam_f,
        laplacian=laplacian,
        normalize=normalize,
        center=center,
        n_threads=n_threads,
        hub_fraction=hub_fraction,
        split_every=split_every,
        client=client,
    )
    D = int(shape[1])
    dense = use_dense_eig(d, D, ncv_v if ncv is not None else default_ncv(d, D))
    init = None if random_state is None else np.random.default_rng(random_state).standard_normal(D)
    res = core.recpca_eig(
        res_m["M"], d, ncv_v, int(max_iter), float(tol), init, bool(dense), check_n_threads(n_threads)
    )
    if not res["converged"]:
        raise RecPCAConvergenceError(
            f"RecPCA found only {res['nconv']} of {d} eigenvectors after {res['n_iter']} restarts: raise max_iter, "
            "loosen tol or enlarge ncv"
        )
    res["mean"] = res_m["mean"]
    return est._set_fitted(res, d, lam_f, res_m["zero_rows"], "gram", dense, D)
