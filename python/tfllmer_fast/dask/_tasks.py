"""The tasks of the co-occurrence count and its reductions (run on the workers)."""

from __future__ import annotations

import os

import numpy as np

from ..graph.checks import integer_array
from ..graph.partial import (
    CoocOptionsKey,
    CoocPartial,
    RowBlock,
    top_k_filter,
    top_k_stats,
)
from ..graph.shards import iter_shard
from ._cluster import (
    maybe_fault,
)


def _frame_chunk(df, label: str) -> tuple[np.ndarray, np.ndarray]:
    """(offsets, items) of a pandas DataFrame of (user, item[, time]) rows, users whole."""
    missing = {"user", "item"} - set(df.columns)
    if missing:
        raise ValueError(f"{label}: needs columns 'user' and 'item' (and optionally 'time'), missing {sorted(missing)}")
    users = np.asarray(df["user"].to_numpy())
    items = integer_array(np.asarray(df["item"].to_numpy()), f"{label}: column 'item'")
    if "time" in df.columns:
        order = np.lexsort((np.asarray(df["time"].to_numpy()), users))
    else:
        order = np.argsort(users, kind="stable")  # keeps each user's rows in their given order
    users, items = users[order], items[order]
    starts = np.flatnonzero(users[1:] != users[:-1]) + 1 if users.size else np.zeros(0, np.int64)
    offsets = np.concatenate([[0], starts, [users.size]]).astype(np.int64) if users.size else np.zeros(1, np.int64)
    return offsets, items


def _chunks_of(source, label: str, max_interactions: int):
    if isinstance(source, (str, os.PathLike)):
        return iter_shard(source, max_interactions)
    if hasattr(source, "columns") and hasattr(source, "iloc"):
        return [_frame_chunk(source, label)]
    if isinstance(source, (tuple, list)) and len(source) == 2:
        return [(source[0], source[1])]
    raise TypeError(f"{label}: a shard is (offsets, items), a path or a pandas DataFrame, got {type(source).__name__}")


def count_task(source, label: str, key: CoocOptionsKey, n_threads: int, max_interactions: int, fault=None):
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
    maybe_fault(fault, "count")
    return part


def count_split_task(
    source,
    label: str,
    key: CoocOptionsKey,
    n_threads: int,
    max_interactions: int,
    bounds: list[int],
    fault=None,
) -> list[CoocPartial]:
    """A shard's pieces of every row block: its whole partial never outlives the task, so the
    cluster holds pieces on their way to a merge, not one partial per shard."""
    return count_task(source, label, key, n_threads, max_interactions, fault).mirror_split(bounds)


def summary_task(part: CoocPartial, bucket: int) -> dict:
    entries = part.row_entries()
    n_buckets = -(-part.n_items // bucket) if part.n_items else 0
    hist = np.add.reduceat(entries, np.arange(0, part.n_items, bucket)) if part.n_items else np.zeros(0, np.int64)
    if hist.size != n_buckets:  # a broken invariant must fail under python -O too
        raise RuntimeError(f"bucket histogram has {hist.size} entries, expected {n_buckets}")
    return {
        "nnz": part.nnz,
        "nbytes": part.nbytes,
        "hist": hist.astype(np.int64),
        "n_users": part.n_users,
        "n_interactions": part.n_interactions,
    }


def users_task(source, label: str) -> np.ndarray:
    """Sorted distinct user ids of a shard that has them (empty when it has none)."""
    if isinstance(source, (str, os.PathLike)) and str(source).endswith(".parquet"):
        import pyarrow.parquet as pq

        users = pq.read_table(source, columns=["user"]).column("user").to_numpy()
        return np.unique(users)
    if hasattr(source, "columns") and "user" in getattr(source, "columns", ()):
        return np.unique(np.asarray(source["user"].to_numpy()))
    return np.zeros(0, np.int64)


def labelled(users: np.ndarray, label: str):
    return [label], users


def disjoint_union(*parts):
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


def merge_task(*parts, n_threads: int = 1, fault=None, stage: str | None = None):
    if stage is not None:
        maybe_fault(fault, stage)
    return CoocPartial.merge(parts, n_threads=n_threads)


def finish_whole_task(part: CoocPartial, min_count: float, top_k, n_threads: int) -> RowBlock:
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
        raise MemoryError("out of memory finishing the whole graph on one worker: use reduce='shuffle'") from None
    return RowBlock(0, part.n_items, indptr, indices, data)


def split_task(part: CoocPartial, bounds: list[int]) -> list[CoocPartial]:
    return part.mirror_split(bounds)


def finish_block_task(part: CoocPartial, min_count: float, n_threads: int) -> RowBlock:
    return part.finish(min_count, None, n_threads=n_threads)


def stats_task(block: RowBlock, top_k: int):
    return top_k_stats(block, top_k)


def concat_stats(*stats):
    return tuple(np.concatenate([s[i] for s in stats]) for i in range(3))


def filter_task(block: RowBlock, stats) -> RowBlock:
    return top_k_filter(block, stats)
