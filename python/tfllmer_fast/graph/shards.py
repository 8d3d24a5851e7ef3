"""Co-occurrence graphs of users stored in shards on disk (.npz, .npy pairs, Parquet),
streamed chunk by chunk through :class:`CooccurrenceCounter`: memory stays bounded by the
graph plus one chunk."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from ._cooccurrence import CooccurrenceCounter
from .checks import (
    check_index_dtype,
    check_min_count,
    check_optional_positive_int,
    integer_array,
)

__all__ = ["cooccurrence_from_shards", "iter_shard"]


def _split_whole_users(offsets: np.ndarray, items, max_interactions: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Consecutive chunks of whole users with about ``max_interactions`` items each."""
    n_users = offsets.size - 1
    u = 0
    while u < n_users:
        # The first user whose end would pass the budget closes the chunk (a single user
        # longer than the budget forms a chunk alone).
        v = int(np.searchsorted(offsets, offsets[u] + max_interactions, side="right")) - 1
        v = min(max(v, u + 1), n_users)
        chunk_offsets = offsets[u : v + 1] - offsets[u]
        yield chunk_offsets, np.asarray(items[offsets[u] : offsets[v]])
        u = v


def _parquet_chunks(path: Path, max_interactions: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    try:
        import pyarrow.parquet as pq
    except ImportError as e:  # pragma: no cover - pyarrow is a test dependency
        raise ImportError("reading Parquet shards needs pyarrow: pip install pyarrow") from e
    pf = pq.ParquetFile(path)
    names = set(pf.schema_arrow.names)
    if not {"user", "item"} <= names:
        raise ValueError(f"{path}: a Parquet shard needs columns 'user' and 'item', found {sorted(names)}")
    columns = ["user", "item"] + (["time"] if "time" in names else [])
    carry_users = carry_items = carry_times = None
    batches = pf.iter_batches(batch_size=max(1, max_interactions), columns=columns)
    while True:
        batch = next(batches, None)
        if batch is None:
            users, items, times = carry_users, carry_items, carry_times
            last = True
        else:
            users = batch.column("user").to_numpy(zero_copy_only=False)
            items = integer_array(batch.column("item").to_numpy(zero_copy_only=False), f"{path}: column 'item'")
            times = batch.column("time").to_numpy(zero_copy_only=False) if "time" in names else None
            if carry_users is not None:
                users = np.concatenate([carry_users, users])
                items = np.concatenate([carry_items, items])
                times = None if times is None else np.concatenate([carry_times, times])
            last = False
        if users is None or users.size == 0:
            if last:
                return
            continue
        starts = np.concatenate([[0], np.flatnonzero(users[1:] != users[:-1]) + 1])
        if times is not None and users.size > 1:
            same_user = users[1:] == users[:-1]
            if np.any(same_user & (times[1:] < times[:-1])):
                raise ValueError(f"{path}: rows of a user must be in chronological order (column 'time')")
        # The last user may continue in the next batch: hold it back unless the file ended.
        cut = users.size if last else int(starts[-1])
        if cut > 0:
            offsets = np.concatenate([starts[starts < cut], [cut]]).astype(np.int64)
            yield offsets, items[:cut]
        if last:
            return
        carry_users, carry_items = users[cut:], items[cut:]
        carry_times = None if times is None else times[cut:]


def iter_shard(path, max_interactions: int = 10_000_000) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Chunks ``(offsets, items)`` of whole users read from one shard, at most about
    ``max_interactions`` items each (a longer single user is one chunk).

    Shard formats (0-based item ids; every user's items contiguous and oldest first):

    * ``<name>.npz`` with arrays ``offsets`` (int, n_users + 1, starting at 0) and ``items``;
    * ``<name>`` naming the pair ``<name>.offsets.npy`` + ``<name>.items.npy`` (memory-mapped:
      only the current chunk is read into memory);
    * ``<name>.parquet`` with integer columns ``user`` and ``item`` and optionally ``time``:
      rows grouped by user (each user's rows contiguous; not checked), chronological
      within a user (checked when ``time`` is present). Read in batches with pyarrow.
    """
    path = Path(path)
    if max_interactions < 1:
        raise ValueError("max_interactions must be >= 1")
    if path.suffix == ".parquet":
        yield from _parquet_chunks(path, max_interactions)
        return
    if path.suffix == ".npz":
        with np.load(path) as z:
            if "offsets" not in z or "items" not in z:
                raise ValueError(f"{path}: an .npz shard needs arrays 'offsets' and 'items', found {list(z.keys())}")
            offsets, items = z["offsets"], z["items"]
    else:
        off_path = Path(f"{path}.offsets.npy")
        items_path = Path(f"{path}.items.npy")
        if not off_path.exists() or not items_path.exists():
            raise FileNotFoundError(
                f"shard {path}: expected {off_path.name} and {items_path.name} (or a .npz / .parquet file)"
            )
        offsets = np.load(off_path, mmap_mode="r")
        items = np.load(items_path, mmap_mode="r")
    offsets = integer_array(offsets, f"{path}: offsets")
    integer_array(items[:0], f"{path}: items")
    if offsets.size < 1 or offsets[0] != 0 or offsets[-1] != items.shape[0]:
        raise ValueError(f"{path}: offsets must start at 0 and end at len(items) = {items.shape[0]}")
    yield from _split_whole_users(np.asarray(offsets, dtype=np.int64), items, max_interactions)


def cooccurrence_from_shards(
    paths,
    n_items: int,
    *,
    window: int | None = None,
    weighting: str = "count",
    max_history: int | None = None,
    min_count: float = 1,
    top_k: int | None = None,
    n_threads: int | None = None,
    max_interactions: int = 10_000_000,
    progress=None,
    index_dtype=np.int64,
) -> sp.csr_array:
    """Co-occurrence graph of users stored in shards on disk, streamed chunk by chunk.

    ``paths``: shard paths (one path or a list; formats in :func:`iter_shard`). A user must
    lie in one shard only. Memory stays bounded by the graph plus one chunk of about
    ``max_interactions`` interactions. ``progress``, if given, is called as
    ``progress(counter)`` after every chunk. Other options as in :func:`cooccurrence`;
    the result equals that of :func:`cooccurrence` on all users concatenated.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    counter = CooccurrenceCounter(
        n_items, window=window, weighting=weighting, max_history=max_history, n_threads=n_threads
    )
    # Check these before spending time on the count.
    check_min_count(min_count)
    check_optional_positive_int(top_k, "top_k")
    check_index_dtype(index_dtype)
    for path in paths:
        for offsets, items in iter_shard(path, max_interactions):
            counter.update(offsets, items)
            if progress is not None:
                progress(counter)
    return counter.result(min_count=min_count, top_k=top_k, index_dtype=index_dtype)
