"""Recommendations of a small untrained SASRec (pytest-benchmark; CI runs each body once).

The measured figures for the whole Beauty catalogue and RecBole's full_sort_topk come from
``recommend_throughput.py``; these suites track the serving path's own cost over time."""

import os

import numpy as np
import pytest
import torch

from tfllmer_fast.serving import Recommender
from tfllmer_fast.train import SASRec

N_USERS, N_ITEMS = 2000, 3000


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    rec = Recommender(SASRec(N_ITEMS, 64, 50, normalize_items=True).eval(), [f"sku-{i}" for i in range(N_ITEMS)])
    rng = np.random.default_rng(0)
    keys = rec.item_keys
    hist = [keys[rng.integers(0, N_ITEMS, rng.integers(1, 30))].tolist() for _ in range(N_USERS)]
    return rec, hist


@pytest.fixture(autouse=True)
def _threads():
    """One torch thread (``TFLLMER_BENCH_THREADS`` to change it), restored after."""
    n = torch.get_num_threads()
    torch.set_num_threads(int(os.environ.get("TFLLMER_BENCH_THREADS") or 1))
    yield
    torch.set_num_threads(n)


def test_recommend_top_10(benchmark, setup):
    rec, hist = setup
    recs = benchmark(rec.recommend, hist, 10)
    assert recs.ids.shape == (N_USERS, 10) and (recs.lengths == 10).all()


def test_user_vectors(benchmark, setup):
    rec, hist = setup
    U = benchmark(rec.user_vectors, hist)
    assert U.shape == (N_USERS, 64) and np.isfinite(U).all()


def test_floor_gemm_and_topk(benchmark, setup):
    """The bound the serving path is measured against: the bare score product plus topk."""
    rec, _ = setup
    H = torch.randn(N_USERS, 64, generator=torch.Generator().manual_seed(0))
    E = rec.model.item_table().detach()

    def floor():
        with torch.no_grad():
            return [torch.topk(H[a : a + 256] @ E.t(), 10).indices for a in range(0, N_USERS, 256)]

    assert len(benchmark(floor)) == -(-N_USERS // 256)
