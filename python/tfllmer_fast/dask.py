"""Scale-out on Dask: the co-occurrence graph and Rec-PCA across the workers of a cluster.

Needs ``dask[distributed]`` (``pip install tfllmer_fast[dask]``). The arithmetic lives in
:mod:`tfllmer_fast.graph.partial` (engine-agnostic exact partials); this module only plans
and schedules tasks on a ``distributed.Client``.

Co-occurrence (:func:`cooccurrence`): one task per shard counts its users into an exact
upper-triangle partial. Then either

* ``reduce="tree"``: the partials are merged in a fixed tree (``split_every`` at a time) and
  one worker finishes the whole graph - the unpruned graph must fit one worker; or
* ``reduce="shuffle"``: every partial is mirrored and split into row blocks
  ``[bounds[b], bounds[b+1])`` chosen so that the blocks hold about equal numbers of
  entries (popular items have many); each block's pieces are merged and finished on one
  worker (``min_count`` there; ``top_k`` with the k-th entry of every row gathered once).
  The graph may stay on the cluster as row blocks (``return_blocks=True``).

Sums are exact, so every shard count, block count, reduction and retry gives the graph of
:func:`tfllmer_fast.cooccurrence` on all users, bit for bit.

Rule: a user's interactions lie in one shard (a user split across shards would lose the
pairs across the cut). Inputs with user ids (Parquet shards, DataFrames) are checked; for
``(offsets, items)`` and ``.npz``/``.npy`` shards, which carry no user ids, it is the
caller's promise.

Rec-PCA (:func:`recpca_fit`): each row block of X computes its partial D x D Gram
``X_b^T (T' X)_b`` in float64 with the rows of its graph neighbours, fetched once by a plan
(rows needed by many blocks - the hubs - are replicated to every worker instead); the
partials are summed in a fixed-order tree, the centring correction is applied on the client
and M is solved there with the Gram path's eigensolver.

Threads: every task runs its kernels with ``n_threads`` OpenMP threads (default 1: one per
Dask worker thread; ``None`` would mean all cores in every task and oversubscribe the node).
"""

from __future__ import annotations

import math
import operator
import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

try:
    import distributed
except ImportError as e:  # pragma: no cover - the [dask] extra
    raise ImportError("tfllmer_fast.dask needs dask and distributed: pip install 'tfllmer_fast[dask]'") from e

from ._validation import check_n_threads
from .graph.cooccurrence import (
    _check_n_items,
    _check_weighting,
    check_index_dtype,
    check_min_count,
    check_optional_positive_int,
    integer_array,
)
from .graph.partial import (
    BYTES_PER_ENTRY,
    CoocOptionsKey,
    CoocPartial,
    RowBlock,
    assemble_blocks,
    top_k_filter,
    top_k_stats,
)
from .graph.shards import iter_shard

__all__ = ["cooccurrence", "recpca_fit", "recpca_gram", "GraphBlocks", "plan_row_blocks"]

REDUCES = ("auto", "tree", "shuffle")
# Share of a worker's memory limit that a task's estimated peak may take. Dask starts
# spilling at 60 % and pauses the worker at 80 %; half leaves room for the inputs in flight.
MEMORY_BUDGET = 0.5
# Float32 graph from the finish: int32 column + float32 weight per entry (int64 indptr aside).
FINISHED_BYTES_PER_ENTRY = 8


def _get_client(client):
    if client is not None:
        return client
    try:
        return distributed.get_client()
    except ValueError as e:
        raise ValueError("no Dask client: pass client=distributed.Client(...) or create one first") from e


