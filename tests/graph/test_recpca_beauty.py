"""Real-data check on Amazon Beauty: MiniLM title embeddings + training co-occurrence graph."""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp

from tfllmer_fast import RecPCA, embedding_diagnostics
from tfllmer_fast.data.sequences import Sequences, leave_one_out


def load_beauty_train(data_dir):
    """Training part (leave-one-out) of Beauty; file ids are 1-based."""
    seqs = []
    with open(data_dir / "beauty" / "sequences.txt") as f:
        for line in f:
            ids = line.split()[1:]
            seqs.append([int(i) - 1 for i in ids])
    emb = np.load(data_dir / "beauty" / "item_emb_minilm_l6.npy")
    split = leave_one_out(Sequences.from_lists(seqs, n_items=emb.shape[0]))
    return split.train, emb


def cooccurrence_graph(train: Sequences):
    """Whole-history co-occurrence, binary per user: off-diagonal of B^T B (scipy).

    An oracle independent of tfllmer_fast.cooccurrence (window=None, weighting="binary").
    """
    rows = np.repeat(np.arange(train.n_users), train.lengths)
    B = sp.csr_array((np.ones(train.items.size, np.float32), (rows, train.items)), shape=(train.n_users, train.n_items))
    B.data[:] = 1.0
    A = sp.csr_array(B.T @ B)
    A.setdiag(0)
    A.eliminate_zeros()
    return A


@pytest.fixture(scope="module")
def beauty(data_dir):
    train, emb = load_beauty_train(data_dir)
    return emb, cooccurrence_graph(train)


def test_beauty_alignment_rises_with_lam(beauty):
    emb, A = beauty
    assert emb.shape == (12101, 384) and A.shape == (12101, 12101)
    scores = {}
    for lam in (0.0, 0.5, 1.0, 2.0):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            Z = RecPCA(64, lam=lam, random_state=0).fit_transform(emb, graph=A)
        messages = [str(w.message) for w in caught]
        assert any("7 of 12101 embedding rows have zero norm" in m for m in messages)  # no title
        # On Beauty M is negative on the whole range of X_c past lam ~ 1.3: lam = 2 is
        # degenerate and must say so.
        assert any("eigenvalues of M are <= 0" in m for m in messages) == (lam == 2.0)
        scores[lam] = embedding_diagnostics(Z, A, random_state=0)
    print({lam: round(s.alignment_score, 4) for lam, s in scores.items()})
    values = [scores[lam].alignment_score for lam in (0.0, 0.5, 1.0)]
    assert values[0] < values[1] < values[2], values
    assert scores[1.0].knn_overlap > scores[0.0].knn_overlap


def test_beauty_raw_embeddings_are_unit_norm_with_zero_rows(beauty):
    emb, A = beauty
    d = embedding_diagnostics(emb, A, random_state=0)
    assert d.n_zero_rows == 7
    assert d.norm_max == pytest.approx(1.0, abs=1e-5)
    assert d.alignment_score > 0  # co-occurring titles are more similar than random ones
