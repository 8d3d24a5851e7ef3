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

from .._validation import check_int
from .keys import as_key_array, as_time_array, factorize_sorted, lookup_keys, stable_order


def segment_ranks(counts: np.ndarray) -> np.ndarray:
    """``0, 1, .., c-1`` for every ``c`` in ``counts``, concatenated (int64)."""
    counts = np.asarray(counts, dtype=np.int64)
    return np.arange(counts.sum(), dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)


def gather_segments(items: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """``items[starts[k] : starts[k] + lengths[k]]`` for every k, concatenated."""
    lengths = np.asarray(lengths, dtype=np.int64)
    return items[np.repeat(np.asarray(starts, dtype=np.int64), lengths) + segment_ranks(lengths)]


def right_aligned_rows(
    seqs: Sequences, users: np.ndarray, start: np.ndarray, length: np.ndarray, width: int
) -> np.ndarray:
    """Row r holds items ``start[r] .. start[r] + length[r] - 1`` of user ``users[r]``'s
    history, right-aligned in ``width`` columns, as ids shifted by +1 (0 = padding): the
    input layout of the torch models."""
    length = np.asarray(length, dtype=np.int64)
    out = np.zeros((len(users), width), dtype=np.int64)
    rows = np.repeat(np.arange(len(users)), length)
    within = segment_ranks(length)
    src = np.repeat(seqs.offsets[users] + start, length) + within
    out[rows, np.repeat(width - length, length) + within] = seqs.items[src].astype(np.int64) + 1
    return out


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
                f"item ids must lie in 0..n_items-1 = 0..{self.n_items - 1}, found {items.min()}..{items.max()}"
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
    def from_lists(cls, seqs, n_items: int | None = None, **kw) -> Sequences:
        """From a list of per-user lists of 0-based item ids, each oldest first."""
        lengths = np.fromiter((len(s) for s in seqs), dtype=np.int64, count=len(seqs))
        offsets = np.zeros(lengths.size + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        items = (
            np.concatenate([np.asarray(s, dtype=np.int64) for s in seqs]) if lengths.sum() else np.zeros(0, np.int64)
        )
        if items.size and (items.min() < 0 or items.max() > np.iinfo(np.int32).max):
            raise ValueError("item ids must be non-negative and fit in int32")
        if n_items is None:
            n_items = int(items.max()) + 1 if items.size else 0
        return cls(offsets, items.astype(np.int32), n_items, **kw)

    def to_lists(self) -> list[list[int]]:
        return [self.user(u).tolist() for u in range(self.n_users)]

    @classmethod
    def from_interactions(cls, users, items, timestamps=None, *, n_items=None, item_ids=None) -> Sequences:
        """Build chronological sequences from an interaction log (one row per event).

        Parameters
        ----------
        users, items : array-like, same length
            User and item keys of each interaction (numpy arrays, lists or pandas columns;
            any dtype whose values can be sorted: ints, strings, ...).
        timestamps : array-like, optional
            Sort key within each user (numbers or ``datetime64``). ``None`` keeps input order.
        n_items : int, optional
            Without ``item_ids``: when given, ``items`` are taken as ready-made 0-based ids
            in ``0..n_items-1`` (no remapping, items without interactions allowed).
        item_ids : array-like, optional
            Raw item keys that fix the id order: item ``i`` is ``item_ids[i]``. Every key of
            ``items`` must occur in it.

        Returns
        -------
        Sequences
            Users are ordered by sorted user key and ``user_ids`` holds those keys. Unless
            ``n_items`` or ``item_ids`` fixes them, item ids are the ranks of the sorted
            distinct item keys (so integer keys ``1..n`` become ``0..n-1``) and
            ``item_ids`` holds the keys. Within a user, events are ordered by a stable sort
            on the timestamp: ties keep their input order.
        """
        users = as_key_array(users, "users")
        items = as_key_array(items, "items")
        if users.shape != items.shape:
            raise ValueError(f"users and items differ in length ({users.size} vs {items.size})")
        if users.size == 0:
            raise ValueError("no interactions: users and items are empty")
        user_keys, user_code = factorize_sorted(users, "user")
        if item_ids is not None:
            item_keys = as_key_array(item_ids, "item_ids")
            if n_items is not None and int(n_items) != item_keys.size:
                raise ValueError(f"n_items = {n_items} but item_ids has {item_keys.size} keys")
            item_code = lookup_keys(item_keys, items)
        elif n_items is not None:
            if items.dtype.kind not in "iu":
                raise TypeError(
                    f"with n_items (and no item_ids), items must be 0-based integer ids, got dtype {items.dtype}"
                )
            if items.min() < 0 or items.max() >= n_items:
                raise ValueError(
                    f"item ids must lie in 0..n_items-1 = 0..{n_items - 1}, found {items.min()}..{items.max()}"
                )
            item_keys, item_code = None, items.astype(np.int64)
        else:
            item_keys, item_code = factorize_sorted(items, "item")
            n_items = item_keys.size
        if timestamps is None:
            order = np.argsort(user_code, kind="stable")
        else:
            ts = as_time_array(timestamps, users.size)
            order = stable_order(user_code, ts)
        counts = np.bincount(user_code, minlength=user_keys.size)
        offsets = np.zeros(user_keys.size + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        n = item_keys.size if item_keys is not None else int(n_items)
        return cls(offsets, item_code[order].astype(np.int32), n, user_ids=user_keys, item_ids=item_keys)

    @classmethod
    def from_user_item_matrix(cls, M, order=None) -> Sequences:
        """Sequences from a sparse user x item matrix (one row per user).

        Every stored non-zero entry ``M[u, i]`` is one interaction of user ``u`` with item
        ``i``; its value (rating, count) is ignored. ``order`` is an optional sparse matrix
        of the same shape holding a sort key (timestamp, position) at each of ``M``'s
        non-zeros; items are sorted by it (stable: ties by column index). ``None`` orders
        each user's items by column index. Users are the rows (including empty rows),
        items the columns, so ``n_items = M.shape[1]``.
        """
        import scipy.sparse as sp

        if not sp.issparse(M):
            raise TypeError(f"M must be a scipy sparse matrix, got {type(M).__name__}")
        if M.ndim != 2:
            raise ValueError(f"M must be 2-D, got shape {M.shape}")
        M = sp.csr_array(M, copy=True)
        M.sum_duplicates()
        M.eliminate_zeros()
        M.sort_indices()
        n_users, n_items = M.shape
        offsets = M.indptr.astype(np.int64)
        items = M.indices.astype(np.int64)
        if order is not None:
            if not sp.issparse(order):
                raise TypeError("order must be a scipy sparse matrix of the same shape as M")
            if order.shape != M.shape:
                raise ValueError(f"order has shape {order.shape}, M has {M.shape}")
            keys = sp.coo_array(order)
            o_key = keys.row.astype(np.int64) * n_items + keys.col.astype(np.int64)
            o_sort = np.argsort(o_key, kind="stable")
            o_key, o_val = o_key[o_sort], np.asarray(keys.data)[o_sort]
            rows = np.repeat(np.arange(n_users, dtype=np.int64), np.diff(offsets))
            m_key = rows * n_items + items
            pos = np.searchsorted(o_key, m_key)
            pos_c = np.minimum(pos, max(o_key.size - 1, 0))
            found = (pos < o_key.size) & (o_key[pos_c] == m_key) if o_key.size else np.zeros(m_key.size, bool)
            if not found.all():
                k = int(np.flatnonzero(~found)[0])
                raise ValueError(f"order has no entry at ({rows[k]}, {items[k]}), a non-zero of M")
            key = as_time_array(o_val[pos_c], m_key.size, name="order")
            perm = np.lexsort((key, rows))  # rows already sorted; ties keep column order
            items = items[perm]
        return cls(offsets, items.astype(np.int32), n_items)

    def subset_items(self, keep) -> Sequences:
        """Drop every item not in ``keep`` (sorted ids or a boolean mask) and renumber.

        Kept item ``keep[j]`` becomes item ``j`` (relative order preserved); histories keep
        their order and users are all kept, possibly with empty histories. ``item_ids``
        follows the renumbering.
        """
        keep = _as_index(keep, self.n_items, "keep")
        new_id = np.full(self.n_items, -1, dtype=np.int64)
        new_id[keep] = np.arange(keep.size)
        mapped = new_id[self.items]
        mask = mapped >= 0
        user_of = np.repeat(np.arange(self.n_users, dtype=np.int64), self.lengths)
        lengths = np.bincount(user_of[mask], minlength=self.n_users)
        offsets = np.zeros(self.n_users + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        item_ids = None if self.item_ids is None else np.asarray(self.item_ids)[keep]
        return Sequences(
            offsets, mapped[mask].astype(np.int32), int(keep.size), user_ids=self.user_ids, item_ids=item_ids
        )

    def subset_users(self, keep) -> Sequences:
        """Only the users ``keep`` (indices, in the given order, or a boolean mask)."""
        keep = np.asarray(keep)
        if keep.dtype == bool:
            if keep.shape != (self.n_users,):
                raise ValueError(f"boolean keep must have shape ({self.n_users},)")
            keep = np.flatnonzero(keep)
        keep = keep.astype(np.int64)
        if keep.size and (keep.min() < 0 or keep.max() >= self.n_users):
            raise ValueError(f"user indices must lie in 0..{self.n_users - 1}")
        starts, lengths = self.offsets[keep], self.lengths[keep]
        offsets = np.zeros(keep.size + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        items = gather_segments(self.items, starts, lengths)
        user_ids = None if self.user_ids is None else np.asarray(self.user_ids)[keep]
        return Sequences(offsets, items, self.n_items, user_ids=user_ids, item_ids=self.item_ids)


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
    #: Cold-start protocol (see :mod:`.cold`): the histories users really had, which the
    #: evaluation reads (``None``: ``train``), and the cold item ids (``None``: no cold items).
    eval_history: Sequences | None = None
    cold_items: np.ndarray | None = None

    @property
    def n_items(self) -> int:
        return self.train.n_items

    @property
    def history(self) -> Sequences:
        """The evaluation inputs' histories: ``eval_history`` when set, else ``train``."""
        return self.train if self.eval_history is None else self.eval_history


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
    items = gather_segments(seqs.items, starts, train_len)
    user_ids = None if seqs.user_ids is None else np.asarray(seqs.user_ids)[keep]
    train = Sequences(offsets, items, seqs.n_items, user_ids=user_ids, item_ids=seqs.item_ids)
    return LeaveOneOutSplit(
        train=train,
        valid_targets=seqs.items[ends - 2].copy(),
        test_targets=seqs.items[ends - 1].copy(),
        user_index=keep,
    )


def kcore_filter(seqs: Sequences, k_user: int = 5, k_item: int = 5) -> tuple[Sequences, np.ndarray]:
    """Iterated k-core: drop users with < ``k_user`` and items with < ``k_item`` interactions.

    Counts are interactions (a repeated item counts each time). Removing items shortens
    histories and removing users lowers item counts, so both filters repeat until nothing
    changes (a fixed point; the result is the largest sub-log where every user and item
    meets its threshold). Users left with no items are dropped.

    Returns
    -------
    (Sequences, kept_item_index)
        Items renumbered to ``0..m-1`` in their original relative order;
        ``kept_item_index[j]`` is the original id of new item ``j`` (use it to subset
        embeddings: ``emb[kept_item_index]``). ``item_ids`` / ``user_ids`` are subset
        consistently; when the input had none, they record the original item ids / user
        rows instead.
    """
    for name, k in (("k_user", k_user), ("k_item", k_item)):
        check_int(k, name, minimum=1)
    user_of = np.repeat(np.arange(seqs.n_users, dtype=np.int64), seqs.lengths)
    alive = np.ones(seqs.n_interactions, dtype=bool)
    while True:
        user_count = np.bincount(user_of[alive], minlength=seqs.n_users)
        item_count = np.bincount(seqs.items[alive], minlength=seqs.n_items)
        drop = alive & ((user_count[user_of] < k_user) | (item_count[seqs.items] < k_item))
        if not drop.any():
            break
        alive &= ~drop
    # At the fixed point every surviving user/item meets its threshold (counts > 0).
    kept_items = np.flatnonzero(item_count > 0)
    kept_users = np.flatnonzero(user_count > 0)
    if kept_users.size == 0:
        raise ValueError(f"the ({k_user}, {k_item})-core is empty: no user and item meet the thresholds")
    base = seqs
    if base.user_ids is None:
        base = Sequences(
            base.offsets, base.items, base.n_items, user_ids=np.arange(base.n_users), item_ids=base.item_ids
        )
    if base.item_ids is None:
        base = Sequences(
            base.offsets, base.items, base.n_items, user_ids=base.user_ids, item_ids=np.arange(base.n_items)
        )
    # Keep alive interactions only, then renumber items and drop emptied users.
    lengths = np.bincount(user_of[alive], minlength=seqs.n_users)
    offsets = np.zeros(seqs.n_users + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    pruned = Sequences(offsets, seqs.items[alive], seqs.n_items, user_ids=base.user_ids, item_ids=base.item_ids)
    out = pruned.subset_items(kept_items).subset_users(kept_users)
    return out, kept_items.astype(np.int64)


def _as_index(keep, n: int, name: str) -> np.ndarray:
    keep = np.asarray(keep)
    if keep.dtype == bool:
        if keep.shape != (n,):
            raise ValueError(f"boolean {name} must have shape ({n},), got {keep.shape}")
        return np.flatnonzero(keep)
    keep = keep.astype(np.int64).reshape(-1)
    if keep.size and (keep.min() < 0 or keep.max() >= n):
        raise ValueError(f"{name} ids must lie in 0..{n - 1}")
    if np.any(np.diff(keep) <= 0):
        raise ValueError(f"{name} must be strictly increasing (sorted, no duplicates)")
    return keep