def _worker_memory_limit(client, memory_limit) -> tuple[int, int]:
    """(bytes per worker, number of workers)."""
    workers = (
        client.scheduler_info(n_workers=-1)["workers"]
        if _accepts_n_workers(client)
        else client.scheduler_info()["workers"]
    )
    n_workers = max(1, len(workers))
    if memory_limit is not None:
        if (
            isinstance(memory_limit, bool)
            or not isinstance(memory_limit, (int, np.integer))
            or memory_limit < 1
        ):
            raise ValueError(f"memory_limit must be a positive number of bytes, got {memory_limit!r}")
        return int(memory_limit), n_workers
    limits = [w.get("memory_limit") or 0 for w in workers.values()]
    if limits and min(limits) > 0:
        return int(min(limits)), n_workers
    import psutil

    return int(psutil.virtual_memory().total // n_workers), n_workers


def _accepts_n_workers(client) -> bool:
    import inspect

    try:
        return "n_workers" in inspect.signature(client.scheduler_info).parameters
    except (TypeError, ValueError):  # pragma: no cover
        return False


def _gib(x: float) -> str:
    return f"{x / 2**30:.2f} GiB"


# ---------------------------------------------------------------------------------------
# faults (tests only): a task kills its own worker once, the first time a stage runs.


def _maybe_fault(fault, stage: str) -> None:
    """``fault[stage]``: a folder, or (folder, times): the first ``times`` (default 1) runs of
    the stage, counted by marker files there, kill their worker process."""
    if not fault or stage not in fault:
        return
    spec = fault[stage]
    folder, times = (spec, 1) if isinstance(spec, (str, os.PathLike)) else spec
    for k in range(times):
        marker = os.path.join(folder, f"{stage}.killed" + (f".{k}" if k else ""))
        try:
            fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            continue
        os.close(fd)
        os._exit(1)


# ---------------------------------------------------------------------------------------
# tasks (module-level functions: pickled by reference)


def _frame_chunk(df, label: str) -> tuple[np.ndarray, np.ndarray]:
    """(offsets, items) of a pandas DataFrame of (user, item[, time]) rows, users whole."""
    missing = {"user", "item"} - set(df.columns)
    if missing:
        raise ValueError(
            f"{label}: needs columns 'user' and 'item' (and optionally 'time'), missing {sorted(missing)}"
        )
    users = np.asarray(df["user"].to_numpy())
    items = integer_array(np.asarray(df["item"].to_numpy()), f"{label}: column 'item'")
    if "time" in df.columns:
        order = np.lexsort((np.asarray(df["time"].to_numpy()), users))
    else:
        order = np.argsort(users, kind="stable")  # keeps each user's rows in their given order
    users, items = users[order], items[order]
    starts = np.flatnonzero(users[1:] != users[:-1]) + 1 if users.size else np.zeros(0, np.int64)
    offsets = (
        np.concatenate([[0], starts, [users.size]]).astype(np.int64) if users.size else np.zeros(1, np.int64)
    )
    return offsets, items


def _chunks_of(source, label: str, max_interactions: int):
    if isinstance(source, (str, os.PathLike)):
        return iter_shard(source, max_interactions)
    if hasattr(source, "columns") and hasattr(source, "iloc"):
        return [_frame_chunk(source, label)]
    if isinstance(source, (tuple, list)) and len(source) == 2:
        return [(source[0], source[1])]
    raise TypeError(
        f"{label}: a shard is (offsets, items), a path or a pandas DataFrame, got {type(source).__name__}"
    )


def _count_task(source, label: str, key: CoocOptionsKey, n_threads: int, max_interactions: int, fault=None):
    try:
        part = CoocPartial.count(
            _chunks_of(source, label, max_interactions),
            key.n_items,
            window=key.window,
            weighting=key.weighting,
            max_history=key.max_history,
            n_threads=n_threads,
            label=label,
        )
    except MemoryError as e:
        raise MemoryError(
            f"{label}: out of memory while counting this shard ({e}); split it into smaller "
            "shards (each shard's own graph must fit a worker)"
        ) from None
    _maybe_fault(fault, "count")
    return part


def _summary_task(part: CoocPartial, bucket: int) -> dict:
    entries = part.row_entries()
    n_buckets = -(-part.n_items // bucket) if part.n_items else 0
    hist = (
        np.add.reduceat(entries, np.arange(0, part.n_items, bucket))
        if part.n_items
        else np.zeros(0, np.int64)
    )
    assert hist.size == n_buckets
    return {
        "nnz": part.nnz,
        "nbytes": part.nbytes,
        "hist": hist.astype(np.int64),
        "n_users": part.n_users,
        "n_interactions": part.n_interactions,
    }


def _users_task(source, label: str) -> np.ndarray:
    """Sorted distinct user ids of a shard that has them (empty when it has none)."""
    if isinstance(source, (str, os.PathLike)) and str(source).endswith(".parquet"):
        import pyarrow.parquet as pq

        users = pq.read_table(source, columns=["user"]).column("user").to_numpy()
        return np.unique(users)
    if hasattr(source, "columns") and "user" in getattr(source, "columns", ()):
        return np.unique(np.asarray(source["user"].to_numpy()))
    return np.zeros(0, np.int64)


def _labelled(users: np.ndarray, label: str):
    return [label], users


def _disjoint_union(*parts):
    """parts: (labels, sorted users) pairs; raises when a user is in two of them."""
    labels = [lab for labs, _ in parts for lab in labs]
    owner = np.concatenate([np.full(u.size, k) for k, (_, u) in enumerate(parts)]) if parts else np.zeros(0)
    users = np.concatenate([u for _, u in parts]) if parts else np.zeros(0)
    order = np.argsort(users, kind="stable")
    users, owner = users[order], owner[order]
    dup = np.flatnonzero(users[1:] == users[:-1])
    if dup.size:
        k = int(dup[0])
        a, b = parts[int(owner[k])][0], parts[int(owner[k + 1])][0]
        raise ValueError(
            f"user {users[k]!r} appears in more than one shard ({a[0] if len(a) == 1 else a} and "
            f"{b[0] if len(b) == 1 else b}): each user's interactions must lie in one shard or partition, "
            "or pairs across the cut are lost; repartition by user first (e.g. ddf.shuffle('user'))"
        )
    return labels, users


def _merge_task(*parts, n_threads: int = 1, fault=None, stage: str | None = None):
    if stage is not None:
        _maybe_fault(fault, stage)
    return CoocPartial.merge(parts, n_threads=n_threads)


def _finish_whole_task(part: CoocPartial, min_count: float, top_k, n_threads: int) -> RowBlock:
    import tfllmer_fast._core as core

    try:
        indptr, indices, data = core.cooc_sums_finish(
            part.indptr,
            part.cols,
            part.vals,
            part.n_items,
            0,
            part.n_items,
            True,
            part.options.words,
            min_count,
            top_k or 0,
            n_threads,
        )
    except MemoryError:
        raise MemoryError(
            "out of memory finishing the whole graph on one worker: use reduce='shuffle'"
        ) from None
    return RowBlock(0, part.n_items, indptr, indices, data)


def _split_task(part: CoocPartial, bounds: list[int]) -> list[CoocPartial]:
    return part.mirror_split(bounds)


def _finish_block_task(part: CoocPartial, min_count: float, n_threads: int) -> RowBlock:
    return part.finish(min_count, None, n_threads=n_threads)


def _stats_task(block: RowBlock, top_k: int):
    return top_k_stats(block, top_k)


def _concat_stats(*stats):
    return tuple(np.concatenate([s[i] for s in stats]) for i in range(3))


def _filter_task(block: RowBlock, stats) -> RowBlock:
    return top_k_filter(block, stats)


# ---------------------------------------------------------------------------------------
# planning


def plan_row_blocks(entries_per_bucket: np.ndarray, bucket: int, n_items: int, n_blocks: int) -> list[int]:
    """Row bounds of ``n_blocks`` blocks holding about equal numbers of entries.

    ``entries_per_bucket[k]``: entries of rows ``[k * bucket, (k + 1) * bucket)``. Bounds fall
    on bucket edges, so a block holds at least one bucket's rows (fewer blocks come out
    when there are fewer non-empty buckets than blocks asked for).
    """
    hist = np.asarray(entries_per_bucket, dtype=np.float64)
    if n_blocks < 1:
        raise ValueError("n_blocks must be >= 1")
    cum = np.concatenate([[0.0], np.cumsum(hist)])
    total = cum[-1]
    if total == 0:
        edges = np.linspace(0, n_items, n_blocks + 1).round().astype(np.int64)
        return sorted(set(int(x) for x in edges))
    targets = total * np.arange(1, n_blocks) / n_blocks
    cuts = np.searchsorted(cum, targets, side="left")
    edges = np.unique(np.clip(np.concatenate([[0], cuts * bucket, [n_items]]), 0, n_items))
    return [int(x) for x in edges]


@dataclass
class GraphBlocks:
    """A co-occurrence graph held on the cluster as float32 row blocks (futures of
    :class:`~tfllmer_fast.graph.partial.RowBlock`), block ``b`` = rows ``[bounds[b], bounds[b+1])``."""

    blocks: list
    bounds: list[int]
    n_items: int
    client: object = None

    @property
    def n_blocks(self) -> int:
        return len(self.blocks)

    def to_csr(self, index_dtype=np.int64) -> sp.csr_array:
        """Gathers the blocks to the client as one csr_array."""
        client = _get_client(self.client)
        return assemble_blocks(
            client.gather(self.blocks), self.n_items, index_dtype=check_index_dtype(index_dtype)
        )

    def nnz(self) -> int:
        client = _get_client(self.client)
        return int(sum(client.gather(client.map(operator.attrgetter("nnz"), self.blocks, pure=False))))


def _normalise_shards(shards, client) -> tuple[list, list[str], bool]:
    """(sources: futures or paths, labels, whether user ids exist) of the accepted inputs."""
    if hasattr(shards, "to_delayed") and hasattr(shards, "npartitions"):
        parts = shards.to_delayed()
        futures = client.compute(list(parts))
        return futures, [f"partition {k}" for k in range(len(futures))], True
    if isinstance(shards, (str, os.PathLike)):
        shards = [shards]
    if not isinstance(shards, Sequence) or isinstance(shards, (bytes,)):
        raise TypeError("shards must be a list of (offsets, items) pairs or shard paths, or a dask DataFrame")
    if len(shards) == 0:
        raise ValueError("no shards")
    sources, labels, has_users = [], [], False
    for k, s in enumerate(shards):
        if isinstance(s, (str, os.PathLike)):
            p = Path(s)
            sources.append(str(p))
            labels.append(f"shard {k} ({p.name})")
            has_users |= p.suffix == ".parquet"
        elif isinstance(s, distributed.Future):
            sources.append(s)
            labels.append(f"shard {k}")
        elif isinstance(s, (tuple, list)) and len(s) == 2:
            offsets = integer_array(s[0], f"shard {k}: offsets")
            items = integer_array(s[1], f"shard {k}: items")
            sources.append(client.scatter([(offsets, items)], hash=False)[0])
            labels.append(f"shard {k}")
        else:
            raise TypeError(
                f"shard {k}: expected (offsets, items), a path or a Future, got {type(s).__name__}"
            )
    return sources, labels, has_users


def _tree(client, futures: list, split_every: int, **kwargs):
    """Fixed-order tree of _merge_task over futures (consecutive groups)."""
    level = list(futures)
    while len(level) > 1:
        level = [
            client.submit(_merge_task, *level[i : i + split_every], pure=False, **kwargs)
            for i in range(0, len(level), split_every)
        ]
    return level[0]


def _wait_or_raise(client, futures, what: str, memory_hint: str) -> None:
    """Waits; on the first failure cancels the rest and raises it (bad input is not retried:
    Dask retries a task only when its worker dies)."""
    for f in distributed.as_completed(futures):
        if f.status == "error":
            exc = f.exception()
            client.cancel(futures)
            if type(exc).__name__ == "KilledWorker":
                raise MemoryError(
                    f"workers kept dying while {what} (most likely out of memory): {memory_hint}"
                ) from exc
            raise exc


def cooccurrence(
    shards,
    n_items: int,
    *,
    window: int | None = None,
    weighting: str = "count",
    max_history: int | None = None,
    min_count: float = 1,
    top_k: int | None = None,
    reduce: str = "auto",
    n_row_blocks: int | None = None,
    client=None,
    n_threads: int = 1,
    return_blocks: bool = False,
    memory_limit: int | None = None,
    split_every: int = 4,
    max_interactions: int = 10_000_000,
    check_users: bool = True,
    index_dtype=np.int64,
    _fault=None,
):
    """Co-occurrence graph of users in shards, counted on the workers of a Dask cluster.

    Parameters
    ----------
    shards : list of (offsets, items) pairs, list of shard paths, or a dask DataFrame
        Shard paths: ``.npz``, ``.npy`` pairs (give ``<name>`` for ``<name>.offsets.npy`` +
        ``<name>.items.npy``) or ``.parquet`` (columns user, item[, time]), as in
        :func:`tfllmer_fast.graph.shards.iter_shard`; the workers must see the files. A
        dask DataFrame has columns user, item and optionally time, and is partitioned by
        user. In-memory pairs are scattered to the workers (a worker that dies takes its
        scattered shards with it: files, or a DataFrame Dask can recompute, survive worker
        loss). Each user lies in one shard.
    n_items : int
        Size of the graph; every item id must be < n_items.
    window, weighting, max_history, min_count, top_k
        As in :func:`tfllmer_fast.cooccurrence`.
    reduce : {"auto", "tree", "shuffle"}
        "auto": "tree" when the estimated unpruned graph fits in ``MEMORY_BUDGET`` of one
        worker's memory and ``n_row_blocks`` is not given, else "shuffle".
    n_row_blocks : int, optional
        Row blocks of the shuffle; default the fewest that fit a worker's budget, and at
        least one per worker. Blocks hold about equal numbers of entries.
    client : distributed.Client, optional
        Default: the current client.
    n_threads : int
        OpenMP threads of every task (default 1: one per Dask worker thread).
    return_blocks : bool
        Return a :class:`GraphBlocks` (the graph stays on the cluster as row blocks; with
        ``reduce="tree"`` one block) instead of gathering one csr_array on the client.
    memory_limit : int, optional
        Bytes per worker used for planning; default the workers' own limit.
    split_every : int
        Partials merged per task in the reduction trees.
    max_interactions : int
        Interactions read at once from a shard file.
    check_users : bool
        For inputs with user ids (Parquet shards, DataFrames): raise if a user appears in more
        than one shard or partition.

    Returns
    -------
    scipy.sparse.csr_array or GraphBlocks
        Bitwise equal to :func:`tfllmer_fast.cooccurrence` on all users.

    Raises
    ------
    ValueError
        Bad ids in a shard (the shard is named; no retries), a user split across shards.
    MemoryError
        When the plan (or the workers, by dying) shows that a block does not fit a worker;
        the message gives the ``n_row_blocks`` to use.
    """
    n_items = _check_n_items(n_items)
    key = CoocOptionsKey(
        n_items,
        check_optional_positive_int(window, "window") or None,
        check_optional_positive_int(max_history, "max_history") or None,
        _check_weighting(weighting),
    )
    min_count = check_min_count(min_count)
    top_k = check_optional_positive_int(top_k, "top_k") or None
    index_dtype = check_index_dtype(index_dtype)
    if reduce not in REDUCES:
        raise ValueError(f"reduce must be one of {REDUCES}, got {reduce!r}")
    if n_row_blocks is not None:
        n_row_blocks = check_optional_positive_int(n_row_blocks, "n_row_blocks")
        if reduce == "tree":
            raise ValueError("n_row_blocks goes with reduce='shuffle' (or 'auto'), not 'tree'")
    n_threads = check_n_threads(n_threads)
    if isinstance(split_every, bool) or not isinstance(split_every, (int, np.integer)) or split_every < 2:
        raise ValueError(f"split_every must be an int >= 2, got {split_every!r}")
    client = _get_client(client)
    limit, n_workers = _worker_memory_limit(client, memory_limit)
    budget = MEMORY_BUDGET * limit

    sources, labels, has_users = _normalise_shards(shards, client)
    futures_alive = []
    try:
        if check_users and has_users:
            users = [client.submit(_users_task, s, lab, pure=False) for s, lab in zip(sources, labels)]
            pairs = [client.submit(_labelled, u, lab, pure=False) for u, lab in zip(users, labels)]
            level = pairs
            while len(level) > 1:
                level = [
                    client.submit(_disjoint_union, *level[i : i + split_every], pure=False)
                    for i in range(0, len(level), split_every)
                ]
            _wait_or_raise(client, level, "checking user ids", "")
            del users, pairs, level

        partials = [
            client.submit(
                _count_task,
                s,
                lab,
                key,
                n_threads,
                max_interactions,
                _fault,
                pure=False,
                key=f"tfllmer-count-{uuid.uuid4().hex[:12]}-{k}",
            )
            for k, (s, lab) in enumerate(zip(sources, labels))
        ]
        futures_alive += partials
        bucket = max(1, -(-n_items // 65536))
        summaries = [client.submit(_summary_task, p, bucket, pure=False) for p in partials]
        _wait_or_raise(client, summaries, "counting the shards", "split the input into more, smaller shards")
        summaries = client.gather(summaries)

        bpe = BYTES_PER_ENTRY[key.weighting]
        upper = sum(s["nnz"] for s in summaries)  # an upper bound on the merged graph's half
        hist = np.sum([s["hist"] for s in summaries], axis=0) if n_items else np.zeros(0, np.int64)
        largest_input = max((s["nbytes"] for s in summaries), default=0)
        # Tree root: the merged sums, the inputs being merged, the float32 graph and its int64 copy.
        tree_peak = 2 * upper * bpe + split_every * largest_input + 2 * upper * (FINISHED_BYTES_PER_ENTRY + 4)

        def block_peak(bounds):
            # A block's pieces, their merge, the float32 rows and the top-k statistics of every row.
            per_block = [
                hist[lo // bucket : -(-hi // bucket)].sum() for lo, hi in zip(bounds[:-1], bounds[1:])
            ]
            return (
                max(per_block, default=0) * (2 * bpe + FINISHED_BYTES_PER_ENTRY) + 9 * n_items + 8 * n_items
            )

        if reduce == "auto":
            reduce = "tree" if (n_row_blocks is None and tree_peak <= budget) else "shuffle"
        if reduce == "tree":
            if tree_peak > 0.9 * limit:
                suggest = max(n_workers, math.ceil(tree_peak / budget))
                raise MemoryError(
                    f"the unpruned graph needs about {_gib(tree_peak)} on one worker, more than its memory limit "
                    f"{_gib(limit)}: use reduce='shuffle' with n_row_blocks >= {suggest}"
                )
            root = _tree(client, partials, split_every, n_threads=n_threads)
            out = client.submit(_finish_whole_task, root, min_count, top_k, n_threads, pure=False)
            _wait_or_raise(client, [out], "finishing the graph", "use reduce='shuffle'")
            if return_blocks:
                return GraphBlocks([out], [0, n_items], n_items, client)
            return out.result().to_csr(index_dtype)

        # ---- shuffle
        def suggested_blocks():
            b = max(n_workers, 1)
            while b < n_items and block_peak(plan_row_blocks(hist, bucket, n_items, b)) > budget:
                b *= 2
            return b

        if n_row_blocks is None:
            n_row_blocks = suggested_blocks()
        bounds = plan_row_blocks(hist, bucket, n_items, n_row_blocks) if n_items else [0, 0]
        peak = block_peak(bounds)
        if peak > 0.9 * limit:
            raise MemoryError(
                f"with n_row_blocks={n_row_blocks} the largest row block needs about {_gib(peak)}, more than a "
                f"worker's memory limit {_gib(limit)}: use n_row_blocks >= {suggested_blocks()} (or workers "
                "with more memory)"
            )
        nb = len(bounds) - 1
        splits = [client.submit(_split_task, p, bounds, pure=False) for p in partials]
        pieces = [[client.submit(operator.getitem, s, b, pure=False) for s in splits] for b in range(nb)]
        del splits, partials
        futures_alive = [p for row in pieces for p in row]
        hint = f"use n_row_blocks >= {2 * nb}"
        sums = [
            _tree(client, pieces[b], split_every, n_threads=n_threads, fault=_fault, stage="shuffle")
            for b in range(nb)
        ]
        del pieces
        blocks = [client.submit(_finish_block_task, s, min_count, n_threads, pure=False) for s in sums]
        del sums
        futures_alive = blocks
        _wait_or_raise(client, blocks, "merging row blocks", hint)
        if top_k:
            stats = [client.submit(_stats_task, b, top_k, pure=False) for b in blocks]
            all_stats = client.submit(_concat_stats, *stats, pure=False)
            blocks = [client.submit(_filter_task, b, all_stats, pure=False) for b in blocks]
            futures_alive = blocks
            _wait_or_raise(client, blocks, "applying top_k", hint)
        if return_blocks:
            return GraphBlocks(blocks, bounds, n_items, client)
        return assemble_blocks(client.gather(blocks), n_items, index_dtype=index_dtype)
    except BaseException:
        client.cancel(futures_alive)
        raise


# ---------------------------------------------------------------------------------------
# Rec-PCA


def _block_facts(Xb: np.ndarray, block: RowBlock, lo: int, n_threads: int):
    import tfllmer_fast._core as core

    Xb = np.ascontiguousarray(Xb)
    norms = core.row_norms(Xb, n_threads)
    rows = sp.csr_array(
        (block.data, block.indices, block.indptr), shape=(block.indptr.size - 1, block.n_items)
    )
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
    Y = core.shifted_graph_matmat(
        X_ext, indptr, local.astype(np.int32), block.data, t_ext, s_ext, lam, n_threads
    )
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
    futures = [
        client.scatter(np.ascontiguousarray(arr[lo:hi]), hash=False)
        for lo, hi in zip(bounds[:-1], bounds[1:])
    ]
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
    from .graph.laplacian import check_graph, check_kind, inv_sqrt_degrees
    from .graph.normalization import inverse_norms, warn_zero_rows

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
        client.submit(_block_facts, x, g, lo, n_threads, pure=False)
        for x, g, lo in zip(xfut, gblocks, bounds[:-1])
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
        Gs = np.concatenate(
            client.gather([client.submit(_graph_times_task, g, s0_f, pure=False) for g in gblocks])
        )
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
            client.submit(_sum_task, *level[i : i + split_every], pure=False)
            for i in range(0, len(level), split_every)
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

    from .graph.recpca import RecPCA, RecPCAConvergenceError, default_ncv, use_dense_eig

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
