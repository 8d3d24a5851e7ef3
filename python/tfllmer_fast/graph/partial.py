"""Exact, picklable partial co-occurrence sums: the state of a counter as plain arrays.

A :class:`CoocPartial` holds the exact sums (uint64 counts, or 64.64 fixed point for
``inverse_distance``) of a range of rows of the graph, either as the upper triangle (what a
counter stores) or as full rows (both triangles, what a row block of the final graph needs).
Every operation is exact, so partials counted on any split of the users (each user whole in
one part) and merged in any order and grouping finish into the same float32 graph, bit for
bit, as :func:`tfllmer_fast.cooccurrence` on all users at once.

The operations are engine-agnostic (numpy in, numpy out; no Dask here), so a Dask, Spark or
Ray driver only schedules them:

* :meth:`CoocPartial.count` - partial of a chunk (or an iterable of chunks) of whole users;
* :meth:`CoocPartial.merge` - exact sum of partials over the same rows and options;
* :meth:`CoocPartial.rows` - a row range (a slice, no copy until pickled);
* :meth:`CoocPartial.mirror_split` - full rows of each row block (the shuffle's map side);
* :meth:`CoocPartial.finish` - float32 graph (whole upper-triangle partial) or float32 rows
  (a full-row block), with ``min_count``; the top-k rule on blocks needs every row's k-th
  entry: :func:`top_k_stats` then :func:`top_k_filter`.

Partials never change their arrays in place; they are marked read-only.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from .. import _core
from .._validation import check_n_threads
from ._cooccurrence import CooccurrenceCounter
from .checks import (
    as_chunk,
    check_min_count,
    check_n_items,
    check_optional_positive_int,
    check_weighting,
)

__all__ = ["CoocPartial", "RowBlock", "top_k_stats", "top_k_filter", "assemble_blocks", "BYTES_PER_ENTRY"]

# Bytes per stored entry of exact sums: int32 column + uint64 count, or + 128-bit fixed point.
BYTES_PER_ENTRY = {"count": 12, "binary": 12, "inverse_distance": 20}


def _frozen(a: np.ndarray) -> np.ndarray:
    a = a.view()
    a.flags.writeable = False
    return a


@dataclass(frozen=True)
class CoocOptionsKey:
    """What must agree for two partials to be summed."""

    n_items: int
    window: int | None
    max_history: int | None
    weighting: str

    def __post_init__(self):
        check_n_items(self.n_items)
        if self.window is not None:
            check_optional_positive_int(self.window, "window")
        if self.max_history is not None:
            check_optional_positive_int(self.max_history, "max_history")
        check_weighting(self.weighting)

    @property
    def words(self) -> int:
        return 2 if self.weighting == "inverse_distance" else 1


@dataclass(frozen=True, eq=False)
class CoocPartial:
    """Exact sums of rows ``[row_begin, row_end)`` (see the module docstring)."""

    options: CoocOptionsKey
    row_begin: int
    row_end: int
    upper: bool
    indptr: np.ndarray  # int64, rows + 1, starting at 0
    cols: np.ndarray  # int32, global column ids
    vals: np.ndarray  # uint64, words per entry
    n_users: int = 0
    n_interactions: int = 0
    meta: dict = field(default_factory=dict)  # free-form labels (e.g. which shards)

    def __post_init__(self):
        rows = self.row_end - self.row_begin
        if not 0 <= self.row_begin <= self.row_end <= self.options.n_items:
            raise ValueError(f"rows [{self.row_begin}, {self.row_end}) outside [0, {self.options.n_items})")
        indptr = np.asarray(self.indptr)
        if indptr.dtype != np.int64 or indptr.shape != (rows + 1,):
            raise ValueError(f"indptr must be int64 with {rows + 1} entries, got {indptr.dtype} {indptr.shape}")
        nnz = int(indptr[-1])
        if self.cols.dtype != np.int32 or self.cols.shape != (nnz,):
            raise ValueError("cols must be int32 with indptr[-1] entries")
        if self.vals.dtype != np.uint64 or self.vals.shape != (nnz * self.options.words,):
            raise ValueError(f"vals must be uint64 with {self.options.words} word(s) per entry")
        for name in ("indptr", "cols", "vals"):
            object.__setattr__(self, name, _frozen(np.ascontiguousarray(getattr(self, name))))

    def __reduce__(self):
        # Through the constructor: an unpickled partial is checked and read-only again.
        return (
            CoocPartial,
            (
                self.options,
                self.row_begin,
                self.row_end,
                self.upper,
                self.indptr,
                self.cols,
                self.vals,
                self.n_users,
                self.n_interactions,
                self.meta,
            ),
        )

    # ------------------------------------------------------------------ facts
    @property
    def n_items(self) -> int:
        return self.options.n_items

    @property
    def nnz(self) -> int:
        """Stored entries (one triangle for an upper partial)."""
        return int(self.indptr[-1])

    @property
    def nbytes(self) -> int:
        return int(self.indptr.nbytes + self.cols.nbytes + self.vals.nbytes)

    def __sizeof__(self) -> int:
        # Memory managers that size objects with sys.getsizeof (Dask's spilling does) must
        # see the arrays, or they never spill partials and the workers run out of memory.
        return object.__sizeof__(self) + self.nbytes

    def _args(self):
        return self.indptr, self.cols, self.vals

    def __repr__(self) -> str:
        kind = "upper" if self.upper else "full rows"
        return (
            f"CoocPartial(rows=[{self.row_begin}, {self.row_end}) of {self.n_items}, {kind}, "
            f"nnz={self.nnz}, weighting={self.options.weighting!r}, n_users={self.n_users})"
        )

    # ------------------------------------------------------------- builders
    @classmethod
    def count(
        cls,
        chunks,
        n_items: int,
        *,
        window=None,
        weighting: str = "count",
        max_history=None,
        n_threads: int | None = 1,
        label: str | None = None,
    ) -> CoocPartial:
        """Upper-triangle partial of users given as ``(offsets, items)`` or an iterable of such
        chunks (each chunk of whole users; a user never split across chunks).

        Errors in a chunk are re-raised with ``label`` (e.g. the shard's name) in the message.
        """
        counter = CooccurrenceCounter(
            n_items, window=window, weighting=weighting, max_history=max_history, n_threads=n_threads
        )
        if isinstance(chunks, tuple) and len(chunks) == 2 and not isinstance(chunks[0], tuple):
            chunks = [chunks]
        for chunk in chunks:
            try:
                offsets, items = chunk
                offsets, items, _ = as_chunk(offsets, items, counter.n_items)
            except (ValueError, TypeError) as e:
                if label is None:
                    raise
                raise type(e)(f"{label}: {e}") from None
            counter.update(offsets, items)
        return cls.from_counter(counter)

    @classmethod
    def from_counter(cls, counter: CooccurrenceCounter) -> CoocPartial:
        """Moves the counter's sums into a partial (the counter is left with no pairs)."""
        key = CoocOptionsKey(counter.n_items, counter.window, counter.max_history, counter.weighting)
        users, seen, indptr, cols, vals, words = counter.take_sums()
        assert words == key.words
        return cls(key, 0, key.n_items, True, indptr, cols, vals, users, seen)

    @classmethod
    def empty(
        cls, options: CoocOptionsKey, row_begin: int = 0, row_end: int | None = None, upper: bool = True
    ) -> CoocPartial:
        row_end = options.n_items if row_end is None else row_end
        return cls(
            options,
            row_begin,
            row_end,
            upper,
            np.zeros(row_end - row_begin + 1, np.int64),
            np.zeros(0, np.int32),
            np.zeros(0, np.uint64),
        )

    # ----------------------------------------------------------- operations
    @staticmethod
    def check_compatible(parts: Sequence[CoocPartial]) -> None:
        """ValueError unless the partials share options, rows and triangle."""
        if not parts:
            raise ValueError("no partials to merge")
        first = parts[0]
        for k, p in enumerate(parts):
            if not isinstance(p, CoocPartial):
                raise TypeError(f"partial {k} is a {type(p).__name__}, not a CoocPartial")
            if p.options != first.options:
                raise ValueError(
                    f"cannot merge partials counted with different options: {first.options} "
                    f"vs {p.options} (partial {k})"
                )
            if (p.row_begin, p.row_end, p.upper) != (first.row_begin, first.row_end, first.upper):
                raise ValueError(
                    f"cannot merge partials of different rows: [{first.row_begin}, {first.row_end}) "
                    f"{'upper' if first.upper else 'full'} vs [{p.row_begin}, {p.row_end}) "
                    f"{'upper' if p.upper else 'full'} (partial {k})"
                )

    @classmethod
    def merge(cls, parts: Sequence[CoocPartial], n_threads: int | None = 1) -> CoocPartial:
        """Exact entry-wise sum: the same in any order and grouping."""
        parts = list(parts)
        cls.check_compatible(parts)
        first = parts[0]
        users = sum(p.n_users for p in parts)
        seen = sum(p.n_interactions for p in parts)
        nonempty = [p for p in parts if p.nnz]
        if len(nonempty) <= 1:
            src = nonempty[0] if nonempty else first
            return cls(first.options, first.row_begin, first.row_end, first.upper, *src._args(), users, seen)
        indptr, cols, vals = _core.cooc_sums_merge(
            [p._args() for p in nonempty],
            first.n_items,
            first.row_begin,
            first.row_end,
            first.upper,
            first.options.words,
            check_n_threads(n_threads),
        )
        return cls(first.options, first.row_begin, first.row_end, first.upper, indptr, cols, vals, users, seen)

    def rows(self, begin: int, end: int) -> CoocPartial:
        """Rows ``[begin, end)`` (global ids) of this partial."""
        if not self.row_begin <= begin <= end <= self.row_end:
            raise ValueError(f"rows [{begin}, {end}) outside this partial's [{self.row_begin}, {self.row_end})")
        a, b = begin - self.row_begin, end - self.row_begin
        lo, hi = int(self.indptr[a]), int(self.indptr[b])
        w = self.options.words
        return CoocPartial(
            self.options,
            begin,
            end,
            self.upper,
            self.indptr[a : b + 1] - lo,
            self.cols[lo:hi],
            self.vals[lo * w : hi * w],
        )

    def mirror_split(self, bounds: Sequence[int]) -> list[CoocPartial]:
        """Full rows (both triangles) of each block ``[bounds[b], bounds[b + 1])`` that this
        upper-triangle partial contributes to. ``bounds`` rise from 0 to ``n_items``."""
        if not self.upper:
            raise ValueError("mirror_split needs an upper-triangle partial")
        bounds = check_bounds(bounds, self.n_items)
        pieces = _core.cooc_sums_mirror_split(
            *self._args(), self.n_items, self.row_begin, self.row_end, self.options.words, bounds, 1
        )
        return [CoocPartial(self.options, int(bounds[b]), int(bounds[b + 1]), False, *p) for b, p in enumerate(pieces)]

    def row_entries(self) -> np.ndarray:
        """Entries per row of the full symmetric graph these sums contribute to (int64, n_items)."""
        counts = np.bincount(self.cols, minlength=self.n_items).astype(np.int64)
        own = np.diff(self.indptr)
        counts[self.row_begin : self.row_end] += own
        return counts

    def finish(self, min_count: float = 1, top_k: int | None = None, n_threads: int | None = 1, index_dtype=np.int64):
        """Float32 result.

        An upper-triangle partial over every row gives the whole graph as a ``csr_array``
        (``min_count`` and ``top_k`` as in :func:`cooccurrence`). A full-row block gives a
        :class:`RowBlock` after ``min_count``; its top-k needs :func:`top_k_stats` of every
        block, then :func:`top_k_filter`.
        """
        min_count = check_min_count(min_count)
        top_k = check_optional_positive_int(top_k, "top_k")
        n_threads = check_n_threads(n_threads)
        if self.upper:
            if (self.row_begin, self.row_end) != (0, self.n_items):
                raise ValueError(
                    "an upper-triangle partial finishes only when it holds every row: "
                    "mirror_split it into row blocks first"
                )
            indptr, indices, data = _core.cooc_sums_finish(
                *self._args(),
                self.n_items,
                0,
                self.n_items,
                True,
                self.options.words,
                min_count,
                top_k,
                n_threads,
            )
            return RowBlock(0, self.n_items, indptr, indices, data).to_csr(index_dtype)
        if top_k:
            raise ValueError("finish a row block with top_k=None, then apply top_k_stats/top_k_filter")
        indptr, indices, data = _core.cooc_sums_finish(
            *self._args(),
            self.n_items,
            self.row_begin,
            self.row_end,
            False,
            self.options.words,
            min_count,
            0,
            n_threads,
        )
        return RowBlock(self.row_begin, self.n_items, indptr, indices, data)


@dataclass(frozen=True, eq=False)
class RowBlock:
    """Float32 rows ``[row_begin, row_begin + len(indptr) - 1)`` of an ``n_items``-column graph."""

    row_begin: int
    n_items: int
    indptr: np.ndarray  # int64
    indices: np.ndarray  # int32, global columns
    data: np.ndarray  # float32

    @property
    def row_end(self) -> int:
        return self.row_begin + self.indptr.size - 1

    @property
    def nnz(self) -> int:
        return int(self.indptr[-1])

    @property
    def nbytes(self) -> int:
        return int(self.indptr.nbytes + self.indices.nbytes + self.data.nbytes)

    def __sizeof__(self) -> int:
        return object.__sizeof__(self) + self.nbytes

    def to_csr(self, index_dtype=np.int64) -> sp.csr_array:
        """The rows as a ``(rows, n_items)`` csr_array (the whole graph when it holds every row)."""
        return assemble_blocks(
            [self],
            self.n_items,
            index_dtype=index_dtype,
            n_rows=self.row_end - self.row_begin,
            row_begin=self.row_begin,
        )


def check_bounds(bounds, n_items: int) -> list[int]:
    b = np.asarray(bounds)
    if b.ndim != 1 or b.size < 2 or b.dtype.kind not in "iu":
        raise ValueError("bounds must be a 1-D integer sequence of at least 2 entries")
    if b[0] != 0 or b[-1] != n_items or np.any(np.diff(b) < 0):
        raise ValueError(f"bounds must rise from 0 to n_items = {n_items}, got {b.tolist()[:8]}...")
    return [int(x) for x in b]


def top_k_stats(block: RowBlock, top_k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row of a block: (more than top_k entries?, k-th weight, k-th column)."""
    top_k = check_optional_positive_int(top_k, "top_k")
    return _core.cooc_top_k_stats(block.indptr, block.indices, block.data, top_k, 1)


def top_k_filter(block: RowBlock, stats: tuple[np.ndarray, np.ndarray, np.ndarray]) -> RowBlock:
    """A block's rows kept by the symmetric top-k rule; ``stats`` cover every row of the graph
    (the blocks' :func:`top_k_stats` concatenated in row order)."""
    capped, kth_w, kth_col = stats
    indptr, indices, data = _core.cooc_top_k_filter(
        block.indptr, block.indices, block.data, block.row_begin, capped, kth_w, kth_col, 1
    )
    return RowBlock(block.row_begin, block.n_items, indptr, indices, data)


def assemble_blocks(
    blocks: Iterable[RowBlock],
    n_items: int,
    *,
    index_dtype=np.int64,
    n_rows: int | None = None,
    row_begin: int = 0,
) -> sp.csr_array:
    """Row blocks (in row order, contiguous) as one csr_array."""
    blocks = list(blocks)
    index_dtype = np.dtype(index_dtype)
    n_rows = n_items if n_rows is None else n_rows
    at = row_begin
    for b in blocks:
        if b.row_begin != at:
            raise ValueError(f"row blocks must be contiguous and in order: expected row {at}, got {b.row_begin}")
        at = b.row_end
    if at != row_begin + n_rows:
        raise ValueError(f"the row blocks cover rows up to {at}, not {row_begin + n_rows}")
    nnz = sum(b.nnz for b in blocks)
    if index_dtype == np.int32 and nnz > np.iinfo(np.int32).max:
        raise ValueError(f"the graph has {nnz} entries, too many for index_dtype=int32 (max 2**31 - 1)")
    indptr = np.empty(n_rows + 1, dtype=index_dtype)
    indptr[0] = 0
    indices = np.empty(nnz, dtype=index_dtype)
    data = np.empty(nnz, dtype=np.float32)
    r = e = 0
    for b in blocks:
        rows = b.row_end - b.row_begin
        indptr[r + 1 : r + rows + 1] = b.indptr[1:] + e
        indices[e : e + b.nnz] = b.indices
        data[e : e + b.nnz] = b.data
        r += rows
        e += b.nnz
    graph = sp.csr_array((data, indices, indptr), shape=(n_rows, n_items), copy=False)
    graph.has_sorted_indices = True
    graph.has_canonical_format = True
    return graph
