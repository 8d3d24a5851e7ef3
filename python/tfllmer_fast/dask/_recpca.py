"""Rec-PCA across a cluster: partial Grams of row blocks, summed in a fixed-order float64
tree, solved on the client (see the package docstring)."""

from __future__ import annotations

import math
from concurrent.futures import CancelledError

import numpy as np

from .._validation import check_int, check_n_threads
from ..graph.partial import RowBlock
from ._cluster import get_client, run_resending, worker_memory_limit
from ._cooccurrence import GraphBlocks
from ._recpca_tasks import (
    block_facts,
    concat_rows,
    gram_task,
    graph_times_task,
    read_memmap_rows,
    sum_task,
    take_rows,
)


def _x_blocks(X, bounds: list[int] | None, client, n_workers: int, scatter):
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
            client.submit(read_memmap_rows, X.filename, X.dtype.str, X.shape, offset, lo, hi, pure=False)
            for lo, hi in zip(bounds[:-1], bounds[1:])
        ]
        return futures, bounds, n, D, X.dtype
    arr = np.asarray(X)
    if arr.ndim != 2:
        raise ValueError(f"X must be 2-D, got shape {arr.shape}")
    n, D = arr.shape
    if bounds is None:
        bounds = [int(x) for x in np.linspace(0, n, 2 * n_workers + 1).round()]
    futures = [scatter(np.ascontiguousarray(arr[lo:hi])) for lo, hi in zip(bounds[:-1], bounds[1:])]
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
    _fault=None,
) -> dict:
    """The centred D x D matrix M of Rec-PCA computed across the workers.

    Returns a dict with ``M`` (float64, symmetric), ``mean`` (mu), ``zero_rows``, the
    exchange plan's sizes (``n_hubs``, ``rows_sent``), ``bounds`` and what bounds M's
    rounding (``sq_norms``, ``t_norm``, see :class:`~tfllmer_fast.graph.recpca_problem.GramProblem`).
    An in-memory X or csr graph is scattered; if a worker dies with some of it, it is sent
    again and the computation starts over (a RuntimeWarning says so). See :func:`recpca_fit`.
    """
    from ..graph.operators import check_graph, check_kind
    from ..graph.recpca_problem import check_lam

    client = get_client(client)
    check_kind(laplacian)
    lam = check_lam(lam)
    n_threads = check_n_threads(n_threads)
    split_every = check_int(split_every, "split_every", minimum=2)
    if not 0 < hub_fraction <= 1:
        raise ValueError(f"hub_fraction must lie in (0, 1], got {hub_fraction!r}")
    _, n_workers = worker_memory_limit(client, None)

    if isinstance(graph, GraphBlocks):
        G = None
    else:
        G = check_graph(graph, None, name="graph", n_threads=n_threads)

    def job(scatter):
        return _gram_job(
            scatter,
            client,
            X,
            graph if G is None else G,
            lam,
            laplacian,
            normalize,
            center,
            n_threads,
            hub_fraction,
            split_every,
            n_workers,
            _fault,
        )

    try:
        return run_resending(client, job, "computing Rec-PCA's M")
    except CancelledError:
        if G is None and any(f.status in ("cancelled", "lost") for f in graph.blocks):
            raise RuntimeError(
                "the graph's row blocks were lost with a worker (blocks counted from in-memory shards cannot be "
                "recomputed): pass the graph gathered with to_csr(), or count it from shard files"
            ) from None
        raise


def _gram_job(
    scatter, client, X, graph, lam, laplacian, normalize, center, n_threads, hub_fraction, split_every, n_workers, fault
) -> dict:
    """M across the workers for checked arguments (see :func:`recpca_gram`)."""
    from ..graph.operators import inv_sqrt_degrees
    from ..graph.recpca_problem import operator_norm_bound, row_scaling

    if isinstance(graph, GraphBlocks):
        bounds = list(graph.bounds)
        gblocks = graph.blocks
        n_graph = graph.n_items
    else:
        G = graph
        n_graph = G.shape[0]
        bounds = None
        gblocks = None
    xfut, bounds, n, D, dtype = _x_blocks(X, bounds, client, n_workers, scatter)
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
            gblocks.append(scatter(rb))
    nb = len(bounds) - 1

    facts = [
        client.submit(block_facts, x, g, lo, n_threads, pure=False) for x, g, lo in zip(xfut, gblocks, bounds[:-1])
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
    r, zero_rows = row_scaling(norms, normalize)
    t, s = t0 * r * r, s0 * r
    if center:
        s0_f = scatter(s0, broadcast=True)
        Gs = np.concatenate(client.gather([client.submit(graph_times_task, g, s0_f, pure=False) for g in gblocks]))
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
            hub_parts.append(client.submit(take_rows, xfut[c_], ids - lo, pure=False))
            hub_ids.append(ids)
    hub_rows = client.submit(concat_rows, *hub_parts, pure=False) if hub_parts else scatter(np.zeros((0, D), dtype))
    hub_ids = np.concatenate(hub_ids) if hub_ids else np.zeros(0, np.int64)
    if nb > 1 and hub_parts:
        client.replicate([hub_rows])
    vec = scatter((t, s, wa, wm), broadcast=True)
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
                rows_list.append(client.submit(take_rows, xfut[c_], ids - clo, pure=False))
                rows_sent += ids.size
        grams.append(
            client.submit(
                gram_task,
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
                fault,
                pure=False,
            )
        )
    level = grams
    while len(level) > 1:
        level = [
            client.submit(sum_task, *level[i : i + split_every], pure=False) for i in range(0, len(level), split_every)
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
        "sq_norms": float(np.sum((norms * r) ** 2)),
        "t_norm": operator_norm_bound(laplacian, lam, float(deg.max(initial=0.0))),
        "dtype": np.dtype(dtype),
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
    _fault=None,
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

    from ..graph.recpca import RecPCA
    from ..graph.recpca_problem import (
        check_params,
        convergence_error,
        rank_deficient,
        rounding_floor,
        set_fitted,
        use_dense_eig,
    )

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
    n, D = int(shape[0]), int(shape[1])
    d, lam_f, ncv_v = check_params(est, n, D)
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
        _fault=_fault,
    )
    dense = use_dense_eig(d, D, ncv_v, rank_deficient(n, D, center))
    init = None if random_state is None else np.random.default_rng(random_state).standard_normal(D)
    res = core.recpca_eig(
        res_m["M"], d, ncv_v, int(max_iter), float(tol), init, bool(dense), check_n_threads(n_threads)
    )
    if not res["converged"]:
        raise convergence_error(res, "gram", d, ncv_v, n, D, center, est)
    res["mean"] = res_m["mean"]
    floor = rounding_floor(res_m["sq_norms"], res_m["t_norm"], res_m["mean"], n, D, res_m["dtype"])
    return set_fitted(
        est, res, lam=lam_f, zero_rows=res_m["zero_rows"], solver="gram", dense=dense, n=n, dim=D, floor=floor
    )
