"""Co-occurrence kernel vs scipy ``B.T @ B`` (whole history, count) on synthetic Zipf data.

Default size is small (a CI correctness run). ``TFLLMER_BENCH_FULL=1`` selects the reference
size: 1M users, about 20M interactions (geometric lengths, mean 20), 50k items with Zipf(1)
popularity over permuted ids. Run the timings with::

    TFLLMER_BENCH_FULL=1 python -m pytest benchmarks/bench_cooccurrence.py --benchmark-enable -s

``test_speedup_over_scipy`` alternates scipy and our kernel for several rounds (fair under a
noisy, shared machine), checks that the results are equal and prints the median wall-time
ratio (and the CPU times, which include every thread).
"""

from __future__ import annotations

import os
import resource
import statistics
import time

import numpy as np
import pytest

from _cooc_data import synthetic_sequences, user_item_matrix
from tfllmer_fast import cooccurrence

FULL = os.environ.get("TFLLMER_BENCH_FULL") == "1"
SIZE = (
    dict(n_users=1_000_000, n_interactions=20_000_000, n_items=50_000)
    if FULL
    else dict(n_users=20_000, n_interactions=400_000, n_items=5_000)
)
ROUNDS = 3 if FULL else 1


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def scipy_cooccurrence(B):
    """Off-diagonal of BᵀB with scipy, canonical (the baseline)."""
    C = (B.T @ B).tocsr()
    C.setdiag(0)
    C.eliminate_zeros()
    C.sort_indices()
    return C


@pytest.fixture(scope="module")
def data():
    offsets, items = synthetic_sequences(**SIZE, seed=0)
    B = user_item_matrix(offsets, items, SIZE["n_items"])
    return offsets, items, SIZE["n_items"], B


def assert_equal_graphs(A, C):
    np.testing.assert_array_equal(A.indptr, C.indptr)
    np.testing.assert_array_equal(A.indices, C.indices)
    np.testing.assert_array_equal(A.data, C.data.astype(np.float32))


@pytest.mark.parametrize("n_threads", [1, 2])
def test_bench_cooccurrence_whole_history(benchmark, data, n_threads):
    offsets, items, n_items, _ = data
    A = benchmark.pedantic(
        cooccurrence, args=(offsets, items, n_items), kwargs=dict(n_threads=n_threads), rounds=ROUNDS, iterations=1
    )
    assert A.shape == (n_items, n_items) and A.nnz > 0


@pytest.mark.parametrize("window", [5])
def test_bench_cooccurrence_window(benchmark, data, window):
    offsets, items, n_items, _ = data
    A = benchmark.pedantic(
        cooccurrence,
        args=(offsets, items, n_items),
        kwargs=dict(window=window, max_history=200, n_threads=2),
        rounds=ROUNDS,
        iterations=1,
    )
    assert A.nnz > 0


def test_speedup_over_scipy(benchmark, data):
    offsets, items, n_items, B = data
    times = {"scipy": [], "ours": []}
    cpu = {"scipy": [], "ours": []}
    results = {}

    def one_round():
        # scipy first, then ours: alternate so that load changes hit both alike
        w, c = time.perf_counter(), _cpu()
        results["scipy"] = scipy_cooccurrence(B)
        times["scipy"].append(time.perf_counter() - w)
        cpu["scipy"].append(_cpu() - c)
        w, c = time.perf_counter(), _cpu()
        results["ours"] = cooccurrence(offsets, items, n_items, n_threads=2)
        times["ours"].append(time.perf_counter() - w)
        cpu["ours"].append(_cpu() - c)

    benchmark.pedantic(one_round, rounds=ROUNDS, iterations=1)
    assert_equal_graphs(results["ours"], results["scipy"])
    ratio = statistics.median(times["scipy"]) / statistics.median(times["ours"])
    ratios = [s / o for s, o in zip(times["scipy"], times["ours"])]
    benchmark.extra_info.update(
        scipy_wall_s=times["scipy"],
        ours_wall_s=times["ours"],
        scipy_cpu_s=cpu["scipy"],
        ours_cpu_s=cpu["ours"],
        median_ratio=ratio,
        per_round_ratio=ratios,
        nnz=int(results["ours"].nnz),
        **SIZE,
    )
    print(
        f"\ncooccurrence vs scipy B.T @ B ({SIZE}, nnz {results['ours'].nnz}): "
        f"scipy wall {['%.2f' % t for t in times['scipy']]} s (cpu {['%.2f' % t for t in cpu['scipy']]}), "
        f"ours wall {['%.2f' % t for t in times['ours']]} s (cpu {['%.2f' % t for t in cpu['ours']]}, 2 threads); "
        f"median ratio {ratio:.2f}x, per round {['%.2f' % r for r in ratios]}"
    )
