"""Planning the Dask reduction from the first shards, and the sizes Dask's spilling sees."""

import numpy as np
import pytest

dask = pytest.importorskip("dask")
pytest.importorskip("distributed")

from dask.sizeof import sizeof  # noqa: E402

from tfllmer_fast.dask._plan import GraphEstimate, plan_row_blocks  # noqa: E402
from tfllmer_fast.graph.partial import CoocPartial  # noqa: E402


def shard(seed, n_users, n_items, zipf=1.1):
    rng = np.random.default_rng(seed)
    lens = rng.integers(1, 30, n_users)
    offsets = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
    items = np.minimum(rng.zipf(zipf, offsets[-1]) - 1, n_items - 1).astype(np.int32)
    return offsets, items


@pytest.mark.parametrize("n_items", [40, 400, 40_000])  # saturated, between, every pair new
@pytest.mark.parametrize("seed", [0, 1])
def test_estimate_lies_between_the_merged_graph_and_the_sum_of_shards(n_items, seed):
    n_shards, bucket = 8, 4
    parts = [CoocPartial.count(shard(seed * 100 + k, 300, n_items), n_items, window=4) for k in range(n_shards)]
    singles = [p.row_entries() for p in parts[:2]]
    merged_sample = CoocPartial.merge(parts[:2]).row_entries()

    def by_bucket(x):
        return np.add.reduceat(x, np.arange(0, n_items, bucket))

    est = GraphEstimate.from_sample(
        [by_bucket(s) for s in singles], by_bucket(merged_sample), n_shards, n_items, bucket
    )
    truth = CoocPartial.merge(parts).row_entries().sum()
    no_overlap = sum(p.row_entries().sum() for p in parts)
    # Close above the truth, well below the no-overlap bound where shards repeat pairs.
    assert 0.95 * truth <= est.hist.sum() <= min(1.5 * truth, no_overlap)
    assert np.all(est.hist <= est.cap) and np.all((0 <= est.growth) & (est.growth <= 1))
    merged, inputs = est.block_entries(plan_row_blocks(est.hist, bucket, n_items, 3), split_every=4)
    assert merged.sum() == pytest.approx(est.hist.sum())
    assert np.all(inputs >= merged - 1e-6)  # a merge's inputs hold at least its output


def test_dask_sees_the_arrays_of_partials_and_blocks():
    # Dask decides what to spill from sizeof: a partial that looked like a few bytes would
    # never be spilled and its worker would be killed for memory instead.
    p = CoocPartial.count(shard(0, 200, 300), 300, window=3)
    assert sizeof(p) >= p.nbytes > 1000
    block = p.mirror_split([0, 100, 300])[0].finish()
    assert sizeof(block) >= block.nbytes > 1000
    assert sizeof([p, p]) >= 2 * p.nbytes
