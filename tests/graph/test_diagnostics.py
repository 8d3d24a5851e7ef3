import numpy as np
import pytest
import scipy.sparse as sp

from tfllmer_fast import EmbeddingDiagnostics, embedding_diagnostics


def hand_case():
    X = np.array([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
    A = sp.csr_array(np.array([[0, 2, 0, 0], [2, 0, 0, 0], [0, 0, 0, 1], [0, 0, 1, 0]], dtype=float))
    return X, A


def test_hand_checkable_values():
    X, A = hand_case()
    diag = embedding_diagnostics(X, A, k=1, n_random_pairs=400_000, random_state=0)
    assert isinstance(diag, EmbeddingDiagnostics)
    d = diag.as_dict()
    assert d["norm_min"] == 1 and d["norm_median"] == 1 and d["norm_max"] == 2
    assert d["norm_cv"] == pytest.approx(np.std([1, 2, 1, 1]) / 1.25)
    assert d["n_zero_rows"] == 0 and d["n_edges"] == 2 and d["n_edges_used"] == 2
    assert d["edge_cosine_mean"] == pytest.approx(0.0)  # cos 1 and cos -1
    assert d["edge_cosine_weighted_mean"] == pytest.approx(1 / 3)  # (2 * 1 + 1 * -1) / 3
    # the 6 distinct pairs have cosines 1, -1 and four 0: mean 0
    assert d["random_cosine_mean"] == pytest.approx(0.0, abs=0.01)
    assert d["alignment_score"] == pytest.approx(1 / 3, abs=0.01)
    # items 0 and 1 are each other's nearest angular and graph neighbour; 2 and 3 are not
    assert d["knn_overlap"] == pytest.approx(0.5) and d["knn_overlap_chance"] == pytest.approx(1 / 3)
    assert d["n_knn_queries"] == 4


def test_zero_rows_are_skipped_not_nan():
    X, A = hand_case()
    X = np.vstack([X, np.zeros((1, 2))])
    A = sp.csr_array(sp.block_diag([A, sp.csr_array((1, 1))]).tolil())
    A = A.tolil()
    A[4, 0] = A[0, 4] = 5.0
    A = sp.csr_array(A)
    d = embedding_diagnostics(X, A, k=1).as_dict()
    assert d["n_zero_rows"] == 1 and d["norm_min"] == 0
    assert d["n_edges"] == 3 and d["n_edges_used"] == 2
    assert d["edge_cosine_weighted_mean"] == pytest.approx(1 / 3)
    assert not any(np.isnan(v) for v in d.values() if isinstance(v, float))


def test_aligned_embeddings_score_higher_than_random_ones():
    rng = np.random.default_rng(0)
    n = 300
    labels = rng.integers(0, 10, n)
    centers = rng.standard_normal((10, 16))
    X_aligned = centers[labels] + 0.3 * rng.standard_normal((n, 16))
    same = (labels[:, None] == labels[None, :]) & (rng.random((n, n)) < 0.2)
    A = sp.csr_array(np.triu(same, 1) + np.triu(same, 1).T, dtype=float)
    good = embedding_diagnostics(X_aligned, A)
    bad = embedding_diagnostics(rng.standard_normal((n, 16)), A)
    assert good.alignment_score > 0.5 > abs(bad.alignment_score)
    # neighbours are random within a cluster of ~30: overlap ~ 6/30, chance ~ 6/300
    assert good.knn_overlap > 5 * good.knn_overlap_chance
    assert bad.knn_overlap < 3 * bad.knn_overlap_chance


def test_bad_input():
    X, A = hand_case()
    with pytest.raises(ValueError, match="shape"):
        embedding_diagnostics(X[:3], A)
    with pytest.raises(ValueError, match="k must"):
        embedding_diagnostics(X, A, k=0)


def test_zero_weight_edges_and_bad_counts():
    X = np.eye(3, 4) + 0.1
    A = sp.csr_array((np.zeros(2), ([0, 1], [1, 0])), shape=(3, 3))  # stored zeros only
    d = embedding_diagnostics(X, A)
    assert np.isnan(d.edge_cosine_weighted_mean) and np.isfinite(d.edge_cosine_mean)
    for name in ("n_random_pairs", "max_edges", "n_knn_queries", "k"):
        with pytest.raises(ValueError, match=name):
            embedding_diagnostics(X, A, **{name: -1})
