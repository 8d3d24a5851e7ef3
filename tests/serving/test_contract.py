"""recommend's top-k is the ranking of evaluation: for every backbone and item-table mode,
with and without items added by add-items, against an argsort of the full score matrix
computed through evaluation's own path (``next_hidden`` on ``right_aligned`` inputs, then
``float_scores``)."""

import numpy as np
import pytest
import torch

from tfllmer_fast.serving import Recommender
from tfllmer_fast.serving._topk import Scorer
from tfllmer_fast.train import float_scores, load_checkpoint
from tfllmer_fast.train.rows import right_aligned

from .conftest import BACKBONES, MODES, N_ITEMS, N_NEW

K = 10


def evaluation_scores(model, seqs) -> np.ndarray:
    """The full (users x items) score matrix as evaluate computes it."""
    model.eval()
    with torch.no_grad():
        h = model.next_hidden(torch.as_tensor(right_aligned(seqs, model.max_len)))
        return float_scores(model, h).numpy()


def oracle_top_k(S, k, banned_rows=None):
    S = S.copy()
    if banned_rows is not None:
        for u, items in enumerate(banned_rows):
            S[u, items] = -np.inf
    order = np.argsort(-S, axis=1, kind="stable")[:, :k]  # ties: the smaller id
    return order, np.take_along_axis(S, order, 1)


def key_histories(seqs, keys):
    return [[keys[i] for i in seqs.user(u)] for u in range(seqs.n_users)]


@pytest.mark.parametrize("added", [False, True], ids=["trained", "added-items"])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("backbone", BACKBONES)
def test_top_k_is_the_argsort_of_the_evaluation_scores(backbone, mode, added, checkpoints, synthetic_sequences):
    rec = Recommender.from_checkpoint(checkpoints(backbone, mode, added=added), device="cpu", batch_size=64)
    n = N_ITEMS + (N_NEW if added else 0)
    assert rec.n_items == n
    keys = rec.item_keys.tolist()
    if added:
        assert keys[N_ITEMS:] == [f"new-{i}" for i in range(N_ITEMS, n)]
    seqs = synthetic_sequences
    hist = key_histories(seqs, keys)
    S = evaluation_scores(rec.model, seqs)
    assert S.shape == (seqs.n_users, n)

    got = rec.recommend(hist, k=K, exclude_seen=False)
    want, want_scores = oracle_top_k(S, K)
    np.testing.assert_array_equal(got.ids, want)
    # The same scores up to float32 rounding: a block's width (its longest history) decides
    # how much padding attention sums over, as in evaluation's own blocks.
    np.testing.assert_allclose(got.scores, want_scores, rtol=1e-6, atol=1e-6)
    assert got.keys.tolist() == [[keys[i] for i in row] for row in want]

    # exclude_seen removes exactly the history items: the oracle with them at -inf
    seen = [np.unique(seqs.user(u)) for u in range(seqs.n_users)]
    got = rec.recommend(hist, k=K)
    want, want_scores = oracle_top_k(S, K, seen)
    np.testing.assert_array_equal(got.ids, want)
    np.testing.assert_allclose(got.scores, want_scores, rtol=1e-6, atol=1e-6)
    assert not any(np.isin(got.ids[u], seen[u]).any() for u in range(seqs.n_users))

    # user_vectors @ item_vectors.T are the scores
    U, V = rec.user_vectors(hist), rec.item_vectors()
    assert U.shape == (seqs.n_users, rec.vector_dim) and V.shape == (n, rec.vector_dim)
    np.testing.assert_allclose(U @ V.T, S, rtol=1e-5, atol=1e-5 * np.abs(S).max())


