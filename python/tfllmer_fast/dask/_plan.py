"""Planning the reduction from the first shards' counts: how big the merged graph and each
row block will get, and where the row blocks end."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def plan_row_blocks(entries_per_bucket: np.ndarray, bucket: int, n_items: int, n_blocks: int) -> list[int]:
    """Row bounds of ``n_blocks`` blocks holding about equal numbers of entries.

    ``entries_per_bucket[k]``: entries of rows ``[k * bucket, (k + 1) * bucket)``. Bounds fall
    on bucket edges, so a block holds at least one bucket's rows (fewer blocks come out
    when there are fewer non-empty buckets than blocks asked for).
    """
    hist = np.asarray(entries_per_bucket, dtype=np.float64)
    if n_blocks < 1:
        raise ValueError("n_blocks must be >= 1")
    cum = np.concatenate([[0.0], np.cumsum(hist)])
    total = cum[-1]
    if total == 0:
        edges = np.linspace(0, n_items, n_blocks + 1).round().astype(np.int64)
        return sorted(set(int(x) for x in edges))
    targets = total * np.arange(1, n_blocks) / n_blocks
    cuts = np.searchsorted(cum, targets, side="left")
    edges = np.unique(np.clip(np.concatenate([[0], cuts * bucket, [n_items]]), 0, n_items))
    return [int(x) for x in edges]


@dataclass(frozen=True)
class GraphEstimate:
    """Entries per row bucket of merged partials, estimated from the first shards.

    ``per_shard[k]``: the mean entries (of the full symmetric graph) of rows in bucket ``k``
    in one shard's partial. ``growth[k]``: the exponent ``g`` with which ``m`` merged shards
    hold about ``per_shard * m**g`` entries there (Heaps' law), read off the sample merged:
    1 where every pair is new, towards 0 where a small catalogue's pairs saturate. Taken at
    the first merge, where it is steepest, it overstates later growth rather than understating
    it. ``cap[k]``: what the rows can hold at most (``n_items - 1`` entries each). Shards are
    assumed alike in size.
    """

    per_shard: np.ndarray
    growth: np.ndarray
    cap: np.ndarray
    n_shards: int
    bucket: int

    @classmethod
    def from_sample(
        cls, singles: list[np.ndarray], merged: np.ndarray, n_shards: int, n_items: int, bucket: int
    ) -> GraphEstimate:
        """``singles``: entries per bucket of each sample shard; ``merged``: of their merge."""
        per_shard = np.mean(np.asarray(singles, dtype=np.float64), axis=0) if n_items else np.zeros(0)
        growth = np.ones_like(per_shard)
        if len(singles) > 1:
            seen = (per_shard > 0) & (merged > 0)
            growth[seen] = np.log(merged[seen] / per_shard[seen]) / np.log(len(singles))
        rows = np.diff(np.minimum(np.arange(0, n_items + bucket, bucket), n_items))[: per_shard.size]
        return cls(per_shard, np.clip(growth, 0.0, 1.0), rows * float(max(n_items - 1, 0)), n_shards, bucket)

    def merged(self, n_shards: float) -> np.ndarray:
        """Entries per bucket of ``n_shards`` shards merged."""
        return np.minimum(self.per_shard * float(n_shards) ** self.growth, self.cap)

    @property
    def hist(self) -> np.ndarray:
        """Entries per bucket of the whole graph."""
        return self.merged(self.n_shards)

    def last_merge_inputs(self, split_every: int) -> np.ndarray:
        """Entries per bucket fed to a tree's root merge: ``split_every`` sums of the shards."""
        return split_every * self.merged(max(1.0, self.n_shards / split_every))

    def upper_entries(self, split_every: int) -> tuple[float, float]:
        """(the merged graph, the root merge's inputs) in upper-triangle entries."""
        return float(self.hist.sum()) / 2, float(self.last_merge_inputs(split_every).sum()) / 2

    def block_entries(self, bounds: list[int], split_every: int) -> tuple[np.ndarray, np.ndarray]:
        """(merged, root merge's inputs) full-row entries of each block ``[bounds[b], bounds[b + 1])``."""
        lo = [a // self.bucket for a in bounds[:-1]]
        hi = [-(-b // self.bucket) for b in bounds[1:]]
        merged, inputs = self.hist, self.last_merge_inputs(split_every)
        return (
            np.array([merged[a:b].sum() for a, b in zip(lo, hi)]),
            np.array([inputs[a:b].sum() for a, b in zip(lo, hi)]),
        )
