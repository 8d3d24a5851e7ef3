"""Synthetic interaction logs for the co-occurrence benchmarks (not collected by pytest)."""

from __future__ import annotations

import numpy as np


def zipf_items(rng: np.random.Generator, size: int, n_items: int, a: float, permutation: np.ndarray) -> np.ndarray:
    """``size`` item ids with P(rank k) proportional to 1 / (k + 1)^a; rank k is item permutation[k]."""
    weights = 1.0 / np.arange(1, n_items + 1, dtype=np.float64) ** a
    cdf = np.cumsum(weights)
    cdf /= cdf[-1]
    ranks = np.searchsorted(cdf, rng.random(size), side="right")
    np.minimum(ranks, n_items - 1, out=ranks)
    return permutation[ranks].astype(np.int32)


def synthetic_sequences(n_users: int, n_interactions: int, n_items: int, a: float = 1.0, seed: int = 0):
    """(offsets int64, items int32): geometric user lengths (mean n_interactions / n_users,
    at least 1), Zipf(a) item popularity over randomly permuted ids."""
    rng = np.random.default_rng(seed)
    mean = n_interactions / n_users
    lengths = rng.geometric(1.0 / mean, size=n_users).astype(np.int64)
    offsets = np.zeros(n_users + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    perm = rng.permutation(n_items)
    items = zipf_items(rng, int(offsets[-1]), n_items, a, perm)
    return offsets, items


def user_item_matrix(offsets: np.ndarray, items: np.ndarray, n_items: int, binary: bool = False):
    """scipy CSR user x item matrix B with B[u, i] = how often user u has item i (or 0/1)."""
    import scipy.sparse as sp

    n_users = offsets.size - 1
    rows = np.repeat(np.arange(n_users, dtype=np.int64), np.diff(offsets))
    B = sp.csr_array((np.ones(items.size, dtype=np.float64), (rows, items.astype(np.int64))), shape=(n_users, n_items))
    B.sum_duplicates()
    if binary:
        B.data[:] = 1.0
    return B
