"""Co-occurrence graph: oracles (scipy BᵀB, a plain-Python pair counter), invariance to
threads and chunking, shards, bad input, Ctrl-C and GIL release."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import defaultdict
from fractions import Fraction

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tfllmer_fast
from tfllmer_fast import CooccurrenceCounter, cooccurrence, cooccurrence_from_shards
from tfllmer_fast.data.sequences import Sequences

WEIGHTINGS = ["count", "inverse_distance", "binary"]


# ---------------------------------------------------------------------------------------
# oracles


def python_cooccurrence(seqs, n_items, window=None, weighting="count", max_history=None):
    """Dense float64 matrix from the definition, pair by pair (exact fractions for 1/d)."""
    sums = defaultdict(Fraction)
    for s in seqs:
        s = list(s)
        if max_history is not None:
            s = s[-max_history:]
        seen = set()
        for p in range(len(s)):
            for q in range(len(s)):
                d = abs(p - q)
                if p == q or s[p] == s[q] or (window is not None and d > window):
                    continue
                if weighting == "count":
                    sums[s[p], s[q]] += 1
                elif weighting == "inverse_distance":
                    sums[s[p], s[q]] += Fraction(1, d)
                else:
                    seen.add((s[p], s[q]))
        for key in seen:
            sums[key] += 1
    dense = np.zeros((n_items, n_items), dtype=np.float64)
    for (i, j), v in sums.items():
        dense[i, j] = float(v)
    return dense


def finish_oracle(dense32, min_count=1.0, top_k=None):
    """min_count then symmetric (union) top-k on a dense float32 matrix, ties to smaller column."""
    m = np.where(dense32 >= min_count, dense32, 0).astype(np.float32)
    if top_k is None:
        return m
    keep = np.zeros(m.shape, dtype=bool)
    for i in range(m.shape[0]):
        cols = np.flatnonzero(m[i])
        order = sorted(cols, key=lambda j: (-m[i, j], j))[:top_k]
        keep[i, order] = True
    return np.where(keep | keep.T, m, 0).astype(np.float32)


def user_item(seqs: Sequences, binary=False):
    rows = np.repeat(np.arange(seqs.n_users), seqs.lengths)
    B = sp.csr_array((np.ones(seqs.n_interactions), (rows, seqs.items)), shape=(seqs.n_users, seqs.n_items))
    B.sum_duplicates()
    if binary:
        B.data[:] = 1
    return B


def scipy_oracle(seqs: Sequences, binary=False):
    B = user_item(seqs, binary)
    C = (B.T @ B).tocsr()
    C.setdiag(0)
    C.eliminate_zeros()
    C.sort_indices()
    return C


def assert_canonical_symmetric(A, n_items):
    assert isinstance(A, sp.csr_array)
    assert A.shape == (n_items, n_items)
    assert A.dtype == np.float32
    assert A.indptr.dtype == A.indices.dtype
    assert A.indptr.dtype == np.int64  # the documented default index_dtype
    assert A.has_sorted_indices
    for i in range(n_items):
        row = A.indices[A.indptr[i] : A.indptr[i + 1]]
        assert np.all(np.diff(row) > 0), "indices not strictly increasing"
        assert i not in row, "diagonal entry"
    assert np.all(A.data > 0)
    assert (abs(A - A.T)).nnz == 0


def assert_same(A, B):
    """Bitwise equality of two csr_arrays."""
    assert A.shape == B.shape
    np.testing.assert_array_equal(A.indptr, B.indptr)
    np.testing.assert_array_equal(A.indices, B.indices)
    assert A.data.dtype == B.data.dtype
    assert A.data.tobytes() == B.data.tobytes()


def random_sequences(rng, n_users, n_items, mean_len, zipf=1.0):
    lengths = rng.geometric(1.0 / mean_len, size=n_users)
    lengths[rng.random(n_users) < 0.05] = 0  # some empty users
    p = 1.0 / np.arange(1, n_items + 1) ** zipf
    items = rng.choice(n_items, size=int(lengths.sum()), p=p / p.sum())
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    return Sequences(offsets, items, n_items)


@pytest.fixture
def always_parallel():
    """Let even tiny jobs use every thread asked for (normally they run on one)."""
    old = tfllmer_fast._core._cooccurrence_tuning(min_parallel_work=0)
    yield
    tfllmer_fast._core._cooccurrence_tuning(**old)


@pytest.fixture
def wide_sums():
    """Force the 64-bit chunk sums (normally used only for chunks with >= 4e9 pairs)."""
    old = tfllmer_fast._core._cooccurrence_tuning(narrow_max_pairs=0)
    yield
    tfllmer_fast._core._cooccurrence_tuning(**old)


@pytest.fixture(scope="module")
def medium():
    return random_sequences(np.random.default_rng(7), 3000, 400, 12)


# ---------------------------------------------------------------------------------------
# oracles


def test_readme_example():
    A = cooccurrence([[0, 1, 2], [1, 0]])
    np.testing.assert_array_equal(A.toarray(), [[0, 2, 1], [2, 0, 1], [1, 1, 0]])


@pytest.mark.parametrize("weighting", ["count", "binary"])
def test_whole_history_equals_scipy(medium, weighting):
    A = cooccurrence(medium, weighting=weighting)
    C = scipy_oracle(medium, binary=weighting == "binary")
    assert_canonical_symmetric(A, medium.n_items)
    np.testing.assert_array_equal(A.indptr, C.indptr)
    np.testing.assert_array_equal(A.indices, C.indices)
    np.testing.assert_array_equal(A.data, C.data.astype(np.float32))


@pytest.mark.parametrize("weighting", WEIGHTINGS)
@pytest.mark.parametrize("window", [None, 1, 3])
@pytest.mark.parametrize("max_history", [None, 4])
def test_matches_python_counter(weighting, window, max_history):
    seqs = random_sequences(np.random.default_rng(1), 60, 25, 7)
    A = cooccurrence(seqs, window=window, weighting=weighting, max_history=max_history, min_count=0)
    expected = python_cooccurrence(seqs.to_lists(), 25, window, weighting, max_history)
    assert_canonical_symmetric(A, 25)
    np.testing.assert_allclose(A.toarray(), expected.astype(np.float32), rtol=1e-6)
    np.testing.assert_array_equal(A.toarray() != 0, expected != 0)


def test_repeats_count_as_bt_b_with_counts():
    # user 0 has item 0 twice: count(0, 1) = 2 * 1 pairs, binary = 1
    seqs = [[0, 1, 0], [2, 2]]
    A = cooccurrence(seqs, n_items=3).toarray()
    np.testing.assert_array_equal(A, [[0, 2, 0], [2, 0, 0], [0, 0, 0]])
    A = cooccurrence(seqs, n_items=3, weighting="binary").toarray()
    np.testing.assert_array_equal(A, [[0, 1, 0], [1, 0, 0], [0, 0, 0]])
    A = cooccurrence(seqs, n_items=3, weighting="inverse_distance", min_count=0).toarray()
    np.testing.assert_allclose(A, [[0, 2, 0], [2, 0, 0], [0, 0, 0]])  # distances 1 and 1


def test_inverse_distance_values():
    A = cooccurrence([[0, 1, 2, 3]], weighting="inverse_distance", min_count=0).toarray()
    np.testing.assert_allclose(A[0], [0, 1, 1 / 2, 1 / 3], rtol=1e-7)
    assert A[0, 3] == np.float32(1 / 3)


def test_max_history_keeps_most_recent():
    A = cooccurrence([[0, 1, 2, 3]], max_history=2).toarray()
    expected = np.zeros((4, 4), np.float32)
    expected[2, 3] = expected[3, 2] = 1
    np.testing.assert_array_equal(A, expected)


def test_window_limits_distance():
    A = cooccurrence([[0, 1, 2, 3]], window=1).toarray()
    np.testing.assert_array_equal(A, [[0, 1, 0, 0], [1, 0, 1, 0], [0, 1, 0, 1], [0, 0, 1, 0]])


@pytest.mark.parametrize("weighting", WEIGHTINGS)
def test_min_count_and_top_k_match_oracle(medium, weighting):
    full = cooccurrence(medium, weighting=weighting, window=4, min_count=0)
    dense = full.toarray()
    for min_count, top_k in [(2, None), (0, 3), (1.5, 5), (3, 1)]:
        A = cooccurrence(medium, weighting=weighting, window=4, min_count=min_count, top_k=top_k)
        assert_canonical_symmetric(A, medium.n_items)
        np.testing.assert_array_equal(A.toarray(), finish_oracle(dense, min_count, top_k))


def test_top_k_ties_go_to_smaller_column():
    # row 0 has neighbours 1, 2, 3 all with weight 1; top-1 of row 0 keeps column 1 (and rows
    # 2 and 3 keep their own top-1, column 0, so those edges survive through the union).
    A = cooccurrence([[0, 1], [0, 2], [0, 3], [4, 1], [4, 1], [2, 3], [2, 3]], top_k=1).toarray()
    expected = finish_oracle(cooccurrence([[0, 1], [0, 2], [0, 3], [4, 1], [4, 1], [2, 3], [2, 3]]).toarray(), 1, 1)
    np.testing.assert_array_equal(A, expected)
    assert A[0, 1] == 1 and A[1, 4] == 2 and A[2, 3] == 2


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    seqs=st.lists(st.lists(st.integers(0, 7), max_size=9), max_size=8),
    weighting=st.sampled_from(WEIGHTINGS),
    window=st.one_of(st.none(), st.integers(1, 4)),
    max_history=st.one_of(st.none(), st.integers(1, 6)),
    top_k=st.one_of(st.none(), st.integers(1, 3)),
    min_count=st.sampled_from([0, 1, 2, 0.75]),
    n_threads=st.integers(1, 3),
)
def test_hypothesis_against_python_counter(
    always_parallel, seqs, weighting, window, max_history, top_k, min_count, n_threads
):
    A = cooccurrence(
        seqs,
        n_items=8,
        window=window,
        weighting=weighting,
        max_history=max_history,
        min_count=min_count,
        top_k=top_k,
        n_threads=n_threads,
    )
    assert_canonical_symmetric(A, 8)
    exact = python_cooccurrence(seqs, 8, window, weighting, max_history).astype(np.float32)
    unfinished = cooccurrence(
        seqs, n_items=8, window=window, weighting=weighting, max_history=max_history, min_count=0, n_threads=n_threads
    )
    np.testing.assert_allclose(unfinished.toarray(), exact, rtol=1e-6)
    np.testing.assert_array_equal(A.toarray(), finish_oracle(unfinished.toarray(), min_count, top_k))


# ---------------------------------------------------------------------------------------
# determinism: threads and chunking


@pytest.mark.parametrize("weighting", WEIGHTINGS)
@pytest.mark.parametrize("window", [None, 3])
def test_thread_count_invariance(medium, weighting, window, always_parallel):
    results = [cooccurrence(medium, weighting=weighting, window=window, min_count=0, n_threads=t) for t in (1, 2, 3)]
    for A in results[1:]:
        assert_same(results[0], A)


@pytest.mark.parametrize("weighting", WEIGHTINGS)
@pytest.mark.parametrize("window,max_history", [(None, None), (2, None), (None, 5)])
def test_chunking_invariance(medium, weighting, window, max_history, always_parallel):
    kw = dict(window=window, weighting=weighting, max_history=max_history)
    whole = cooccurrence(medium, min_count=0, **kw)
    rng = np.random.default_rng(3)
    for n_threads in (1, 3):
        cuts = np.sort(rng.choice(np.arange(1, medium.n_users), size=7, replace=False))
        bounds = np.concatenate([[0], cuts, [medium.n_users]])
        counter = CooccurrenceCounter(medium.n_items, n_threads=n_threads, **kw)
        order = rng.permutation(bounds.size - 1)  # the order of chunks does not matter either
        for k in order:
            a, b = bounds[k], bounds[k + 1]
            counter.update(
                medium.offsets[a : b + 1] - medium.offsets[a], medium.items[medium.offsets[a] : medium.offsets[b]]
            )
        assert counter.n_interactions_seen == medium.n_interactions
        assert counter.n_users_seen == medium.n_users
        assert counter.nnz == whole.nnz
        assert_same(counter.result(min_count=0), whole)
        assert_same(counter.result(min_count=2, top_k=3), cooccurrence(medium, min_count=2, top_k=3, **kw))


def test_int64_indices_beyond_the_int32_limit(medium):
    small = cooccurrence(medium, window=2, index_dtype=np.int32)
    old = tfllmer_fast._core._cooccurrence_tuning(int32_max_nnz=100)
    try:
        big = cooccurrence(medium, window=2)
        # Past the (lowered) int32 limit the kernel itself returns int64 indices: int32 is refused.
        with pytest.raises(ValueError, match="too many for index_dtype=int32"):
            cooccurrence(medium, window=2, index_dtype=np.int32)
    finally:
        tfllmer_fast._core._cooccurrence_tuning(**old)
    assert small.indptr.dtype == np.int32 and small.indices.dtype == np.int32
    assert big.indptr.dtype == np.int64 and big.indices.dtype == np.int64
    assert (small != big).nnz == 0
    np.testing.assert_array_equal(small.indices, big.indices)


def test_index_dtype_default_int64_and_bad_value(medium):
    A = cooccurrence(medium, window=2)
    assert A.indptr.dtype == np.int64 and A.indices.dtype == np.int64
    with pytest.raises(ValueError, match="index_dtype"):
        cooccurrence(medium, window=2, index_dtype=np.float32)


@pytest.mark.parametrize("weighting", ["count", "binary"])
@pytest.mark.parametrize("window", [None, 3])
def test_64bit_chunk_sums_give_the_same_graph(medium, weighting, window, wide_sums, always_parallel):
    seqs = [s * 2 for s in medium.to_lists()[:500]]  # repeated items: multiplicities > 1
    expected = python_cooccurrence(seqs[:40], medium.n_items, window, weighting)
    A = cooccurrence(seqs[:40], n_items=medium.n_items, window=window, weighting=weighting, n_threads=2)
    np.testing.assert_array_equal(A.toarray(), expected.astype(np.float32))
    counter = CooccurrenceCounter(medium.n_items, window=window, weighting=weighting, n_threads=2)
    counter.update(seqs[:250]).update(seqs[250:])
    assert_same(counter.result(), cooccurrence(seqs, n_items=medium.n_items, window=window, weighting=weighting))


def test_counter_accepts_sequences_and_lists():
    counter = CooccurrenceCounter(4)
    counter.update(Sequences.from_lists([[0, 1]], n_items=2)).update([[2, 3, 1]])
    counter.update(np.array([0, 2]), np.array([3, 0], dtype=np.int64))
    expected = cooccurrence([[0, 1], [2, 3, 1], [3, 0]], n_items=4)
    assert_same(counter.result(), expected)
    assert "n_interactions_seen=7" in repr(counter)


def test_empty_counter_gives_zero_graph():
    A = CooccurrenceCounter(5).result()
    assert A.shape == (5, 5) and A.nnz == 0 and A.indptr.dtype == np.int64


# ---------------------------------------------------------------------------------------
# real data


def _load_beauty(data_dir):
    seqs = []
    with open(data_dir / "beauty" / "sequences.txt") as f:
        for line in f:
            ids = [int(x) - 1 for x in line.split()[1:]]  # 1-based file ids -> 0-based
            seqs.append(ids)
    return Sequences.from_lists(seqs)


def test_beauty_matches_scipy_and_python_counter(data_dir):
    seqs = _load_beauty(data_dir)
    assert seqs.n_items == 12101 and seqs.n_interactions == 198502
    for weighting in ("count", "binary"):
        A = cooccurrence(seqs, weighting=weighting)
        C = scipy_oracle(seqs, binary=weighting == "binary")
        np.testing.assert_array_equal(A.indptr, C.indptr)
        np.testing.assert_array_equal(A.indices, C.indices)
        np.testing.assert_array_equal(A.data, C.data.astype(np.float32))
    # windowed, truncated inverse distance against the plain-Python counter, as sparse dicts
    A = cooccurrence(seqs, window=3, max_history=20, weighting="inverse_distance", min_count=0)
    sums = defaultdict(float)
    for s in seqs.to_lists():
        s = s[-20:]
        for p in range(len(s)):
            for q in range(max(0, p - 3), min(len(s), p + 4)):
                if p != q and s[p] != s[q]:
                    sums[s[p], s[q]] += 1.0 / abs(p - q)
    coo = A.tocoo()
    got = dict(zip(zip(coo.row.tolist(), coo.col.tolist()), coo.data.tolist()))
    assert got.keys() == sums.keys()
    for key, v in sums.items():
        assert got[key] == pytest.approx(v, rel=1e-6)


# ---------------------------------------------------------------------------------------
# shards


def _write_shards(tmp_path, seqs: Sequences, n_shards=3):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    bounds = np.linspace(0, seqs.n_users, n_shards + 1).astype(int)
    paths = []
    for k in range(n_shards):
        a, b = bounds[k], bounds[k + 1]
        off = seqs.offsets[a : b + 1] - seqs.offsets[a]
        items = seqs.items[seqs.offsets[a] : seqs.offsets[b]]
        if k == 0:
            path = tmp_path / "shard0.npz"
            np.savez(path, offsets=off, items=items)
        elif k == 1:
            path = tmp_path / "shard1"
            np.save(f"{path}.offsets.npy", off)
            np.save(f"{path}.items.npy", items.astype(np.int64))
        else:
            path = tmp_path / "shard2.parquet"
            users = np.repeat(np.arange(a, b), np.diff(off))
            times = np.arange(users.size) * 10
            table = pa.table({"user": users, "item": items, "time": times})
            pq.write_table(table, path, row_group_size=97)  # users straddle row groups
        paths.append(path)
    return paths


@pytest.mark.parametrize("max_interactions", [50, 10_000_000])
def test_shards_equal_one_call(tmp_path, medium, max_interactions):
    paths = _write_shards(tmp_path, medium)
    seen = []
    for weighting in ("count", "binary"):
        A = cooccurrence_from_shards(
            paths,
            medium.n_items,
            weighting=weighting,
            window=5,
            n_threads=2,
            max_interactions=max_interactions,
            progress=seen.append,
        )
        assert_same(A, cooccurrence(medium, weighting=weighting, window=5))
    assert seen[-1].n_interactions_seen == medium.n_interactions


def test_shard_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        cooccurrence_from_shards([tmp_path / "missing"], 5)
    np.savez(tmp_path / "bad.npz", offsets=np.array([0, 3]), items=np.array([1, 2]))
    with pytest.raises(ValueError, match="offsets"):
        cooccurrence_from_shards(tmp_path / "bad.npz", 5)
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"user": [0, 0], "item": [1, 2], "time": [5, 3]}), tmp_path / "t.parquet")
    with pytest.raises(ValueError, match="chronological"):
        cooccurrence_from_shards(tmp_path / "t.parquet", 5)
    pq.write_table(pa.table({"u": [0], "item": [1]}), tmp_path / "c.parquet")
    with pytest.raises(ValueError, match="columns"):
        cooccurrence_from_shards(tmp_path / "c.parquet", 5)


# ---------------------------------------------------------------------------------------
# bad input


OFF = np.array([0, 2, 3])
ITEMS = np.array([0, 1, 2], dtype=np.int32)


@pytest.mark.parametrize(
    "args, kwargs, exc, match",
    [
        ((OFF, np.array([0, -1, 2])), {}, ValueError, ">= 0"),
        ((OFF, ITEMS, 2), {}, ValueError, "< n_items"),
        ((np.array([1, 2, 3]), ITEMS), {}, ValueError, r"offsets\[0\]"),
        ((np.array([0, 2, 1, 3]), ITEMS), {}, ValueError, "non-decreasing"),
        ((np.array([0, 2, 4]), ITEMS), {}, ValueError, r"offsets\[-1\]"),
        ((np.array([], dtype=np.int64), ITEMS[:0]), {}, ValueError, "n_users"),
        ((OFF.astype(float), ITEMS), {}, TypeError, "integers"),
        ((OFF, ITEMS.astype(float)), {}, TypeError, "integers"),
        ((OFF, np.array(["a", "b", "c"])), {}, TypeError, "integers"),
        ((OFF, np.array([0, 1, 2], dtype=object)), {}, TypeError, "integers"),
        ((OFF, np.array([True, False, True])), {}, TypeError, "integers"),
        ((OFF.reshape(1, -1), ITEMS), {}, ValueError, "1-D"),
        ((OFF, ITEMS.reshape(3, 1)), {}, ValueError, "1-D"),
        ((OFF, ITEMS), {"window": 0}, ValueError, "window"),
        ((OFF, ITEMS), {"window": 1.5}, TypeError, "window"),
        ((OFF, ITEMS), {"window": True}, TypeError, "window"),
        ((OFF, ITEMS), {"max_history": 0}, ValueError, "max_history"),
        ((OFF, ITEMS), {"min_count": -1}, ValueError, "min_count"),
        ((OFF, ITEMS), {"min_count": float("nan")}, ValueError, "min_count"),
        ((OFF, ITEMS), {"min_count": "1"}, TypeError, "min_count"),
        ((OFF, ITEMS), {"top_k": 0}, ValueError, "top_k"),
        ((OFF, ITEMS), {"weighting": "tfidf"}, ValueError, "weighting"),
        ((OFF, ITEMS), {"weighting": None}, TypeError, "weighting"),
        ((OFF, ITEMS), {"n_threads": 0}, ValueError, "n_threads"),
        ((OFF, ITEMS, -1), {}, ValueError, "n_items"),
        ((OFF, ITEMS, 2.0), {}, TypeError, "n_items"),
        ((OFF, ITEMS, 2**31), {}, ValueError, "n_items"),
        ((np.array([0]), np.zeros(0, np.int32)), {}, ValueError, "n_items"),
        (([],), {}, ValueError, "n_items"),
        ((OFF,), {}, TypeError, "items is required"),
        ((sp.csr_array(np.eye(3)),), {}, TypeError, "items is required"),
        ((OFF, sp.csr_array(np.eye(3))), {}, TypeError, "sparse"),
        ((5,), {}, TypeError, "expected"),
        (([[0, 1.5]],), {}, TypeError, "integer"),
        (([[0, -1]],), {}, ValueError, ">= 0"),
        (([[0, 5]], None, 3), {}, ValueError, "n_items"),
        (([[0, [1]]],), {}, (ValueError, TypeError), None),
        ((Sequences.from_lists([[0, 3]]), ITEMS), {}, TypeError, "not both"),
        ((Sequences.from_lists([[0, 3]]), None, 2), {}, ValueError, "smaller"),
    ],
)
def test_bad_input(args, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        cooccurrence(*args, **kwargs)


def test_bad_counter_arguments():
    with pytest.raises(ValueError, match="n_items"):
        CooccurrenceCounter(-1)
    with pytest.raises(ValueError, match="window"):
        CooccurrenceCounter(3, window=0)
    with pytest.raises(ValueError, match="weighting"):
        CooccurrenceCounter(3, weighting="x")
    counter = CooccurrenceCounter(3)
    with pytest.raises(ValueError, match="< n_items"):
        counter.update([[0, 3]])
    with pytest.raises(ValueError, match="min_count"):
        counter.result(min_count=-2)
    with pytest.raises(ValueError, match="top_k"):
        counter.result(top_k=0)
    assert counter.n_interactions_seen == 0


def test_core_rechecks_its_invariants():
    core = tfllmer_fast._core
    with pytest.raises(ValueError, match="outside"):
        core.cooccurrence(np.array([0, 2]), np.array([0, 9], np.int32), 3, 0, 0, "count", 1.0, 0, 1)
    with pytest.raises(ValueError, match="non-decreasing"):
        core.cooccurrence(np.array([0, 2, 1, 2]), np.array([0, 1], np.int32), 3, 0, 0, "count", 1.0, 0, 1)
    with pytest.raises(ValueError, match="weighting"):
        core.cooccurrence(np.array([0, 2]), np.array([0, 1], np.int32), 3, 0, 0, "nope", 1.0, 0, 1)
    with pytest.raises(TypeError):
        core.cooccurrence(np.array([0, 2.0]), np.array([0, 1], np.int32), 3, 0, 0, "count", 1.0, 0, 1)


def test_empty_and_degenerate_inputs():
    A = cooccurrence(np.array([0]), np.zeros(0, np.int32), n_items=4)
    assert A.shape == (4, 4) and A.nnz == 0
    assert cooccurrence([[], []], n_items=3).nnz == 0
    assert cooccurrence([[1]], n_items=3).nnz == 0
    assert cooccurrence([[2, 2, 2]]).nnz == 0  # only the diagonal
    A = cooccurrence(np.array([0, 2], dtype=np.uint8), np.array([0, 1], dtype=np.int64))
    assert A.toarray().tolist() == [[0, 1], [1, 0]]


# ---------------------------------------------------------------------------------------
# Ctrl-C and the GIL


def _heavy_input(n_users=1500, length=3000, n_items=2000, seed=0):
    # sum of squared lengths ~ 1.35e10 updates: many seconds on any machine
    rng = np.random.default_rng(seed)
    items = rng.integers(0, n_items, size=n_users * length, dtype=np.int32)
    offsets = np.arange(n_users + 1, dtype=np.int64) * length
    return offsets, items, n_items


@pytest.mark.skipif(os.name != "posix", reason="needs POSIX signals")
@pytest.mark.parametrize("streaming", [False, True])
def test_ctrl_c_interrupts_promptly(streaming, sigint_raises):
    offsets, items, n_items = _heavy_input()
    timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))
    start = time.perf_counter()
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            if streaming:
                CooccurrenceCounter(n_items, n_threads=2).update(offsets, items)
            else:
                cooccurrence(offsets, items, n_items, n_threads=2)
    finally:
        timer.cancel()
    assert time.perf_counter() - start < 2.5


def test_gil_is_released():
    offsets, items, n_items = _heavy_input(n_users=60, length=2000, n_items=2000)
    progress = [0]
    stop = threading.Event()

    def spin():
        while not stop.is_set():
            progress[0] += 1

    t = threading.Thread(target=spin)
    t.start()
    try:
        time.sleep(0.05)
        before = progress[0]
        start = time.perf_counter()
        cooccurrence(offsets, items, n_items, n_threads=1)
        elapsed = time.perf_counter() - start
        during = progress[0] - before
    finally:
        stop.set()
        t.join()
    assert elapsed > 0.05, "count too short to tell"
    assert during > 1000, f"the other thread made no progress during a {elapsed:.2f} s count"
