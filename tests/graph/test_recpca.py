import os
import signal
import threading
import time
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.linalg import subspace_angles
from sklearn.decomposition import PCA

from tfllmer_fast import NotFittedError, RecPCA, RecPCAConvergenceError, _core, laplacian
from tfllmer_fast.graph.recpca_problem import solver_costs

# Large lam on random data gives non-positive eigenvalues on purpose (tested separately).
pytestmark = pytest.mark.filterwarnings("ignore:.*eigenvalues of M are <= 0:RuntimeWarning")


def cooccurrence_graph(seqs, n_items):
    """Whole-history co-occurrence (binary per user) with scipy: off-diagonal of B^T B.

    An oracle independent of tfllmer_fast.cooccurrence.
    """
    rows = np.repeat(np.arange(len(seqs)), [len(s) for s in seqs])
    cols = np.concatenate([np.asarray(s) for s in seqs])
    B = sp.csr_array((np.ones(cols.size), (rows, cols)), shape=(len(seqs), n_items))
    B.data[:] = 1.0  # duplicates summed by the constructor: binary per user
    A = sp.csr_array(B.T @ B)
    A.setdiag(0)
    A.eliminate_zeros()
    return A


def random_problem(n=300, D=24, density=0.03, seed=0, isolated=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    # anisotropic embeddings (a few strong directions) like LLM embeddings
    X = (rng.standard_normal((n, D)) * np.linspace(3, 0.5, D) + 1.0).astype(dtype)
    A = sp.random(n, n, density=density, random_state=seed, format="lil")
    A = (A + A.T).tolil()
    for i in range(isolated):
        A[i, :] = 0
        A[:, i] = 0
    return X, sp.csr_array(A)


def dense_M(X, A, lam, kind="normalized", normalize=True, center=True):
    X = np.asarray(X, dtype=np.float64)
    if normalize:
        X = X / np.linalg.norm(X, axis=1, keepdims=True)
    if center:
        X = X - X.mean(axis=0)
    L = laplacian(A, kind).toarray()
    return X.T @ (np.eye(X.shape[0]) - lam * L) @ X


def top_eig(M, d):
    w, V = np.linalg.eigh(M)
    return w[::-1][:d], V[:, ::-1][:, :d]


def max_angle(U, V):
    return float(np.max(subspace_angles(U, V)))


@pytest.mark.parametrize("solver", ["gram", "matrix_free"])
@pytest.mark.parametrize("normalize", [True, False])
def test_lam0_is_pca(solver, normalize):
    X, A = random_problem()
    m = RecPCA(5, lam=0.0, solver=solver, normalize=normalize).fit(X, graph=A)
    Xp = X / np.linalg.norm(X, axis=1, keepdims=True) if normalize else X
    pca = PCA(5, svd_solver="full").fit(Xp)
    assert max_angle(m.components_, pca.components_.T) < 1e-6
    np.testing.assert_allclose(m.eigenvalues_, pca.explained_variance_ * (X.shape[0] - 1), rtol=1e-8)
    np.testing.assert_allclose(m.mean_, pca.mean_, atol=1e-12)
    # up to the sign of each component, sklearn's transform
    Z = m.transform(X)
    np.testing.assert_allclose(np.abs(Z), np.abs(pca.transform(Xp)), atol=1e-8)


@pytest.mark.parametrize("solver", ["gram", "matrix_free"])
@pytest.mark.parametrize("lam", [0.3, 1.0, 2.0])
@pytest.mark.parametrize("kind", ["normalized", "combinatorial"])
def test_any_lam_matches_dense_eigh(solver, lam, kind):
    X, A = random_problem(isolated=3)
    if kind == "combinatorial":
        lam = lam / 10  # degrees ~ 10
    m = RecPCA(6, lam=lam, laplacian=kind, solver=solver).fit(X, graph=A)
    w, V = top_eig(dense_M(X, A, lam, kind), 6)
    np.testing.assert_allclose(m.eigenvalues_, w, rtol=1e-9, atol=1e-9 * abs(w).max())
    assert max_angle(m.components_, V) < 1e-6
    np.testing.assert_allclose(m.components_.T @ m.components_, np.eye(6), atol=1e-10)


@pytest.mark.parametrize("center,normalize", [(False, True), (True, False), (False, False)])
def test_centering_and_normalisation_switches(center, normalize):
    X, A = random_problem(seed=3)
    m = RecPCA(4, lam=0.8, center=center, normalize=normalize).fit(X, graph=A)
    w, V = top_eig(dense_M(X, A, 0.8, normalize=normalize, center=center), 4)
    np.testing.assert_allclose(m.eigenvalues_, w, rtol=1e-9)
    assert max_angle(m.components_, V) < 1e-6
    if not center:
        assert not m.mean_.any()


def test_solver_paths_agree_exactly_after_sign_fix():
    X, A = random_problem(n=500, D=40, seed=4)
    g = RecPCA(8, lam=1.3, solver="gram", ncv=20).fit(X, graph=A)
    f = RecPCA(8, lam=1.3, solver="matrix_free").fit(X, graph=A)
    assert (g.solver_, g.eigensolver_, f.solver_) == ("gram", "spectra", "matrix_free")
    assert f.n_iter_ >= 1 and f.n_matvec_ > 8
    np.testing.assert_allclose(g.components_, f.components_, atol=1e-7)
    np.testing.assert_allclose(g.eigenvalues_, f.eigenvalues_, rtol=1e-10)
    np.testing.assert_allclose(g.mean_, f.mean_, atol=1e-14)
    # dense eigensolver (d large relative to D) agrees too
    dense = RecPCA(30, lam=1.3, solver="gram").fit(X, graph=A)
    assert dense.eigensolver_ == "dense"
    np.testing.assert_allclose(dense.components_[:, :8], g.components_, atol=1e-7)
    # and the sign convention: largest-magnitude entry positive
    lead = g.components_[np.argmax(np.abs(g.components_), axis=0), np.arange(8)]
    assert np.all(lead > 0)


# D = 300 reaches the Lanczos products that are split over threads (D >= 256), and the
# 8-row gather of the graph product; D = 70 the single-threaded products.
@pytest.mark.parametrize("D", [70, 300])
def test_gram_matrix_and_thread_count_determinism(D):
    X, A = random_problem(n=700, D=D, seed=5)
    m1 = RecPCA(5, lam=0.7, solver="gram", n_threads=1).fit(X, graph=A)
    m2 = RecPCA(5, lam=0.7, solver="gram", n_threads=2).fit(X, graph=A)
    assert m1.eigensolver_ == m2.eigensolver_ == "spectra"
    np.testing.assert_array_equal(m1.components_, m2.components_)
    m3 = RecPCA(5, lam=0.7, solver="gram", random_state=7).fit(X, graph=A)
    np.testing.assert_allclose(m3.components_, m1.components_, atol=1e-8)


@pytest.mark.parametrize("solver", ["gram", "matrix_free"])
def test_float32_close_to_float64(solver):
    X, A = random_problem(n=2000, D=64, density=0.01, seed=6)
    m64 = RecPCA(8, lam=0.5, solver=solver).fit(X, graph=A)
    m32 = RecPCA(8, lam=0.5, solver=solver).fit(X.astype(np.float32), graph=A.astype(np.float32))
    assert max_angle(m32.components_, m64.components_) < 1e-4
    np.testing.assert_allclose(m32.eigenvalues_, m64.eigenvalues_, rtol=1e-5)
    Z = m32.transform(X.astype(np.float32))
    assert Z.dtype == np.float32


def test_float32_gram_accumulates_in_double():
    # many rows: a float32 running sum over all of them would lose ~1e-4 relative
    rng = np.random.default_rng(8)
    n, D = 60_000, 16
    X = (rng.standard_normal((n, D)) + 3).astype(np.float32)
    args = (
        np.zeros(n + 1, np.int64),
        np.zeros(0, np.int32),
        np.zeros(0, np.float32),
        np.ones(n),
        np.zeros(n),
        0.0,
        None,
        None,
        0.0,
        2,
    )
    M, _ = _core.recpca_gram(X, *args)
    X64 = X.astype(np.float64)
    np.testing.assert_allclose(M, X64.T @ X64, rtol=2e-6)


def test_float32_gram_with_a_graph_matches_float64():
    # The neighbour sums of (I - lam L) X run in float32 within a row block: bound their error.
    rng = np.random.default_rng(9)
    n, D, lam = 20_000, 16, 0.5
    X = (rng.standard_normal((n, D)) + 1).astype(np.float32)
    m = 15 * n  # about 30 neighbours per item after symmetrising
    A = sp.csr_array((rng.random(m, dtype=np.float32), (rng.integers(0, n, m), rng.integers(0, n, m))), shape=(n, n))
    A = sp.csr_array(A + A.T)
    t, s = np.ones(n), np.ones(n)
    parts = (A.indptr.astype(np.int64), A.indices.astype(np.int32), A.data)
    M32, _ = _core.recpca_gram(X, *parts, t, s, lam, None, None, 0.0, 2)
    X64 = X.astype(np.float64)
    exact = X64.T @ X64 + lam * (X64.T @ (A.astype(np.float64) @ X64))
    np.testing.assert_allclose(M32, exact, rtol=1e-5)


def test_transform_train_new_and_normalize_output():
    X, A = random_problem(n=400, D=30, seed=9, isolated=5)
    m = RecPCA(6, lam=1.0)
    Z = m.fit_transform(X, graph=A)
    np.testing.assert_allclose(m.transform(X), Z)
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    np.testing.assert_allclose(Z, (Xn - m.mean_) @ m.components_, atol=1e-12)
    # cold-start rows: items the graph never saw
    X_new = np.random.default_rng(1).standard_normal((7, 30)) * 5
    Zn = m.transform(X_new)
    np.testing.assert_allclose(
        Zn, (X_new / np.linalg.norm(X_new, axis=1, keepdims=True) - m.mean_) @ m.components_, atol=1e-12
    )
    mo = RecPCA(6, lam=1.0, normalize_output=True).fit(X, graph=A)
    Zo = mo.transform(X_new)
    np.testing.assert_allclose(np.linalg.norm(Zo, axis=1), 1.0)
    np.testing.assert_allclose(Zo, Zn / np.linalg.norm(Zn, axis=1, keepdims=True), atol=1e-12)
    X_bad = X_new.copy()
    X_bad[4, 2] = np.nan
    with pytest.raises(ValueError, match="row 4 contains NaN or Inf"):
        m.transform(X_bad)
    with pytest.raises(ValueError, match="row 4 contains NaN or Inf"):
        RecPCA(6, lam=1.0, normalize=False).fit(np.vstack([X[:4], X_bad[4:5], X[5:]]), graph=A)


def test_zero_rows_warn_stay_zero_and_match_oracle():
    X, A = random_problem(seed=10)
    X[[2, 50]] = 0
    with pytest.warns(RuntimeWarning, match="2 of 300 embedding rows have zero norm"):
        m = RecPCA(4, lam=0.5).fit(X, graph=A)
    np.testing.assert_array_equal(m.zero_rows_, [2, 50])
    Xn = np.zeros_like(X)
    keep = np.linalg.norm(X, axis=1) > 0
    Xn[keep] = X[keep] / np.linalg.norm(X[keep], axis=1, keepdims=True)
    w, V = top_eig(dense_M(Xn, A, 0.5, normalize=False), 4)
    assert max_angle(m.components_, V) < 1e-6
    with pytest.warns(RuntimeWarning):
        Z = m.transform(X)
    assert np.isfinite(Z).all()
    np.testing.assert_allclose(Z[2], -m.mean_ @ m.components_)


def test_memmap_read_only_and_non_contiguous(tmp_path):
    X, A = random_problem(n=400, D=32, seed=11, dtype=np.float32)
    ref = RecPCA(5, lam=0.5).fit(X, graph=A)
    path = tmp_path / "X.f32"
    X.tofile(path)
    Xm = np.memmap(path, dtype=np.float32, mode="r", shape=X.shape)
    assert not Xm.flags.writeable
    m = RecPCA(5, lam=0.5).fit(Xm, graph=A)
    np.testing.assert_array_equal(m.components_, ref.components_)
    Xf = np.asfortranarray(X)
    np.testing.assert_allclose(RecPCA(5, lam=0.5).fit(Xf, graph=A).components_, ref.components_, atol=1e-6)


def test_auto_solver_cost_model():
    # the Gram path wins for embedding-sized D; matrix-free for huge D with few components
    c = solver_costs(200_000, 1024, 64, 6_000_000, 4)
    assert c["gram"] < c["matrix_free"] and not c["dense_eig"]
    c = solver_costs(50_000, 20_000, 4, 1_000_000, 4)
    assert c["matrix_free"] < c["gram"]
    X, A = random_problem()
    assert RecPCA(5, lam=0.5).fit(X, graph=A).solver_ == "gram"


def test_non_convergence_says_what_to_change():
    X, A = random_problem(n=400, D=60, seed=12)
    with pytest.raises(RecPCAConvergenceError, match=r"max_iter.*tol.*ncv"):
        RecPCA(10, lam=1.5, solver="matrix_free", max_iter=1, tol=1e-15, ncv=11).fit(X, graph=A)


@pytest.mark.parametrize(
    "kwargs,X_fn,A_fn,err,match",
    [
        ({}, lambda X: np.where(X > 2, np.nan, X), None, ValueError, "NaN"),
        ({}, lambda X: np.where(X > 2, np.inf, X), None, ValueError, "Inf"),
        ({}, lambda X: X[:, 0], None, ValueError, "2-D"),
        ({}, lambda X: sp.csr_array(X), None, TypeError, "dense"),
        ({"n_components": 25}, None, None, ValueError, "1..D"),
        ({"n_components": 0}, None, None, ValueError, "1..D"),
        ({"n_components": 2.0}, None, None, TypeError, "int"),
        ({"lam": -0.1}, None, None, ValueError, ">= 0"),
        ({"lam": np.nan}, None, None, ValueError, "finite"),
        ({"laplacian": "rw"}, None, None, ValueError, "laplacian kind"),
        ({"solver": "lobpcg"}, None, None, ValueError, "solver"),
        ({"ncv": 4}, None, None, ValueError, "ncv"),
        ({"tol": 0}, None, None, ValueError, "tol"),
        ({"max_iter": 0}, None, None, ValueError, "max_iter"),
        ({"n_threads": 0}, None, None, ValueError, "n_threads"),
        ({}, None, lambda A: A[:-1, :-1], ValueError, "rows"),
        ({}, None, lambda A: -A, ValueError, "negative"),
        ({}, None, lambda A: sp.csr_array(sp.triu(A)), ValueError, "not symmetric"),
        ({"n_components": 24, "solver": "matrix_free"}, None, None, ValueError, "matrix_free"),
    ],
)
def test_bad_input(kwargs, X_fn, A_fn, err, match):
    X, A = random_problem()
    params = {"n_components": 5, **kwargs}
    X = X_fn(X) if X_fn else X
    A = A_fn(A) if A_fn else A
    with pytest.raises(err, match=match):
        RecPCA(**params).fit(X, graph=A)


def test_n_components_must_be_below_n():
    X, A = random_problem(n=10, D=24)
    with pytest.raises(ValueError, match="smaller than the number of items"):
        RecPCA(10).fit(X, graph=A)


def test_transform_errors():
    X, A = random_problem()
    # scikit-learn's convention: NotFittedError is a ValueError and an AttributeError
    for expected in (NotFittedError, ValueError, AttributeError):
        with pytest.raises(expected, match="not fitted"):
            RecPCA(3).transform(X)
    m = RecPCA(3).fit(X, graph=A)
    with pytest.raises(ValueError, match="X has 5 features, but RecPCA is expecting 24"):
        m.transform(X[:, :5])


def long_fit_problem():
    # Matrix-free with the smallest Krylov space (ncv = d + 1): about one product per restart
    # and very slow convergence, so it runs until max_iter (minutes for 2000 restarts).
    rng = np.random.default_rng(13)
    n, D = 60_000, 64
    X = rng.standard_normal((n, D))
    r, c = rng.integers(0, n, 300_000), rng.integers(0, n, 300_000)
    A = sp.csr_array((np.ones(r.size), (r, c)), shape=(n, n))
    A = sp.csr_array(A + A.T)
    return X, A, RecPCA(8, lam=0.5, solver="matrix_free", tol=1e-12, max_iter=2000, ncv=9)


def test_ctrl_c_interrupts_a_fit(sigint_raises):
    X, A, model = long_fit_problem()
    timer = threading.Timer(1.0, lambda: os.kill(os.getpid(), signal.SIGINT))
    start = time.perf_counter()
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            model.fit(X, graph=A)
    finally:
        timer.cancel()
    assert time.perf_counter() - start < 10


def test_fit_releases_the_gil():
    X, A, model = long_fit_problem()
    model.max_iter = 30  # about a second, then a convergence error
    errors = []

    def work():
        try:
            model.fit(X, graph=A)
        except RecPCAConvergenceError as e:
            errors.append(e)

    thread = threading.Thread(target=work)
    stamps = []
    thread.start()
    while thread.is_alive():
        stamps.append(time.perf_counter())
        sum(range(2000))  # pure-Python work: needs the GIL
    thread.join()
    assert errors, "the fit should have run into max_iter"
    gaps = np.diff(stamps)
    assert len(stamps) > 100 and gaps.max() < 0.5, (len(stamps), gaps.max())


def test_warns_when_lam_makes_selected_eigenvalues_non_positive():
    X, A = random_problem()
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        RecPCA(5, lam=0.5).fit(X, graph=A)  # no warning
    # complete graph: X_c^T L X_c = n/(n-1) X_c^T X_c, so M < 0 for lam > (n-1)/n
    K = sp.csr_array(np.ones((300, 300)) - np.eye(300))
    with pytest.warns(RuntimeWarning, match="5 of the 5 selected eigenvalues"):
        RecPCA(5, lam=2.0).fit(X, graph=K)


def test_failed_fit_leaves_no_fitted_attributes():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 12))
    A = sp.csr_array(sp.random(60, 60, density=0.1, random_state=1))
    A = (A + A.T).tocsr()
    est = RecPCA(n_components=4, lam=0.5, solver="matrix_free", max_iter=1, tol=1e-14, ncv=5)
    with pytest.raises(RecPCAConvergenceError):
        est.fit(X, graph=A)
    assert not hasattr(est, "components_") and not hasattr(est, "zero_rows_")


def test_numpy_scalar_tol_is_accepted():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 8))
    A = sp.csr_array((40, 40))
    RecPCA(n_components=2, tol=np.float32(1e-8)).fit(X, graph=A)
    with pytest.raises(ValueError, match="tol"):
        RecPCA(n_components=2, tol=True).fit(X, graph=A)
