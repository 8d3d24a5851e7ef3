"""Item-item co-occurrence graph of per-user item sequences (C++ kernel, OpenMP, GIL released).

Definition. For every user, take the chronological sequence (only the most recent
``max_history`` items when set). Every ordered pair of positions ``(p, q)``, ``p != q``, with
``|p - q| <= window`` (any distance when ``window is None``) whose items ``i != j`` differ adds
a weight to ``A[i, j]`` (and, the pair ``(q, p)`` being counted too, the same to ``A[j, i]``):

* ``"count"``: 1. With ``window=None`` this is the off-diagonal of ``BᵀB`` where ``B[u, i]``
  counts how often user ``u`` has item ``i`` (``B`` binary when no user repeats an item).
* ``"inverse_distance"``: ``1 / |p - q|``.
* ``"binary"``: each user adds at most 1 to ``A[i, j]`` (1 when it has at least one such pair);
  with ``window=None`` the off-diagonal of ``(B > 0)ᵀ (B > 0)``.

Sums are exact (integer counts; 64.64 fixed point for ``1/d``) and rounded to float32 once, so
the result is bitwise identical whatever the thread count or the chunking of users.
Then ``min_count`` drops entries whose float32 weight is below it, and ``top_k`` keeps the edge
``(i, j)`` when ``j`` is among the ``top_k`` heaviest neighbours of ``i`` *or* ``i`` among those of
``j`` (ties: smaller column index first), so the graph stays symmetric.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable

import numpy as np
import scipy.sparse as sp

from .. import _core
from .._validation import check_n_threads
from ..data.sequences import Sequences

__all__ = ["cooccurrence", "CooccurrenceCounter"]

WEIGHTINGS = ("count", "inverse_distance", "binary")
_INT32_MAX = np.iinfo(np.int32).max


# ---------------------------------------------------------------------------------------
# argument checking


def check_optional_positive_int(value, name: str) -> int:
    """``None`` -> 0 (the kernels' "no limit"); else an int >= 1."""
    if value is None:
        return 0
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int >= 1 or None, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1 (or None), got {value}")
    return int(value)


def _check_weighting(weighting) -> str:
    if not isinstance(weighting, str):
        raise TypeError(f"weighting must be a str, got {type(weighting).__name__}")
    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")
    return weighting


def check_min_count(min_count) -> float:
    if isinstance(min_count, (bool, np.bool_)) or not isinstance(min_count, (int, float, np.integer, np.floating)):
        raise TypeError(f"min_count must be a number, got {type(min_count).__name__}")
    if math.isnan(min_count) or min_count < 0:
        raise ValueError(f"min_count must be >= 0, got {min_count}")
    return float(min_count)


def _check_n_items(n_items) -> int:
    if isinstance(n_items, (bool, np.bool_)) or not isinstance(n_items, (int, np.integer)):
        raise TypeError(f"n_items must be an int, got {type(n_items).__name__}")
    if n_items < 0 or n_items > _INT32_MAX:
        raise ValueError(f"n_items must lie in [0, 2**31 - 1], got {n_items}")
    return int(n_items)


def integer_array(a, name: str) -> np.ndarray:
    if sp.issparse(a):
        raise TypeError(f"{name} must be a 1-D integer array, got a sparse matrix")
    arr = np.asarray(a)
    if arr.dtype == object or arr.dtype.kind not in "iu":
        raise TypeError(f"{name} must hold integers, got dtype {arr.dtype}")
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    return arr


def _check_arrays(offsets, items, n_items) -> tuple[np.ndarray, np.ndarray, int]:
    """(offsets int64, items int32, n_items) from user input, or a clear exception."""
    offsets = integer_array(offsets, "offsets")
    items = integer_array(items, "items")
    if offsets.size < 1:
        raise ValueError("offsets must have n_users + 1 >= 1 entries (offsets[0] = 0)")
    if offsets.dtype == np.uint64 and offsets.max() > np.iinfo(np.int64).max:
        raise ValueError("offsets do not fit in int64")
    offsets = np.ascontiguousarray(offsets, dtype=np.int64)
    if offsets[0] != 0:
        raise ValueError(f"offsets[0] must be 0, got {offsets[0]}")
    if offsets.size > 1 and np.any(offsets[1:] < offsets[:-1]):
        raise ValueError("offsets must be non-decreasing")
    if offsets[-1] != items.size:
        raise ValueError(f"offsets[-1] = {offsets[-1]} but len(items) = {items.size}")
    if items.size:
        lo, hi = int(items.min()), int(items.max())
        if lo < 0:
            raise ValueError(f"item ids must be >= 0 (0-based), found {lo}")
        if n_items is None:
            if hi > _INT32_MAX - 1:
                raise ValueError(f"item ids must be < 2**31 - 1, found {hi}")
            n_items = hi + 1
        else:
            n_items = _check_n_items(n_items)
            if hi >= n_items:
                raise ValueError(f"item ids must be < n_items = {n_items}, found {hi} (n_items must be >= max id + 1)")
    else:
        if n_items is None:
            raise ValueError("no items: pass n_items to get an empty n_items x n_items graph")
        n_items = _check_n_items(n_items)
    return offsets, np.ascontiguousarray(items, dtype=np.int32), n_items


def _from_lists(seqs, n_items) -> Sequences:
    checked = []
    for k, s in enumerate(seqs):
        a = np.asarray(s)
        if a.size == 0:
            a = np.zeros(0, np.int64)
        elif a.dtype == object or a.dtype.kind not in "iu":
            raise TypeError(f"sequence {k} must hold integer item ids, got dtype {a.dtype}")
        if a.ndim != 1:
            raise ValueError(f"sequence {k} must be a flat list of item ids, got shape {a.shape}")
        if a.size and a.min() < 0:
            raise ValueError(f"item ids must be >= 0 (0-based), sequence {k} has {a.min()}")
        checked.append(a)
    total = sum(a.size for a in checked)
    if n_items is None and total == 0:
        raise ValueError("no items: pass n_items to get an empty n_items x n_items graph")
    if n_items is not None:
        n_items = _check_n_items(n_items)
        if total and max(int(a.max()) for a in checked if a.size) >= n_items:
            raise ValueError(f"item ids must be < n_items = {n_items} (n_items must be >= max id + 1)")
    return Sequences.from_lists(checked, n_items=n_items)


def _as_chunk(offsets, items, n_items) -> tuple[np.ndarray, np.ndarray, int]:
    """Normalise the accepted input forms to (offsets int64, items int32, n_items)."""
    if isinstance(offsets, Sequences):
        if items is not None:
            raise TypeError("pass either a Sequences or (offsets, items), not both")
        seqs = offsets
        if n_items is None:
            n_items = seqs.n_items
        else:
            n_items = _check_n_items(n_items)
            if n_items < seqs.n_items:
                raise ValueError(f"n_items = {n_items} is smaller than the Sequences' n_items = {seqs.n_items}")
        return _check_arrays(seqs.offsets, seqs.items, n_items)
    if items is None:
        if isinstance(offsets, np.ndarray) or sp.issparse(offsets):
            raise TypeError("items is required with an offsets array; or pass a Sequences or a list of per-user lists")
        if isinstance(offsets, (str, bytes)) or not isinstance(offsets, Iterable):
            raise TypeError(f"expected a Sequences, a list of lists or (offsets, items), got {type(offsets).__name__}")
        seqs = _from_lists(list(offsets), n_items)
        return seqs.offsets, seqs.items, seqs.n_items
    return _check_arrays(offsets, items, n_items)


def check_index_dtype(index_dtype) -> np.dtype:
    dt = np.dtype(index_dtype)
    if dt not in (np.dtype(np.int32), np.dtype(np.int64)):
        raise ValueError(f"index_dtype must be int32 or int64, got {dt}")
    return dt


def _to_csr(parts, n_items: int, index_dtype: np.dtype) -> sp.csr_array:
    # The binding widens to int64 itself (without the GIL) when index64 is asked for.
    indptr, indices, data = parts
    if index_dtype == np.int32 and indptr.dtype != np.int32:
        raise ValueError(f"the graph has {int(indptr[-1])} entries, too many for index_dtype=int32 (max 2**31 - 1)")
    graph = sp.csr_array((data, indices, indptr), shape=(n_items, n_items), copy=False)
    graph.has_sorted_indices = True
    graph.has_canonical_format = True
    return graph


# ---------------------------------------------------------------------------------------
# public API


def cooccurrence(
    offsets,
    items=None,
    n_items: int | None = None,
    *,
    window: int | None = None,
    weighting: str = "count",
    max_history: int | None = None,
    min_count: float = 1,
    top_k: int | None = None,
    n_threads: int | None = None,
    index_dtype=np.int64,
) -> sp.csr_array:
    """Item-item co-occurrence graph of chronological per-user item sequences.

    Parameters
    ----------
    offsets : array of int, shape (n_users + 1,), or Sequences, or list of lists
        User ``u``'s sequence is ``items[offsets[u]:offsets[u + 1]]``, oldest first.
        A :class:`~tfllmer_fast.data.sequences.Sequences` (then ``items`` must be None) or a list of
        per-user lists of item ids are accepted too.
    items : array of int (int32 or int64), shape (n_interactions,), optional
        0-based item ids.
    n_items : int, optional
        Size of the graph; default ``max(items) + 1`` (or the Sequences' ``n_items``). Required
        when there are no items at all (the result is then an all-zero matrix).
    window : int >= 1, optional
        Only pairs of positions at most ``window`` apart; None: the whole history.
    weighting : {"count", "inverse_distance", "binary"}
        Weight of a pair of positions ``(p, q)``: 1, ``1/|p - q|``, or at most 1 per user and
        item pair (see the module docstring for the exact definition).
    max_history : int >= 1, optional
        Keep only each user's ``max_history`` most recent items (bounds the cost of heavy
        users, which is quadratic in their length without a window).
    min_count : float >= 0
        Drop entries whose (float32) weight is below ``min_count``. The default 1 keeps every
        entry for "count" and "binary", but drops inverse_distance entries whose summed
        ``1/d`` is below 1: pass ``min_count=0`` to keep them.
    top_k : int >= 1, optional
        After ``min_count``, keep the edge ``(i, j)`` when it is among the ``top_k`` heaviest
        of row ``i`` or of row ``j`` (ties to the smaller column): symmetric, rows may keep
        more than ``top_k`` entries.
    n_threads : int >= 1, optional
        OpenMP threads; default all cores. The result does not depend on it.
    index_dtype : {numpy.int64, numpy.int32}
        dtype of ``indptr`` and ``indices`` (scipy keeps both alike). int64 by default, safe
        at any size; int32 halves the index memory and raises if nnz >= 2**31.

    Returns
    -------
    scipy.sparse.csr_array, shape (n_items, n_items)
        Symmetric, float32 weights, sorted indices, no diagonal and no explicit zeros.

    Examples
    --------
    >>> A = cooccurrence([[0, 1, 2], [1, 0]])
    >>> A.toarray()
    array([[0., 2., 1.],
           [2., 0., 1.],
           [1., 1., 0.]], dtype=float32)
    """
    offsets, items, n_items = _as_chunk(offsets, items, n_items)
    window = check_optional_positive_int(window, "window")
    max_history = check_optional_positive_int(max_history, "max_history")
    top_k = check_optional_positive_int(top_k, "top_k")
    weighting = _check_weighting(weighting)
    min_count = check_min_count(min_count)
    n_threads = check_n_threads(n_threads)
    index_dtype = check_index_dtype(index_dtype)
    parts = _core.cooccurrence(
        offsets, items, n_items, window, max_history, weighting, min_count, top_k, n_threads, index_dtype == np.int64
    )
    return _to_csr(parts, n_items, index_dtype)


class CooccurrenceCounter:
    """Streaming co-occurrence counting: feed chunks of users, get the graph at any time.

    ``update`` takes a chunk of *whole* users (a user must never be split across chunks:
    pairs across the cut would be missed, and "binary" would count the user twice). The
    accumulated sums are exact, so the graph is bitwise the same as one
    :func:`cooccurrence` call over all users, whatever the chunking and the thread count.

    Memory: the exact accumulated sums of the upper triangle (12 bytes per item pair for
    "count"/"binary", 20 for "inverse_distance") plus, during an update, one chunk (its
    occurrence index: 16 bytes per interaction) with its partial sums and a merged copy of
    the accumulated sums. :meth:`result` builds the float32 graph (both triangles) on top.

    Parameters are those of :func:`cooccurrence`; ``min_count`` and ``top_k`` go to
    :meth:`result`.

    Examples
    --------
    >>> counter = CooccurrenceCounter(3, window=1)
    >>> counter.update([[0, 1, 2]]).update([[2, 1]]).n_interactions_seen
    5
    >>> counter.result().toarray()
    array([[0., 1., 0.],
           [1., 0., 2.],
           [0., 2., 0.]], dtype=float32)
    """

    def __init__(
        self,
        n_items: int,
        *,
        window: int | None = None,
        weighting: str = "count",
        max_history: int | None = None,
        n_threads: int | None = None,
    ):
        self.n_items = _check_n_items(n_items)
        self.window = None if window is None else check_optional_positive_int(window, "window")
        self.max_history = None if max_history is None else check_optional_positive_int(max_history, "max_history")
        self.weighting = _check_weighting(weighting)
        self.n_threads = check_n_threads(n_threads)
        self._core = _core.CooccurrenceCounter(
            self.n_items, self.window or 0, self.max_history or 0, self.weighting, self.n_threads
        )
        self._lock = threading.Lock()

    def update(self, offsets, items=None) -> CooccurrenceCounter:
        """Add a chunk of whole users: (offsets, items), a Sequences or a list of lists.

        Item ids must be < ``n_items``. Returns ``self``. A chunk interrupted by Ctrl-C
        leaves the counter as it was before the call.
        """
        offsets, items, _ = _as_chunk(offsets, items, self.n_items)
        with self._lock:
            self._core.update(offsets, items)
        return self

    def result(self, min_count: float = 1, top_k: int | None = None, index_dtype=np.int64) -> sp.csr_array:
        """The graph of every user seen so far (see :func:`cooccurrence` for the options)."""
        min_count = check_min_count(min_count)
        top_k = check_optional_positive_int(top_k, "top_k")
        index_dtype = check_index_dtype(index_dtype)
        with self._lock:
            parts = self._core.result(min_count, top_k, index_dtype == np.int64)
        return _to_csr(parts, self.n_items, index_dtype)

    @property
    def n_interactions_seen(self) -> int:
        """Interactions passed to :meth:`update` so far (before ``max_history`` truncation)."""
        return self._core.n_interactions_seen

    @property
    def n_users_seen(self) -> int:
        return self._core.n_users_seen

    @property
    def nnz(self) -> int:
        """Entries stored so far (both triangles, before ``min_count`` / ``top_k``)."""
        return self._core.nnz

    def __repr__(self) -> str:
        return (
            f"CooccurrenceCounter(n_items={self.n_items}, window={self.window}, weighting={self.weighting!r}, "
            f"max_history={self.max_history}, n_users_seen={self.n_users_seen}, "
            f"n_interactions_seen={self.n_interactions_seen}, nnz={self.nnz})"
        )
