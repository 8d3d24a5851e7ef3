"""tfllmer_fast.dask on a 2-worker LocalCluster (processes): bitwise equality with the
single-process graph, Rec-PCA's M, bad input and faults (killed workers, memory plans)."""

import logging
import os
import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

dask = pytest.importorskip("dask")
distributed = pytest.importorskip("distributed")
pd = pytest.importorskip("pandas")

import tfllmer_fast.dask as tdask  # noqa: E402
from tfllmer_fast import _core  # noqa: E402
from tfllmer_fast.graph import RecPCA, cooccurrence  # noqa: E402
from tfllmer_fast.graph.operators import check_graph, csr_parts  # noqa: E402
from tfllmer_fast.graph.partial import CoocPartial  # noqa: E402
from tfllmer_fast.graph.recpca_problem import gram_problem  # noqa: E402

#: How long a killed worker's replacement may take to start (slow on a loaded 2-core machine).
RESTART_S = 240


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=":0",
        silence_logs=logging.CRITICAL,
    )
    c = distributed.Client(cluster)
    yield c
    c.close()
    cluster.close()


def random_users(rng, n_users, n_items, max_len=15):
    lens = rng.integers(0, max_len, n_users)
    offsets = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
    # Zipf-like popularity: small ids are popular, as in real logs.
    items = np.minimum((rng.pareto(1.2, offsets[-1]) * 3).astype(np.int64), n_items - 1).astype(np.int32)
    return offsets, items


def split_users(offsets, items, cuts):
    return [(offsets[a : b + 1] - offsets[a], items[offsets[a] : offsets[b]]) for a, b in zip(cuts[:-1], cuts[1:])]


def assert_bitwise(a: sp.csr_array, b: sp.csr_array):
    assert a.shape == b.shape
    assert a.indptr.dtype == b.indptr.dtype and a.indices.dtype == b.indices.dtype and a.data.dtype == b.data.dtype
    np.testing.assert_array_equal(a.indptr, b.indptr)
    np.testing.assert_array_equal(a.indices, b.indices)
    assert a.data.tobytes() == b.data.tobytes()


# ---------------------------------------------------------------------------------------
# partials without a cluster


def test_partials_of_different_options_are_refused():
    o, i = random_users(np.random.default_rng(0), 20, 30)
    a = CoocPartial.count((o, i), 30, window=2)
    with pytest.raises(ValueError, match="different options"):
        CoocPartial.merge([a, CoocPartial.count((o, i), 31, window=2)])
    with pytest.raises(ValueError, match="different options"):
        CoocPartial.merge([a, CoocPartial.count((o, i), 30, window=3)])
    with pytest.raises(ValueError, match="different options"):
        CoocPartial.merge([a, CoocPartial.count((o, i), 30, window=2, weighting="binary")])
    with pytest.raises(ValueError, match="different rows"):
        CoocPartial.merge([a, a.rows(0, 30).mirror_split([0, 30])[0]])


def test_partial_pickles_checked_and_read_only():
    import pickle

    o, i = random_users(np.random.default_rng(1), 30, 40)
    p = CoocPartial.count((o, i), 40, weighting="inverse_distance")
    q = pickle.loads(pickle.dumps(p))
    assert not q.vals.flags.writeable and q.options == p.options
    assert_bitwise(q.finish(0), cooccurrence(o, i, 40, weighting="inverse_distance", min_count=0))


# ---------------------------------------------------------------------------------------
# bitwise equality on the cluster


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    seed=st.integers(0, 2**16),
    weighting=st.sampled_from(["count", "inverse_distance", "binary"]),
    window=st.sampled_from([None, 1, 3]),
    max_history=st.sampled_from([None, 5]),
    min_count=st.sampled_from([0, 1, 2]),
    top_k=st.sampled_from([None, 1, 4]),
    n_shards=st.integers(1, 4),
    reduce=st.sampled_from(["tree", "shuffle", "auto"]),
    n_row_blocks=st.sampled_from([None, 1, 2, 5]),
)
def test_bitwise_equal_to_single_process(
    client, seed, weighting, window, max_history, min_count, top_k, n_shards, reduce, n_row_blocks
):
    rng = np.random.default_rng(seed)
    n_items = int(rng.integers(5, 120))
    offsets, items = random_users(rng, int(rng.integers(1, 60)), n_items)
    n_users = offsets.size - 1
    cuts = np.unique(np.concatenate([[0, n_users], rng.integers(0, n_users + 1, n_shards - 1)]))
    shards = split_users(offsets, items, cuts)
    if reduce == "tree":
        n_row_blocks = None
    opts = dict(window=window, weighting=weighting, max_history=max_history, min_count=min_count, top_k=top_k)
    got = tdask.cooccurrence(shards, n_items, reduce=reduce, n_row_blocks=n_row_blocks, client=client, **opts)
    assert_bitwise(got, cooccurrence(offsets, items, n_items, **opts))


