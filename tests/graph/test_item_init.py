import numpy as np
import pytest

from tests.helpers import random_sequences
from tfllmer_fast.data.sequences import leave_one_out
from tfllmer_fast.graph.item_table import check_embeddings, initial_item_table, pca_table, rescale_table


def test_pca_table_matches_sklearn_up_to_sign():
    from sklearn.decomposition import PCA

    X = np.random.default_rng(0).normal(size=(80, 12)) @ np.diag(np.linspace(3, 0.2, 12))
    Z = pca_table(X, 5)
    ref = PCA(5, svd_solver="full").fit_transform(X)
    for j in range(5):
        s = np.sign(Z[:, j] @ ref[:, j])
        np.testing.assert_allclose(Z[:, j], s * ref[:, j], atol=1e-8)


def test_rescaling_modes():
    Z = np.random.default_rng(1).normal(size=(30, 8)) * 5
    np.testing.assert_allclose(rescale_table(Z, "std", 0.02).std(), 0.02)
    np.testing.assert_allclose(np.linalg.norm(rescale_table(Z, "unit", 0.02), axis=1), 1.0)
    np.testing.assert_array_equal(rescale_table(Z, "none", 0.02), Z)
    # "std" keeps relative norms and angles (one global factor).
    r = rescale_table(Z, "std", 0.02) / Z
    np.testing.assert_allclose(r, r[0, 0])


def test_initial_table_pca_and_errors():
    split = leave_one_out(random_sequences(n_users=30, n_items=20))
    X = np.random.default_rng(0).normal(size=(20, 16)).astype(np.float32)
    assert initial_item_table("random", None, split, 8) is None
    T = initial_item_table("pca", X, split, 8)
    assert T.shape == (20, 8) and T.dtype == np.float32
    np.testing.assert_allclose(T.std(), 0.02, rtol=1e-5)
    with pytest.raises(ValueError, match="rows"):
        initial_item_table("pca", X[:19], split, 8)
    with pytest.raises(ValueError, match="larger than the embedding"):
        initial_item_table("pca", X, split, 32)
    with pytest.raises(ValueError, match="needs item embeddings"):
        initial_item_table("recpca", None, split, 8)
    with pytest.raises(ValueError, match="unknown init"):
        initial_item_table("svd", X, split, 8)
    X2 = X.copy()
    X2[0, 0] = np.inf
    with pytest.raises(ValueError, match="NaN or Inf"):
        check_embeddings(X2, 20)
    X3 = X.copy()
    X3[2] = 0
    with pytest.warns(RuntimeWarning, match="all-zero"):
        initial_item_table("pca", X3, split, 8)


@pytest.mark.filterwarnings("ignore:.*eigenvalues of M are <= 0:RuntimeWarning")
def test_recpca_table_uses_the_training_graph():
    split = leave_one_out(random_sequences(n_users=60, n_items=30))
    X = np.random.default_rng(0).normal(size=(30, 16)).astype(np.float32)
    timings = {}
    T = initial_item_table("recpca", X, split, 8, lam=1.0, timings=timings)
    assert T.shape == (30, 8) and np.isfinite(T).all()
    assert {"graph_s", "reduce_s"} <= set(timings)
    # lambda = 0 is plain PCA of the normalised embeddings (up to signs).
    T0 = initial_item_table("recpca", X, split, 8, lam=0.0, scale="none")
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    P = pca_table(Xn, 8)
    for j in range(8):
        s = np.sign(T0[:, j] @ P[:, j])
        np.testing.assert_allclose(T0[:, j], s * P[:, j], atol=1e-4)
