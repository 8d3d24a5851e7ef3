"""Per-user chronological item sequences in CSR form, and the leave-one-out split.

This is the one in-memory format the whole package shares: user ``u``'s history is
``items[offsets[u]:offsets[u + 1]]``, oldest first. Item ids are contiguous and 0-based,
``0..n_items-1``, so item ``i`` is row ``i`` of an embedding matrix and row/column ``i`` of
the co-occurrence graph. (The torch models shift ids by one internally to reserve a padding
row; files that use 1-based ids are converted by the loaders.)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Sequences:
    """Chronological item sequences of ``n_users`` users over items ``0..n_items-1``.

    ``offsets``: int64, shape (n_users + 1,), non-decreasing, ``offsets[0] == 0``.
    ``items``: int32, shape (offsets[-1],), values in ``0..n_items-1``.
    ``user_ids`` / ``item_ids``: optional raw keys; ``item_ids[i]`` is the raw key of item
    ``i`` and ``user_ids[u]`` that of user ``u``.
    """

    offsets: np.ndarray
    items: np.ndarray
    n_items: int
    user_ids: np.ndarray | None = field(default=None, repr=False)
    item_ids: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self):
        offsets = np.ascontiguousarray(self.offsets, dtype=np.int64)
        items = np.ascontiguousarray(self.items, dtype=np.int32)
        if offsets.ndim != 1 or offsets.size < 1 or offsets[0] != 0:
            raise ValueError("offsets must be 1-D, start at 0 and have n_users + 1 entries")
        if np.any(np.diff(offsets) < 0):
            raise ValueError("offsets must be non-decreasing")
        if offsets[-1] != items.size:
            raise ValueError(f"offsets[-1] = {offsets[-1]} but there are {items.size} items")
        if items.size and (items.min() < 0 or items.max() >= self.n_items):
            raise ValueError(
                f"item ids must lie in 0..n_items-1 = 0..{self.n_items - 1}, "
                f"found {items.min()}..{items.max()}"
            )
        object.__setattr__(self, "offsets", offsets)
        object.__setattr__(self, "items", items)
        object.__setattr__(self, "n_items", int(self.n_items))

    @property
    def n_users(self) -> int:
        return self.offsets.size - 1

    @property
    def n_interactions(self) -> int:
        return int(self.items.size)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def user(self, u: int) -> np.ndarray:
        return self.items[self.offsets[u] : self.offsets[u + 1]]

    @classmethod
    def from_lists(cls, seqs, n_items: int | None = None, **kw) -> "Sequences":
        """From a list of per-user lists of 0-based item ids, each oldest first."""
        lengths = np.fromiter((len(s) for s in seqs), dtype=np.int64, count=len(seqs))
        offsets = np.zeros(lengths.size + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        items = (np.concatenate([np.asarray(s, dtype=np.int64) for s in seqs])
                 if lengths.sum() else np.zeros(0, np.int64))
        if items.size and (items.min() < 0 or items.max() > np.iinfo(np.int32).max):
            raise ValueError("item ids must be non-negative and fit in int32")
        if n_items is None:
            n_items = int(items.max()) + 1 if items.size else 0
        return cls(offsets, items.astype(np.int32), n_items, **kw)

    def to_lists(self) -> list[list[int]]:
        return [self.user(u).tolist() for u in range(self.n_users)]


@dataclass(frozen=True)
class LeaveOneOutSplit:
    """Leave-one-out: last item = test target, second-to-last = validation target.

    ``train`` holds every user's history without the last two items (the co-occurrence
    graph and Rec-PCA must only ever see it). ``valid_targets[u]`` / ``test_targets[u]`` are
    the held-out items; evaluation inputs are the history before each target
    (``train`` for validation, ``train + valid`` for test). Users with fewer than 3
    interactions are dropped (they have no training item); ``user_index`` maps the split's
    users back to rows of the original ``Sequences``.
    """

    train: Sequences
    valid_targets: np.ndarray
    test_targets: np.ndarray
    user_index: np.ndarray

    @property
    def n_items(self) -> int:
        return self.train.n_items


def leave_one_out(seqs: Sequences, min_length: int = 3) -> LeaveOneOutSplit:
    """Split every user's sequence into train / validation / test (see LeaveOneOutSplit)."""
    if min_length < 3:
        raise ValueError("min_length must be >= 3 (one train, one validation, one test item)")
    lengths = seqs.lengths
    keep = np.flatnonzero(lengths >= min_length)
    if keep.size == 0:
        raise ValueError(f"no user has at least {min_length} interactions")
    starts = seqs.offsets[keep]
    ends = seqs.offsets[keep + 1]
    train_len = (ends - starts) - 2
    offsets = np.zeros(keep.size + 1, dtype=np.int64)
    np.cumsum(train_len, out=offsets[1:])
    # Gather every kept user's first len-2 items in one vectorised pass.
    pos = np.arange(offsets[-1], dtype=np.int64) - np.repeat(offsets[:-1], train_len)
    items = seqs.items[np.repeat(starts, train_len) + pos]
    user_ids = None if seqs.user_ids is None else np.asarray(seqs.user_ids)[keep]
    train = Sequences(offsets, items, seqs.n_items, user_ids=user_ids, item_ids=seqs.item_ids)
    return LeaveOneOutSplit(
        train=train,
        valid_targets=seqs.items[ends - 2].copy(),
        test_targets=seqs.items[ends - 1].copy(),
        user_index=keep,
    )