def test_shard_files_and_blocks(client, tmp_path):
    rng = np.random.default_rng(3)
    offsets, items = random_users(rng, 90, 70)
    s = split_users(offsets, items, [0, 30, 60, 90])
    np.savez(tmp_path / "a.npz", offsets=s[0][0], items=s[0][1])
    np.save(tmp_path / "b.offsets.npy", s[1][0])
    np.save(tmp_path / "b.items.npy", s[1][1])
    users = np.repeat(np.arange(60, 90), np.diff(s[2][0]))
    pd.DataFrame({"user": users, "item": s[2][1], "time": np.arange(users.size)}).to_parquet(tmp_path / "c.parquet")
    paths = [tmp_path / "a.npz", str(tmp_path / "b"), tmp_path / "c.parquet"]
    ref = cooccurrence(offsets, items, 70, window=2, top_k=3)
    blocks = tdask.cooccurrence(
        paths, 70, window=2, top_k=3, reduce="shuffle", n_row_blocks=4, client=client, return_blocks=True
    )
    assert blocks.n_blocks == len(blocks.bounds) - 1 >= 2
    assert_bitwise(blocks.to_csr(), ref)
    assert blocks.nnz() == ref.nnz


def test_blocks_are_balanced_by_entries():
    # Popular items (small ids) hold most entries: equal id ranges would be lopsided.
    hist = np.array([1000, 500, 100, 10, 10, 10, 10, 10] + [1] * 56)
    bounds = tdask.plan_row_blocks(hist, 10, 640, 4)
    assert bounds[0] == 0 and bounds[-1] == 640
    assert bounds[1] <= 10  # the first block is the hub bucket alone


def test_dask_dataframe_input_and_split_users(client):
    dd = pytest.importorskip("dask.dataframe")
    rng = np.random.default_rng(4)
    offsets, items = random_users(rng, 50, 40)
    users = np.repeat(np.arange(50), np.diff(offsets))
    times = np.arange(users.size)
    df = pd.DataFrame({"user": users, "item": items, "time": times}).sample(frac=1, random_state=0)
    ddf = dd.from_pandas(df.set_index("user", drop=False).rename_axis(None).sort_index(), npartitions=3)
    got = tdask.cooccurrence(ddf, 40, window=3, client=client)
    assert_bitwise(got, cooccurrence(offsets, items, 40, window=3))
    # Rows in random order: every user's rows are spread over the partitions.
    shuffled = pd.DataFrame({"user": users, "item": items, "time": times}).sample(frac=1, random_state=1)
    split = dd.from_pandas(shuffled, npartitions=4, sort=False)
    with pytest.raises(ValueError, match="appears in more than one shard"):
        tdask.cooccurrence(split, 40, window=3, client=client)


@pytest.mark.parametrize("weighting", ["count", "inverse_distance", "binary"])
@pytest.mark.parametrize("reduce,n_row_blocks", [("tree", None), ("shuffle", 3)])
def test_every_weighting_and_reduce(client, weighting, reduce, n_row_blocks):
    rng = np.random.default_rng(11)
    offsets, items = random_users(rng, 80, 60)
    shards = split_users(offsets, items, [0, 20, 50, 80])
    opts = dict(window=2, weighting=weighting, min_count=0, top_k=3)
    got = tdask.cooccurrence(shards, 60, reduce=reduce, n_row_blocks=n_row_blocks, client=client, **opts)
    assert_bitwise(got, cooccurrence(offsets, items, 60, **opts))


# ---------------------------------------------------------------------------------------
# bad input and faults


@pytest.mark.parametrize("bad", [40, -1])
def test_bad_ids_fail_fast_naming_the_shard(client, bad):
    rng = np.random.default_rng(5)
    shards = split_users(*random_users(rng, 30, 40), [0, 10, 20, 30])
    off, it = shards[1]
    it = it.copy()
    if it.size == 0:
        off, it = np.array([0, 1]), np.array([0], np.int32)
    it[0] = bad
    shards[1] = (off, it)
    with pytest.raises(ValueError, match="shard 1"):
        tdask.cooccurrence(shards, 40, client=client)


