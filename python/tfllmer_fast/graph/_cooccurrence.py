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

import threading

import numpy as np
import scipy.sparse as sp

from .. import _core
from .._validation import check_n_threads
from .checks import (
    as_chunk,
    check_index_dtype,
    check_min_count,
    check_n_items,
    check_optional_positive_int,
    check_weighting,
)

__all__ = ["cooccurrence", "CooccurrenceCounter"]


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
    offsets, items, n_items = as_chunk(offsets, items, n_items)
    window = check_optional_positive_int(window, "window")
    max_history = check_optional_positive_int(max_history, "max_history")
    top_k = check_optional_positive_int(top_k, "top_k")
    weighting = check_weighting(weighting)
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
        self.n_items = check_n_items(n_items)
        self.window = None if window is None else check_optional_positive_int(window, "window")
        self.max_history = None if max_history is None else check_optional_positive_int(max_history, "max_history")
        self.weighting = check_weighting(weighting)
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
        offsets, items, _ = as_chunk(offsets, items, self.n_items)
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

    def take_sums(self) -> tuple[int, int, np.ndarray, np.ndarray, np.ndarray, int]:
        """Moves the exact accumulated sums out, leaving the counter with no pairs:
        ``(n_users_seen, n_interactions_seen, indptr, cols, vals, words)`` of the upper
        triangle (what :class:`~tfllmer_fast.graph.partial.CoocPartial` holds)."""
        with self._lock:
            users, seen = self.n_users_seen, self.n_interactions_seen
            indptr, cols, vals, words = self._core.take_sums()
        return users, seen, indptr, cols, vals, words

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
