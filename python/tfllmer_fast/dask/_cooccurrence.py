"""The co-occurrence graph across a cluster: count, then a tree reduction or a row-block
shuffle (see the package docstring)."""

from __future__ import annotations

import operator
import os
import uuid
from collections.abc import Sequence
from concurrent.futures import CancelledError
from dataclasses import dataclass
from pathlib import Path

import distributed
import numpy as np
import scipy.sparse as sp

from .._validation import check_int, check_n_threads
from ..graph.checks import (
    check_index_dtype,
    check_min_count,
    check_n_items,
    check_optional_positive_int,
    check_weighting,
    integer_array,
)
from ..graph.partial import (
    BYTES_PER_ENTRY,
    CoocOptionsKey,
    assemble_blocks,
)
from ._cluster import (
    FINISHED_BYTES_PER_ENTRY,
    REDUCES,
    get_client,
    gib,
    memory_budget,
    run_resending,
    worker_memory_limit,
)
from ._plan import GraphEstimate, plan_row_blocks
from ._tasks import (
    concat_stats,
    count_split_task,
    count_task,
    disjoint_union,
    filter_task,
    finish_block_task,
    finish_whole_task,
    labelled,
    merge_task,
    split_task,
    stats_task,
    summary_task,
    users_task,
)


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
        client = get_client(self.client)
        return assemble_blocks(client.gather(self.blocks), self.n_items, index_dtype=check_index_dtype(index_dtype))

    def nnz(self) -> int:
        client = get_client(self.client)
        return int(sum(client.gather(client.map(operator.attrgetter("nnz"), self.blocks, pure=False))))


def _normalise_shards(shards, client) -> tuple[list, list[str], bool]:
    """(sources, labels, whether user ids exist) of the accepted inputs. Sources are futures,
    paths, or checked ``(offsets, items)`` tuples still in the client's memory (the job
    scatters those, and scatters them again if a worker loses them)."""
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
            sources.append((offsets, items))
            labels.append(f"shard {k}")
        else:
            raise TypeError(f"shard {k}: expected (offsets, items), a path or a Future, got {type(s).__name__}")
    return sources, labels, has_users