def test_input_never_changed_by_tasks(client):
    rng = np.random.default_rng(6)
    offsets, items = random_users(rng, 40, 30)
    keep = (offsets.copy(), items.copy())
    [fut] = client.scatter([(offsets, items)], hash=False)  # one cached input, used by both calls
    a = tdask.cooccurrence([fut], 30, window=2, client=client)
    b = tdask.cooccurrence([fut, fut], 30, weighting="binary", reduce="shuffle", n_row_blocks=3, client=client)
    back = fut.result()
    np.testing.assert_array_equal(back[0], keep[0])
    np.testing.assert_array_equal(back[1], keep[1])
    assert_bitwise(a, cooccurrence(offsets, items, 30, window=2))
    both = (np.concatenate([offsets, offsets[1:] + offsets[-1]]), np.concatenate([items, items]))
    assert_bitwise(b, cooccurrence(*both, 30, weighting="binary"))


def _shard_files(tmp_path, n_shards=4, n_items=60, seed=7):
    rng = np.random.default_rng(seed)
    offsets, items = random_users(rng, 120, n_items)
    paths = []
    for k, (o, i) in enumerate(split_users(offsets, items, np.linspace(0, 120, n_shards + 1).astype(int))):
        np.savez(tmp_path / f"s{k}.npz", offsets=o, items=i)
        paths.append(tmp_path / f"s{k}.npz")
    return paths, offsets, items, n_items


@pytest.mark.parametrize("stage,reduce", [("count", "tree"), ("count", "shuffle"), ("shuffle", "shuffle")])
def test_worker_killed_gives_identical_graph(client, tmp_path, stage, reduce):
    paths, offsets, items, n_items = _shard_files(tmp_path)
    fault_dir = tmp_path / "fault"
    fault_dir.mkdir()
    got = tdask.cooccurrence(
        paths,
        n_items,
        window=3,
        weighting="inverse_distance",
        top_k=4,
        reduce=reduce,
        n_row_blocks=3 if reduce == "shuffle" else None,
        client=client,
        _fault={stage: str(fault_dir)},
    )
    assert (fault_dir / f"{stage}.killed").exists()  # a worker did die
    assert_bitwise(got, cooccurrence(offsets, items, n_items, window=3, weighting="inverse_distance", top_k=4))
    client.wait_for_workers(2, timeout=RESTART_S)


@pytest.mark.parametrize("stage,reduce", [("count", "tree"), ("count", "shuffle"), ("shuffle", "shuffle")])
def test_worker_killed_with_in_memory_shards_gives_identical_graph(client, tmp_path, stage, reduce):
    # The scattered arrays die with their worker; the client still holds them and sends them again.
    _, offsets, items, n_items = _shard_files(tmp_path)
    shards = split_users(offsets, items, np.linspace(0, 120, 5).astype(int))
    fault_dir = tmp_path / "fault"
    fault_dir.mkdir()
    opts = dict(window=3, weighting="inverse_distance", top_k=4)
    with pytest.warns(RuntimeWarning, match="in-memory inputs .* sending them again"):
        got = tdask.cooccurrence(
            shards,
            n_items,
            reduce=reduce,
            n_row_blocks=3 if reduce == "shuffle" else None,
            client=client,
            _fault={stage: str(fault_dir)},
            **opts,
        )
    assert (fault_dir / f"{stage}.killed").exists()
    assert_bitwise(got, cooccurrence(offsets, items, n_items, **opts))
    client.wait_for_workers(2, timeout=RESTART_S)


def test_a_lost_future_passed_in_is_a_one_line_error(client, tmp_path):
    _, offsets, items, n_items = _shard_files(tmp_path)
    shards = split_users(offsets, items, [0, 60, 120])
    futures = client.scatter(shards, hash=False)  # the caller's own: Dask cannot recompute them
    fault_dir = tmp_path / "fault"
    fault_dir.mkdir()
    with pytest.raises(RuntimeError, match=r"^shard \d: the Future passed in was lost with its worker"):
        tdask.cooccurrence(futures, n_items, client=client, _fault={"count": str(fault_dir)})
    client.wait_for_workers(2, timeout=RESTART_S)


