"""Argument checks of the co-occurrence graph, shared by the graph layer and
:mod:`tfllmer_fast.dask`: the options (window, weighting, ...) and the accepted forms of
per-user item sequences, turned into what the kernels take or a clear exception."""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import scipy.sparse as sp

from .._validation import check_int
from ..data.sequences import Sequences

__all__ = [
    "WEIGHTINGS",
    "as_chunk",
    "check_arrays",
    "check_index_dtype",
    "check_min_count",
    "check_n_items",
    "check_optional_positive_int",
    "check_weighting",
    "integer_array",
]

#: The weightings of a pair of positions (see :func:`tfllmer_fast.cooccurrence`).
WEIGHTINGS = ("count", "inverse_distance", "binary")
_INT32_MAX = np.iinfo(np.int32).max


def check_optional_positive_int(value, name: str) -> int:
    """``None`` -> 0 (the kernels' "no limit"); else an int >= 1."""
    checked = check_int(value, name, minimum=1, allow_none=True)
    return 0 if checked is None else checked


def check_weighting(weighting) -> str:
    """One of :data:`WEIGHTINGS`."""
    if not isinstance(weighting, str):
        raise TypeError(f"weighting must be a str, got {type(weighting).__name__}")
    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")
    return weighting


def check_min_count(min_count) -> float:
    """A number >= 0 (not a bool), as a float."""
    if isinstance(min_count, (bool, np.bool_)) or not isinstance(min_count, (int, float, np.integer, np.floating)):
        raise TypeError(f"min_count must be a number, got {type(min_count).__name__}")
    if math.isnan(min_count) or min_count < 0:
        raise ValueError(f"min_count must be >= 0, got {min_count}")
    return float(min_count)


def check_n_items(n_items) -> int:
    """The size of a graph: an int in ``[0, 2**31 - 1]`` (item ids are int32 in the kernels)."""
    n_items = check_int(n_items, "n_items")
    if n_items < 0 or n_items > _INT32_MAX:
        raise ValueError(f"n_items must lie in [0, 2**31 - 1], got {n_items}")
    return n_items


def check_index_dtype(index_dtype) -> np.dtype:
    """int32 or int64, the index dtype of a returned csr_array."""
    dt = np.dtype(index_dtype)
    if dt not in (np.dtype(np.int32), np.dtype(np.int64)):
        raise ValueError(f"index_dtype must be int32 or int64, got {dt}")
    return dt


def integer_array(a, name: str) -> np.ndarray:
    """A 1-D array of integers (no copy), or a clear exception."""
    if sp.issparse(a):
        raise TypeError(f"{name} must be a 1-D integer array, got a sparse matrix")
    arr = np.asarray(a)
    if arr.dtype == object or arr.dtype.kind not in "iu":
        raise TypeError(f"{name} must hold integers, got dtype {arr.dtype}")
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    return arr


def check_arrays(offsets, items, n_items) -> tuple[np.ndarray, np.ndarray, int]:
    """(offsets int64, items int32, n_items) from user input, or a clear exception.

    ``n_items=None``: ``max(items) + 1``.
    """
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
            n_items = check_n_items(n_items)
            if hi >= n_items:
                raise ValueError(f"item ids must be < n_items = {n_items}, found {hi} (n_items must be >= max id + 1)")
    else:
        if n_items is None:
            raise ValueError("no items: pass n_items to get an empty n_items x n_items graph")
        n_items = check_n_items(n_items)
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
        n_items = check_n_items(n_items)
        if total and max(int(a.max()) for a in checked if a.size) >= n_items:
            raise ValueError(f"item ids must be < n_items = {n_items} (n_items must be >= max id + 1)")
    return Sequences.from_lists(checked, n_items=n_items)


def as_chunk(offsets, items=None, n_items=None) -> tuple[np.ndarray, np.ndarray, int]:
    """Any accepted form of users' sequences as (offsets int64, items int32, n_items).

    Accepted: ``(offsets, items)`` arrays, a :class:`~tfllmer_fast.data.sequences.Sequences`
    (``items`` None) or a list of per-user lists of item ids (``items`` None).
    """
    if isinstance(offsets, Sequences):
        if items is not None:
            raise TypeError("pass either a Sequences or (offsets, items), not both")
        seqs = offsets
        if n_items is None:
            n_items = seqs.n_items
        else:
            n_items = check_n_items(n_items)
            if n_items < seqs.n_items:
                raise ValueError(f"n_items = {n_items} is smaller than the Sequences' n_items = {seqs.n_items}")
        return check_arrays(seqs.offsets, seqs.items, n_items)
    if items is None:
        if isinstance(offsets, np.ndarray) or sp.issparse(offsets):
            raise TypeError("items is required with an offsets array; or pass a Sequences or a list of per-user lists")
        if isinstance(offsets, (str, bytes)) or not isinstance(offsets, Iterable):
            raise TypeError(f"expected a Sequences, a list of lists or (offsets, items), got {type(offsets).__name__}")
        seqs = _from_lists(list(offsets), n_items)
        return seqs.offsets, seqs.items, seqs.n_items
    return check_arrays(offsets, items, n_items)
