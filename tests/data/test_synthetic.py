"""The synthetic catalogue: deterministic, fast, and with the structure it promises."""

import time
from collections import Counter, defaultdict

import numpy as np
import pytest
import scipy.sparse as sp

from tfllmer_fast import leave_one_out, make_synthetic_catalogue


@pytest.fixture(scope="module")
def cat():
    return make_synthetic_catalogue()


def test_shapes_and_determinism(cat):
    s = cat.sequences
    assert (s.n_users, s.n_items) == (4000, 1500)
    assert cat.embeddings.shape == (1500, 64) and cat.embeddings.dtype == np.float32
    assert len(cat.item_text) == 1500 and cat.item_text[17].startswith("item 17: ")
    assert cat.semantic_labels.shape == cat.collab_labels.shape == (1500,)
    assert s.lengths.min() >= 5 and 10 < s.lengths.mean() < 14
    again = make_synthetic_catalogue()
    np.testing.assert_array_equal(again.sequences.items, s.items)
    np.testing.assert_array_equal(again.embeddings, cat.embeddings)
    assert again.item_text == cat.item_text
    other = make_synthetic_catalogue(seed=1)
    assert not np.array_equal(other.embeddings, cat.embeddings)


def test_fast():
    times = []
    for _ in range(3):
        t = time.perf_counter()
        make_synthetic_catalogue()
        times.append(time.perf_counter() - t)
    assert np.median(times) < 1.0


def test_popularity_is_skewed(cat):
    counts = np.sort(np.bincount(cat.sequences.items, minlength=1500))[::-1]
    top_share = counts[:15].sum() / counts.sum()  # top 1% of items
    assert top_share > 0.08 and counts.min() >= 1


def test_sequential_signal_beats_random(cat):
    """'Next item = most frequent successor' (learnt on train + validation) vs random."""
    split = leave_one_out(cat.sequences)
    succ = defaultdict(Counter)
    for u in range(split.train.n_users):
        seq = split.train.user(u).tolist() + [int(split.valid_targets[u])]
        for a, b in zip(seq, seq[1:]):
            succ[a][b] += 1
    k = 10
    hits = np.mean(
        [int(t) in {b for b, _ in succ[int(v)].most_common(k)} for v, t in zip(split.valid_targets, split.test_targets)]
    )
    assert hits > 20 * k / cat.sequences.n_items  # random HR@10 = 0.0067


def test_graph_follows_collab_not_semantic_clusters(cat):
    s = leave_one_out(cat.sequences).train
    rows = np.repeat(np.arange(s.n_users), s.lengths)
    B = sp.csr_array((np.ones(s.n_interactions), (rows, s.items)), shape=(s.n_users, 1500))
    A = (B.T @ B).tocoo()
    off = A.row != A.col
    r, c, w = A.row[off], A.col[off], A.data[off]
    same_collab = np.average(cat.collab_labels[r] == cat.collab_labels[c], weights=w)
    same_sem = np.average(cat.semantic_labels[r] == cat.semantic_labels[c], weights=w)
    assert same_collab > 0.5 and same_collab > 3 * same_sem


def test_embeddings_follow_semantic_clusters_and_norms(cat):
    X = cat.embeddings / np.linalg.norm(cat.embeddings, axis=1, keepdims=True)
    cos = X @ X.T
    same_sem = cat.semantic_labels[:, None] == cat.semantic_labels[None, :]
    same_col = cat.collab_labels[:, None] == cat.collab_labels[None, :]
    # Angular clusters are semantic; the collaborative part is present but weaker.
    assert cos[same_sem].mean() > cos[same_col & ~same_sem].mean() + 0.2
    assert cos[same_col & ~same_sem].mean() > cos[~same_col & ~same_sem].mean() + 0.05
    norms = np.linalg.norm(cat.embeddings, axis=1)
    assert norms.std() / norms.mean() > 0.5
    flat = make_synthetic_catalogue(n_users=50, n_items=40, norm_disparity=0.0)
    np.testing.assert_allclose(np.linalg.norm(flat.embeddings, axis=1), 1, atol=1e-5)


def test_parameters_validated():
    with pytest.raises(ValueError, match="agreement"):
        make_synthetic_catalogue(agreement=1.5)
    with pytest.raises(ValueError, match="mean_length"):
        make_synthetic_catalogue(mean_length=2)
    small = make_synthetic_catalogue(
        n_users=30, n_items=20, mean_length=4, dim=8, n_semantic_clusters=3, n_collab_clusters=4
    )
    assert small.sequences.lengths.min() >= 3 and small.embeddings.shape == (20, 8)