def test_recpca_gram_survives_a_worker_killed_with_in_memory_x(client, tmp_path):
    rng = np.random.default_rng(12)
    offsets, items = random_users(rng, 200, 90)
    A = cooccurrence(offsets, items, 90, window=3)
    X = rng.standard_normal((90, 10))
    ref = tdask.recpca_gram(X, A, lam=0.5, client=client)
    fault_dir = tmp_path / "fault"
    fault_dir.mkdir()
    with pytest.warns(RuntimeWarning, match="while computing Rec-PCA's M"):
        got = tdask.recpca_gram(X, A, lam=0.5, client=client, _fault={"gram": str(fault_dir)})
    assert (fault_dir / "gram.killed").exists()
    assert np.linalg.norm(got["M"] - ref["M"]) <= 1e-12 * np.linalg.norm(ref["M"])
    client.wait_for_workers(2, timeout=RESTART_S)


def test_workers_dying_on_every_attempt_give_a_one_line_error(client, tmp_path):
    _, offsets, items, n_items = _shard_files(tmp_path)
    shards = split_users(offsets, items, [0, 60, 120])
    fault_dir = tmp_path / "fault"
    fault_dir.mkdir()
    with pytest.warns(RuntimeWarning), pytest.raises(RuntimeError, match="workers kept dying .*shard files"):
        tdask.cooccurrence(shards, n_items, client=client, _fault={"count": (str(fault_dir), 100)})
    client.wait_for_workers(2, timeout=RESTART_S)


def test_memory_plan_names_the_block_count(client):
    shards = split_users(*random_users(np.random.default_rng(8), 60, 80), [0, 30, 60])
    with pytest.raises(MemoryError, match=r"n_row_blocks >= \d+"):
        tdask.cooccurrence(shards, 80, reduce="shuffle", n_row_blocks=1, memory_limit=4096, client=client)
    with pytest.raises(MemoryError, match=r"reduce='shuffle' with n_row_blocks >= \d+"):
        tdask.cooccurrence(shards, 80, reduce="tree", memory_limit=4096, client=client)


def test_workers_dying_on_a_block_name_the_block_count(client, tmp_path):
    # A block task whose worker keeps dying (as when it runs out of memory) ends in
    # KilledWorker after Dask's allowed failures; the error says which block count to use.
    paths, _, _, n_items = _shard_files(tmp_path)  # two shards counted after the sample: pieces to merge
    fault_dir = tmp_path / "fault"
    fault_dir.mkdir()
    allowed = int(dask.config.get("distributed.scheduler.allowed-failures"))
    with pytest.raises(MemoryError, match=r"use n_row_blocks >= 4"):
        tdask.cooccurrence(
            paths,
            n_items,
            reduce="shuffle",
            n_row_blocks=2,
            client=client,
            # Both blocks' merges kill their worker; KilledWorker comes after more than
            # `allowed` counted deaths of one task, and a death the scheduler takes for an
            # expected removal is not counted: markers for twice that, and some to spare.
            _fault={"shuffle": (str(fault_dir), 4 * (allowed + 1))},
        )
    client.wait_for_workers(2, timeout=RESTART_S)


def test_argument_errors(client):
    with pytest.raises(ValueError, match="reduce"):
        tdask.cooccurrence([(np.array([0]), np.array([], np.int32))], 3, reduce="ring", client=client)
    with pytest.raises(ValueError, match="no shards"):
        tdask.cooccurrence([], 3, client=client)
    with pytest.raises(TypeError, match="shard 0"):
        tdask.cooccurrence([3.5], 3, client=client)


# ---------------------------------------------------------------------------------------
# Rec-PCA


def _single_process_m(X, A, lam, kind="normalized"):
    G = check_graph(A, X.shape[0])
    p = gram_problem(X, G, lam, kind, True, True, 1)
    M, mu = _core.recpca_gram(X, *csr_parts(G), p.t, p.s, lam, p.wa, p.wm, p.c, 1)
    return M, mu