@pytest.mark.parametrize("backbone", BACKBONES)
def test_new_items_are_ranked_like_the_others(backbone, checkpoints, synthetic_sequences):
    """Added items are candidates with their own scores; with an old item's rows the
    old scores do not move; two new items with the same text tie and go by id."""
    old = Recommender.from_checkpoint(checkpoints(backbone, "free"), device="cpu")
    rec = Recommender.from_checkpoint(checkpoints(backbone, "free", added=True), device="cpu")
    seqs = synthetic_sequences
    S_old = evaluation_scores(old.model, seqs)
    S = evaluation_scores(rec.model, seqs)
    np.testing.assert_array_equal(S[:, :N_ITEMS], S_old)  # old items keep their scores
    new_keys = rec.item_keys[N_ITEMS:].tolist()
    hist = key_histories(seqs, old.item_keys.tolist())
    got = rec.recommend(hist, k=3, items=new_keys)
    want, _ = oracle_top_k(S[:, N_ITEMS:], 3)
    np.testing.assert_array_equal(got.ids, want + N_ITEMS)
    assert set(got.keys.ravel()) <= set(new_keys)
    # new-120 and new-121 have the same embedding: equal scores, the smaller id first
    np.testing.assert_array_equal(S[:, N_ITEMS], S[:, N_ITEMS + 1])
    both = rec.recommend(hist, k=2, items=new_keys[:2]).keys
    assert (both == np.array(new_keys[:2], dtype=object)).all()


@pytest.mark.parametrize(
    "backbone,variant", [("bert4rec", "bias"), ("sasrec", "bias"), ("sasrec", "cosine"), ("gru4rec", "cosine")]
)
def test_scoring_variants_fold_into_the_vectors(backbone, variant, checkpoints, synthetic_sequences):
    """An output bias (one more coordinate) and a temperature / hidden normalisation are
    folded into the vectors; the ranking stays evaluation's."""
    rec = Recommender.from_checkpoint(checkpoints(backbone, "free", variant), device="cpu")
    m = rec.model
    assert rec.vector_dim == m.hidden + (1 if m.output_bias() is not None else 0)
    if backbone == "bert4rec" and variant == "bias":
        assert m.output_bias() is not None
    seqs = synthetic_sequences
    hist = key_histories(seqs, rec.item_keys.tolist())
    S = evaluation_scores(m, seqs)
    got = rec.recommend(hist, k=K, exclude_seen=False)
    want, want_scores = oracle_top_k(S, K)
    np.testing.assert_array_equal(got.ids, want)
    np.testing.assert_array_equal(got.scores, want_scores)
    U, V = rec.user_vectors(hist), rec.item_vectors()
    np.testing.assert_allclose(U @ V.T, S, rtol=1e-5, atol=1e-5 * np.abs(S).max())


@pytest.mark.parametrize("backbone", BACKBONES)
def test_the_cached_scorer_is_the_models_score_bit_for_bit(backbone, checkpoints):
    st = load_checkpoint(checkpoints(backbone, "frozen+delta"))
    rec = Recommender.from_checkpoint(st, device="cpu")
    h = torch.randn(37, rec.model.hidden, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(Scorer(rec.model)(h), float_scores(rec.model, h))
        cols = torch.tensor([3, 5, 50, 99])
        assert torch.equal(Scorer(rec.model, cols)(h), float_scores(rec.model, h)[:, cols])


def test_recommend_over_a_sequences_and_from_a_run(synthetic_sequences):
    """A Sequences with keys, and a Recommender made from a RunResult: the same lists as
    from the checkpoint of that run."""
    from tfllmer_fast.experiment.run import run_experiment

    from .conftest import tiny_config

    result = run_experiment(tiny_config("gru4rec"))
    rec = Recommender.from_run(result)
    seqs = synthetic_sequences
    S = evaluation_scores(rec.model, seqs)
    got = rec.recommend(seqs, k=5, exclude_seen=False)
    np.testing.assert_array_equal(got.ids, oracle_top_k(S, 5)[0])
    # the synthetic catalogue has no user keys: rows are numbered
    assert got.users is None and got.row_keys().tolist() == list(range(seqs.n_users))
    assert got.n_unknown == 0 and got.n_empty == 0