def _tree(client, futures: list, split_every: int, **kwargs):
    """Fixed-order tree of merge_task over futures (consecutive groups). Merges outrank the
    counts (priority 1 over 0): a group's partials are merged as soon as they are all counted,
    so the cluster holds about one tree front, not every shard's partial."""
    level = list(futures)
    while len(level) > 1:
        level = [
            client.submit(merge_task, *level[i : i + split_every], pure=False, priority=1, **kwargs)
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
        user. In-memory pairs are scattered to the workers; when a worker dies with some of
        them, they are sent again and the job starts over (a RuntimeWarning says so; Dask
        recomputes what it lost of files and DataFrames in place instead). Futures of
        scattered data passed in cannot be sent again: their loss is an error. Each user
        lies in one shard.
    n_items : int
        Size of the graph; every item id must be < n_items.
    window, weighting, max_history, min_count, top_k
        As in :func:`tfllmer_fast.cooccurrence`.
    reduce : {"auto", "tree", "shuffle"}
        "auto": "tree" when the estimated unpruned graph fits in the share of one worker's
        memory that a task may take (``memory_budget()``: 0.25 with Dask's defaults) and
        ``n_row_blocks`` is not given, else "shuffle". Estimates come from the first shards
        (one per worker, from two to eight), counted before the others and scaled to all shards,
        so shards should be of about equal size.
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
    n_items = check_n_items(n_items)
    key = CoocOptionsKey(
        n_items,
        check_optional_positive_int(window, "window") or None,
        check_optional_positive_int(max_history, "max_history") or None,
        check_weighting(weighting),
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
    split_every = check_int(split_every, "split_every", minimum=2)
    client = get_client(client)
    limit, n_workers = worker_memory_limit(client, memory_limit)
    budget = memory_budget() * limit

    inputs, labels, has_users = _normalise_shards(shards, client)
    opts = _Options(
        key,
        min_count,
        top_k,
        reduce,
        n_row_blocks,
        n_threads,
        return_blocks,
        index_dtype,
        split_every,
        max_interactions,
        check_users,
        limit,
        n_workers,
        budget,
        _fault,
    )

    def job(scatter):
        # In-memory shards are scattered here, so a rerun after a worker's loss sends them again.
        sources = [scatter([s])[0] if isinstance(s, tuple) else s for s in inputs]
        return _count_and_reduce(client, sources, labels, has_users, opts)

    try:
        return run_resending(client, job, "counting the co-occurrence graph")
    except CancelledError:
        lost = [
            labels[k]
            for k, s in enumerate(inputs)
            if isinstance(s, distributed.Future) and s.status in ("cancelled", "lost")
        ]
        if not lost:
            raise
        raise RuntimeError(
            f"{lost[0]}: the Future passed in was lost with its worker (Dask cannot recompute scattered data); "
            "pass the (offsets, items) arrays, which are sent again after a worker's loss, or shard files"
        ) from None


@dataclass(frozen=True)
class _Options:
    """The checked arguments of :func:`cooccurrence` that the job reads."""

    key: CoocOptionsKey
    min_count: float
    top_k: int | None
    reduce: str
    n_row_blocks: int | None
    n_threads: int
    return_blocks: bool
    index_dtype: np.dtype
    split_every: int
    max_interactions: int
    check_users: bool
    limit: int
    n_workers: int
    budget: float
    fault: object


def _count_and_reduce(client, sources: list, labels: list[str], has_users: bool, o: _Options):
    """Counts the shards and reduces the partials (see :func:`cooccurrence`)."""
    key, n_items, min_count, top_k, n_threads = o.key, o.key.n_items, o.min_count, o.top_k, o.n_threads
    reduce, n_row_blocks, split_every, max_interactions = o.reduce, o.n_row_blocks, o.split_every, o.max_interactions
    limit, n_workers, budget, index_dtype, _fault = o.limit, o.n_workers, o.budget, o.index_dtype, o.fault
    futures_alive = []
    try:
        if o.check_users and has_users:
            users = [client.submit(users_task, s, lab, pure=False) for s, lab in zip(sources, labels)]
            pairs = [client.submit(labelled, u, lab, pure=False) for u, lab in zip(users, labels)]
            level = pairs
            while len(level) > 1:
                level = [
                    client.submit(disjoint_union, *level[i : i + split_every], pure=False)
                    for i in range(0, len(level), split_every)
                ]
            _wait_or_raise(client, level, "checking user ids", "")
            del users, pairs, level

        # The first shards (one per worker, at least two, at most eight: their merge must fit
        # one task) are counted whole and merged: their entries per row and how they grow in
        # the merge, scaled to all shards, plan the reduction before the other shards are
        # counted, so that no barrier holds every shard's partial at once.
        n_sample = min(len(sources), max(2, min(n_workers, 8)))

        def count(k, task, *extra):
            return client.submit(
                task,
                sources[k],
                labels[k],
                key,
                n_threads,
                max_interactions,
                *extra,
                fault=_fault,
                pure=False,
                key=f"tfllmer-count-{uuid.uuid4().hex[:12]}-{k}",
            )

        singles = [count(k, count_task) for k in range(n_sample)]
        futures_alive += singles
        sample = _tree(client, singles, split_every, n_threads=n_threads)
        futures_alive.append(sample)
        bucket = max(1, -(-n_items // 65536))
        summaries = [client.submit(summary_task, p, bucket, pure=False) for p in [*singles, sample]]
        _wait_or_raise(client, summaries, "counting the shards", "split the input into more, smaller shards")
        del singles
        *singles_hist, merged_hist = (s["hist"] for s in client.gather(summaries))
        est = GraphEstimate.from_sample(singles_hist, merged_hist, len(sources), n_items, bucket)
        bpe = BYTES_PER_ENTRY[key.weighting]
        merged_upper, inputs_upper = est.upper_entries(split_every)
        # Tree root: its inputs and the merged sums, the float32 graph and its int64 copy.
        tree_peak = (inputs_upper + merged_upper) * bpe + 2 * merged_upper * (FINISHED_BYTES_PER_ENTRY + 4)

        def block_peak(bounds):
            # A block's last merge (its inputs and output), the float32 rows, top-k statistics.
            merged, inputs = est.block_entries(bounds, split_every)
            return float(np.max((inputs + merged) * bpe + merged * FINISHED_BYTES_PER_ENTRY, initial=0)) + 17 * n_items

        def suggested_blocks():
            b = max(n_workers, 1)
            while b < n_items and block_peak(plan_row_blocks(est.hist, bucket, n_items, b)) > budget:
                b *= 2
            return b

        # Estimates overstate rather than understate, so an explicit choice is refused only
        # beyond twice the budget; between the two it may run, with spilling.
        where = f"estimated from the first {n_sample} shards; a task may take {gib(budget)} of a worker's {gib(limit)}"
        if reduce == "auto":
            reduce = "tree" if (n_row_blocks is None and tree_peak <= budget) else "shuffle"
        if reduce == "tree":
            if tree_peak > 2 * budget:
                raise MemoryError(
                    f"the unpruned graph needs about {gib(tree_peak)} on one worker ({where}): use "
                    f"reduce='shuffle' with n_row_blocks >= {suggested_blocks()}"
                )
            partials = [sample] + [count(k, count_task) for k in range(n_sample, len(sources))]
            futures_alive += partials
            root = _tree(client, partials, split_every, n_threads=n_threads)
            del partials, sample
            out = client.submit(finish_whole_task, root, min_count, top_k, n_threads, pure=False)
            _wait_or_raise(client, [out], "finishing the graph", "use reduce='shuffle'")
            if o.return_blocks:
                return GraphBlocks([out], [0, n_items], n_items, client)
            return out.result().to_csr(index_dtype)

        # ---- shuffle
        if n_row_blocks is None:
            n_row_blocks = suggested_blocks()
        bounds = plan_row_blocks(est.hist, bucket, n_items, n_row_blocks) if n_items else [0, 0]
        peak = block_peak(bounds)
        if peak > 2 * budget:
            raise MemoryError(
                f"with n_row_blocks={n_row_blocks} the largest row block needs about {gib(peak)} ({where}): "
                f"use n_row_blocks >= {suggested_blocks()} (or workers with more memory)"
            )
        splits = [client.submit(split_task, sample, bounds, pure=False, priority=1)]
        splits += [count(k, count_split_task, bounds) for k in range(n_sample, len(sources))]
        futures_alive += splits
        del sample
        nb = len(bounds) - 1
        pieces = [[client.submit(operator.getitem, s, b, pure=False, priority=2) for s in splits] for b in range(nb)]
        del splits
        futures_alive = [p for row in pieces for p in row]
        hint = f"use n_row_blocks >= {2 * nb}"
        sums = [
            _tree(client, pieces[b], split_every, n_threads=n_threads, fault=_fault, stage="shuffle") for b in range(nb)
        ]
        del pieces
        blocks = [client.submit(finish_block_task, s, min_count, n_threads, pure=False) for s in sums]
        del sums
        futures_alive = blocks
        _wait_or_raise(client, blocks, "merging row blocks", hint)
        if top_k:
            stats = [client.submit(stats_task, b, top_k, pure=False) for b in blocks]
            all_stats = client.submit(concat_stats, *stats, pure=False)
            blocks = [client.submit(filter_task, b, all_stats, pure=False) for b in blocks]
            futures_alive = blocks
            _wait_or_raise(client, blocks, "applying top_k", hint)
        if o.return_blocks:
            return GraphBlocks(blocks, bounds, n_items, client)
        return assemble_blocks(client.gather(blocks), n_items, index_dtype=index_dtype)
    except BaseException:
        client.cancel(futures_alive)
        raise