@pytest.mark.parametrize("lam,kind", [(0.5, "normalized"), (1.3, "normalized"), (0.01, "combinatorial")])
def test_recpca_gram_matches_single_process(client, lam, kind):
    da = pytest.importorskip("dask.array")
    rng = np.random.default_rng(9)
    offsets, items = random_users(rng, 200, 150)
    A = cooccurrence(offsets, items, 150, window=3)
    X = rng.standard_normal((150, 12))
    M_ref, mu_ref = _single_process_m(X, A, lam, kind)
    out = tdask.recpca_gram(
        da.from_array(X, chunks=(37, 6)), A, lam=lam, laplacian=kind, client=client, hub_fraction=0.5
    )
    assert np.linalg.norm(out["M"] - M_ref) <= 1e-12 * np.linalg.norm(M_ref)
    np.testing.assert_allclose(out["mean"], mu_ref, rtol=1e-12, atol=1e-15)
    assert out["n_hubs"] > 0  # the popular items are replicated, not sent block by block


def test_recpca_fit_on_graph_blocks_and_memmap(client, tmp_path):
    rng = np.random.default_rng(10)
    offsets, items = random_users(rng, 300, 100)
    X = rng.standard_normal((100, 16))
    path = tmp_path / "X.f64"
    X.tofile(path)
    Xm = np.memmap(path, dtype=np.float64, mode="r", shape=X.shape)
    A = cooccurrence(offsets, items, 100, window=3)
    ref = RecPCA(4, lam=0.5, solver="gram").fit(X, graph=A)
    blocks = tdask.cooccurrence(
        split_users(offsets, items, [0, 150, 300]),
        100,
        window=3,
        reduce="shuffle",
        n_row_blocks=3,
        client=client,
        return_blocks=True,
    )
    for graph in (blocks, A):
        est = tdask.recpca_fit(Xm, graph, 4, lam=0.5, client=client)
        assert isinstance(est, RecPCA) and est.solver_ == "gram"
        np.testing.assert_allclose(est.eigenvalues_, ref.eigenvalues_, rtol=1e-10)
        np.testing.assert_allclose(est.components_, ref.components_, atol=1e-8)
        np.testing.assert_allclose(est.transform(X), ref.transform(X), atol=1e-8)


@pytest.mark.parametrize("source", ["files", "arrays"])
def test_graph_blocks_after_their_worker_died(client, tmp_path, source):
    # Blocks counted from files are recomputed; blocks of in-memory shards, once cooccurrence
    # has returned, cannot be: a one-line error says what to do. Every worker is killed, so no
    # copy of a scattered shard whose release is still on its way can survive the loss.
    paths, offsets, items, n_items = _shard_files(tmp_path)
    shards = paths if source == "files" else split_users(offsets, items, np.linspace(0, 120, 5).astype(int))
    blocks = tdask.cooccurrence(
        shards, n_items, window=3, reduce="shuffle", n_row_blocks=3, return_blocks=True, client=client
    )
    for worker in client.scheduler_info()["workers"]:
        try:
            client.run(os._exit, 1, workers=[worker])
        except (OSError, distributed.comm.CommClosedError):
            pass  # the worker's connection closes under the call
    client.wait_for_workers(2, timeout=RESTART_S)
    X = np.random.default_rng(15).standard_normal((n_items, 8))
    if source == "files":
        got = tdask.recpca_gram(X, blocks, lam=0.5, client=client)["M"]
        M_ref, _ = _single_process_m(X, cooccurrence(offsets, items, n_items, window=3), 0.5)
        assert np.linalg.norm(got - M_ref) <= 1e-12 * np.linalg.norm(M_ref)
    else:
        with pytest.raises(RuntimeError, match="^the graph's row blocks were lost with a worker"):
            tdask.recpca_gram(X, blocks, lam=0.5, client=client)
    client.wait_for_workers(2, timeout=RESTART_S)


def test_recpca_fit_with_fewer_items_than_dimensions(client):
    # M has a null space: the eigenproblem goes to the dense eigensolver, as in one process.
    rng = np.random.default_rng(14)
    offsets, items = random_users(rng, 300, 40)
    A = cooccurrence(offsets, items, 40, window=3)
    X = rng.standard_normal((40, 64))
    with pytest.warns(RuntimeWarning, match="M has rank <= 39"):
        ref = RecPCA(8, lam=1.5).fit(X, graph=A)
    with pytest.warns(RuntimeWarning, match="M has rank <= 39"):
        est = tdask.recpca_fit(X, A, 8, lam=1.5, client=client)
    assert ref.eigensolver_ == est.eigensolver_ == "dense"
    np.testing.assert_allclose(est.eigenvalues_, ref.eigenvalues_, rtol=1e-6, atol=1e-12)


def test_package_import_stays_lazy():
    code = "import sys, tfllmer_fast; assert 'dask' not in sys.modules and 'distributed' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ})
