"""Rec-PCA when M has a null space: fewer items than embedding dimensions (n <= D), where
a large lam pushes the top eigenvalues of M into the cluster of zero eigenvalues."""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.linalg import subspace_angles

from tfllmer_fast import RecPCA, RecPCAConvergenceError, cooccurrence, laplacian, make_synthetic_catalogue
from tfllmer_fast.graph.recpca_problem import pick_solver, rank_deficient


def small_catalogue(n=60, D=128, seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, D)).astype(dtype)
    A = cooccurrence([list(rng.choice(n, 5, replace=False)) for _ in range(300)], n_items=n)
    return X, A


def oracle(X, A, lam):
    """Eigenvalues of M = X_c^T (I - lam L) X_c (float64, numpy), descending."""
    Xn = X.astype(np.float64)
    Xn = Xn / np.linalg.norm(Xn, axis=1, keepdims=True)
    Xc = Xn - Xn.mean(axis=0)
    M = Xc.T @ (np.eye(X.shape[0]) - lam * laplacian(A).toarray()) @ Xc
    w, V = np.linalg.eigh(M)
    return w[::-1], V[:, ::-1], Xc


def synthetic_catalogue(n=60, D=128, seed=0):
    """Embeddings whose clusters the graph shares: some eigenvalues stay positive at lam > 1."""
    cat = make_synthetic_catalogue(n_users=300, n_items=n, dim=D, n_semantic_clusters=4, n_collab_clusters=4, seed=seed)
    return cat.embeddings, cooccurrence(cat.sequences, window=3)


@pytest.mark.parametrize(
    "make,n,D,d,lam",
    [
        (small_catalogue, 60, 128, 16, 1.5),
        (small_catalogue, 40, 64, 8, 1.5),
        (small_catalogue, 20, 64, 8, 1.0),
        (synthetic_catalogue, 60, 128, 16, 1.5),
        (synthetic_catalogue, 100, 384, 16, 3.0),
    ],
)
def test_fewer_items_than_dimensions_fit_where_lanczos_cannot(make, n, D, d, lam):
    # These made Spectra run into max_iter: the top eigenvalues lie in M's null space.
    X, A = make(n, D)
    w, V, Xc = oracle(X, A, lam)
    n_pos = int(np.sum(w > 1e-6 * np.abs(w).max()))
    assert n_pos < d  # the wanted set does reach the null space
    way = rf"n_components <= {n_pos}\." if n_pos else r"a smaller lam\."
    with pytest.warns(RuntimeWarning, match=rf"{d - n_pos} of the {d} .* M has rank <= {n - 1}.*Use .*{way}"):
        m = RecPCA(d, lam=lam).fit(X, graph=A)
    assert (m.solver_, m.eigensolver_) == ("gram", "dense")
    np.testing.assert_allclose(m.eigenvalues_[:n_pos], w[:n_pos], rtol=1e-4)
    if n_pos:
        assert np.max(subspace_angles(m.components_[:, :n_pos], V[:, :n_pos])) < 1e-3
    np.testing.assert_allclose(m.components_.T @ m.components_, np.eye(d), atol=1e-10)
    # the other components are directions in which X does not vary: Z is 0 there
    np.testing.assert_allclose(m.transform(X)[:, n_pos:], 0, atol=1e-5)
    np.testing.assert_allclose(Xc @ m.components_[:, n_pos:], 0, atol=1e-5)


def test_no_warning_while_the_top_eigenvalues_are_positive():
    X, A = small_catalogue(60, 128)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = RecPCA(16, lam=0.5).fit(X, graph=A)
    assert m.eigensolver_ == "dense" and np.all(m.eigenvalues_ > 0)


def test_the_choice_of_solver():
    # n <= D (centred: n - 1 < D) always has a null space: the Gram path, dense
    assert rank_deficient(64, 64, center=True) and not rank_deficient(64, 64, center=False)
    assert not rank_deficient(65, 64, center=True)
    # what auto used to pick here (matrix-free, cheaper by the cost model) cannot converge
    assert pick_solver("auto", 300, 384, 16, 3000, 4, 36, True) == ("gram", True)
    assert pick_solver("gram", 300, 384, 16, 3000, 4, 36, True) == ("gram", True)
    assert pick_solver("auto", 3000, 384, 16, 30000, 4, 36, True)[1] is False  # full rank: Spectra


def test_matrix_free_on_a_null_space_names_the_cause():
    X, A = small_catalogue(60, 128)
    with pytest.raises(RecPCAConvergenceError, match=r"n = 60 items for D = 128 .* null space.*solver='gram'"):
        RecPCA(16, lam=1.5, solver="matrix_free", max_iter=30).fit(X, graph=A)
    # a convergence error is an ArithmeticError too (the CLI reports those in one line)
    assert issubclass(RecPCAConvergenceError, ArithmeticError)


def test_rank_deficient_x_with_many_rows_points_to_the_dense_eigensolver():
    # n > D, but X has rank 10 < D (embeddings in a 10-dimensional subspace): Lanczos fails
    # the same way; the message names ncv = D, which selects the dense eigensolver.
    rng = np.random.default_rng(3)
    n, D = 300, 64
    X = rng.standard_normal((n, 10)) @ rng.standard_normal((10, D))
    A = sp.csr_array(np.ones((n, n)) - np.eye(n))  # complete graph: M < 0 on X's range for lam > 1
    with pytest.raises(RecPCAConvergenceError, match=rf"ncv={D}"):
        RecPCA(8, lam=2.0, solver="gram", max_iter=30).fit(X, graph=A)
    with pytest.warns(RuntimeWarning, match="eigenvalues of M are <= 0"):
        m = RecPCA(8, lam=2.0, solver="gram", ncv=D).fit(X, graph=A)
    assert m.eigensolver_ == "dense"
