import numpy as np
import pytest
import torch

from tests.helpers import random_sequences
from tfllmer_fast.data.sequences import Sequences, leave_one_out
from tfllmer_fast.train.evaluation import build_eval_data, evaluate, right_aligned
from tfllmer_fast.train.metrics import metrics_from_ranks
from tfllmer_fast.train.models import BERT4Rec, GRU4Rec, SASRec


@pytest.fixture(autouse=True)
def _threads(one_thread):
    yield


def test_right_aligned_matches_python():
    seqs = Sequences.from_lists([[1, 2, 3], [4], [5, 6, 7, 8, 9, 0, 1]], n_items=10)
    out = right_aligned(seqs, 4)
    assert out.tolist() == [[0, 2, 3, 4], [0, 0, 0, 5], [9, 10, 1, 2]]
    out = right_aligned(seqs, 4, extra=np.array([7, 8, 9]))
    assert out.tolist() == [[2, 3, 4, 8], [0, 0, 5, 9], [10, 1, 2, 10]]


def _brute_force_ranks(model, split, which, max_len, mask_history):
    """Plain loop: one user at a time, history as a Python list, numpy ranking."""
    ranks = []
    train = split.train.to_lists()
    for u, hist in enumerate(train):
        if which == "test":
            hist = hist + [int(split.valid_targets[u])]
            target = int(split.test_targets[u])
        else:
            target = int(split.valid_targets[u])
        seq = [i + 1 for i in hist[-max_len:]]
        x = torch.tensor([[0] * (max_len - len(seq)) + seq])
        with torch.no_grad():
            scores = model(x)[0].numpy().astype(np.float64)
        t = scores[target]
        if mask_history:
            scores[list(set(hist) - {target})] = -np.inf
        others = np.delete(scores, target)
        ranks.append(int((others >= t).sum()))  # ties count against the target
    return np.array(ranks)


@pytest.mark.parametrize("cls", [SASRec, GRU4Rec, BERT4Rec])
@pytest.mark.parametrize("which", ["valid", "test"])
@pytest.mark.parametrize("mask_history", [False, True])
def test_full_ranking_matches_brute_force(cls, which, mask_history):
    torch.manual_seed(0)
    seqs = random_sequences(n_users=40, n_items=25, max_len=15)
    split = leave_one_out(seqs)
    max_len = 6  # shorter than many histories: truncation is exercised
    model = (
        cls(25, hidden=16, max_len=max_len, n_layers=1).eval()
        if cls is not GRU4Rec
        else cls(25, hidden=16, max_len=max_len, gru_hidden=8).eval()
    )
    data = build_eval_data(split, max_len, which)
    metrics, ranks = evaluate(model, data, mask_history=mask_history, return_ranks=True, batch_size=7)
    expected = _brute_force_ranks(model, split, which, max_len, mask_history)
    np.testing.assert_array_equal(ranks, expected)
    assert metrics == pytest.approx(metrics_from_ranks(expected))


def test_sampled_protocol_negatives_and_reproducibility(monkeypatch):
    torch.manual_seed(0)
    seqs = random_sequences(n_users=30, n_items=200, max_len=20)
    split = leave_one_out(seqs)
    model = SASRec(200, hidden=16, max_len=10, n_layers=1).eval()
    data = build_eval_data(split, 10, "test")
    from tfllmer_fast.train import evaluation

    seen = []
    orig = evaluation._sample_negatives

    def spy(d, users, n, gen, **kw):
        out = orig(d, users, n, gen, **kw)
        seen.append((users.clone(), out.clone()))
        return out

    monkeypatch.setattr(evaluation, "_sample_negatives", spy)
    m1, r1 = evaluate(model, data, protocol="sampled", seed=3, return_ranks=True)
    m2 = evaluate(model, data, protocol="sampled", seed=3)
    assert m1 == m2
    assert ((r1 >= 0) & (r1 <= 100)).all()
    full = seqs.to_lists()
    kept = split.user_index
    for users, neg in seen:
        assert neg.shape[1] == 100
        for u, row in zip(users.tolist(), neg.tolist()):
            assert not set(row) & set(full[kept[u]])  # never an item the user interacted with
    m3 = evaluate(model, data, protocol="sampled", seed=4)
    assert m3 != m1


def test_sampled_ranks_against_brute_force():
    torch.manual_seed(1)
    seqs = random_sequences(n_users=20, n_items=150, max_len=10)
    split = leave_one_out(seqs)
    model = GRU4Rec(150, hidden=8, max_len=10, gru_hidden=8).eval()
    data = build_eval_data(split, 10, "valid")
    from tfllmer_fast.train import evaluation

    gen = torch.Generator().manual_seed(0)
    _, ranks = evaluate(model, data, protocol="sampled", seed=0, return_ranks=True, n_negatives=100)
    # Recompute: same generator sequence over the same user order.
    order = data.order
    neg = evaluation._sample_negatives(data, order, 100, gen)
    with torch.no_grad():
        scores = model(data.inputs[order])
    t = scores.gather(1, data.targets[order].unsqueeze(1))
    expected = (scores.gather(1, neg) > t).sum(1).numpy()
    np.testing.assert_array_equal(ranks[order.numpy()], expected)


def test_bad_protocol():
    seqs = random_sequences()
    split = leave_one_out(seqs)
    data = build_eval_data(split, 5, "valid")
    with pytest.raises(ValueError, match="protocol"):
        evaluate(SASRec(25, hidden=8, max_len=5), data, protocol="loo")
    with pytest.raises(ValueError, match="which"):
        build_eval_data(split, 5, "train")
