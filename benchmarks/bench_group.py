"""Many models per process: epoch time of a group of K SASRec models (train/group.py).

Default (CI): a small synthetic catalogue, K = 1 and 4, one untimed round. With
``TFLLMER_BENCH_FULL=1``: Scientific, K = 1, 4, 16, 3 rounds:

    TFLLMER_BENCH_FULL=1 python -m pytest benchmarks/bench_group.py --benchmark-enable -s

Each benchmark is one group epoch; ``extra_info`` holds models x epochs per second. For
ratios measured in one interleaved run, use ``benchmarks/group_throughput.py``.
"""

from __future__ import annotations

import os

import pytest
import torch

FULL = os.environ.get("TFLLMER_BENCH_FULL") == "1"
KS = [1, 4, 16] if FULL else [1, 4]
ROUNDS = 3 if FULL else 1


@pytest.fixture(scope="module")
def split():
    import tfllmer_fast
    from tfllmer_fast.experiment.run import make_split

    if FULL:
        from tfllmer_fast.data.paths import shared_data_dir

        d = shared_data_dir()
        if d is None or not (d / "scientific").is_dir():
            pytest.skip("Scientific not found: set TFLLMER_DATA to the folder holding it")
        data = tfllmer_fast.load_dataset("scientific")
    else:
        data = tfllmer_fast.load_dataset("synthetic", embeddings=None, synthetic=dict(
            n_users=150, n_items=60, dim=16, seed=0))
    return make_split(data.sequences)


@pytest.fixture
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.mark.parametrize("k", KS)
def test_group_epoch(benchmark, split, k, one_thread):
    from tfllmer_fast.experiment.config import Config
    from tfllmer_fast.train.group import GroupTrainer, build_member

    small = {} if FULL else dict(hidden=16, max_len=10, batch_size=64)
    cfgs = [Config(dataset="scientific" if FULL else "synthetic", init="random",
                   embeddings=None, seed=s, epochs=1000, progress=False, threads=1, **small)
            for s in range(k)]
    built = [build_member(c, split.n_items) for c in cfgs]
    g = GroupTrainer([m for m, _ in built], split, cfgs, dropout_states=[s for _, s in built])
    g._restack(list(range(k)))
    losses = benchmark.pedantic(g.train_epoch, rounds=ROUNDS, iterations=1)
    assert len(losses) == k and all(torch.isfinite(torch.tensor(losses)))
    if benchmark.stats is not None and benchmark.stats.stats.data:
        benchmark.extra_info["models_epochs_per_s"] = k / benchmark.stats.stats.median
