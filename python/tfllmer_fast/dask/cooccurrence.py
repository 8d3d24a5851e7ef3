"""The co-occurrence graph across a cluster: count, then a tree reduction or a row-block
shuffle (see the package docstring)."""

from __future__ import annotations

import math
import operator
import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import distributed
import numpy as np
import scipy.sparse as sp

from .._validation import check_n_threads
from ..graph.cooccurrence import (
    _check_n_items,
    _check_weighting,
    check_index_dtype,
    check_min_count,
    check_optional_positive_int,
    integer_array,
)
from ..graph.partial import (
    BYTES_PER_ENTRY,
    CoocOptionsKey,
    assemble_blocks,
)
from ._cluster import (
    FINISHED_BYTES_PER_ENTRY,
    MEMORY_BUDGET,
    REDUCES,
    _get_client,
    _gib,
    _worker_memory_limit,
)
from ._tasks import (
    _concat_stats,
    _count_task,
    _disjoint_union,
    _filter_task,
    _finish_block_task,
    _finish_whole_task,
    _labelled,
    _merge_task,
    _split_task,
    _stats_task,
    _summary_task,
    _users_task,
)


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


