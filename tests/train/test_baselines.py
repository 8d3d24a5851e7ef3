"""The trivial baselines against hand-computed rankings, through the evaluation code models use."""

import numpy as np
import pytest
import torch

from tests.helpers import random_sequences
from tfllmer_fast.data.sequences import Sequences, leave_one_out
from tfllmer_fast.train import Evaluator, make_baseline
from tfllmer_fast.train.baselines import LLMKNN, popularity_scores
from tfllmer_fast.train.options import EvalOptions

# train / valid / test:  u0: 0 1 1 | 2 | 3    u1: 1 4 | 1 | 0    u2: 2 1 | 5 | 4
# training counts: item 0: 1, 1: 4, 2: 1, 3: 0, 4: 1, 5: 0
# popularity order (ties: smaller id): 1, 0, 2, 4, 3, 5
SEQS = [[0, 1, 1, 2, 3], [1, 4, 1, 0], [2, 1, 5, 4]]


@pytest.fixture(autouse=True)
def _threads(one_thread):
    yield


@pytest.fixture
def split():
    return leave_one_out(Sequences.from_lists(SEQS, n_items=6))


def _ranks(model, split, which, **kw):
    _, ranks = Evaluator(model, split, EvalOptions()).evaluate(which, return_ranks=True, **kw)
    return ranks.tolist()


def test_popularity_scores_are_a_strict_order():
    assert popularity_scores([1, 4, 1, 0, 1, 0]).tolist() == [5, 6, 4, 2, 3, 1]


def test_popularity_by_hand(split):
    m = make_baseline("popularity", split, max_len=4)
    assert _ranks(m, split, "valid") == [2, 0, 5]  # targets 2, 1, 5
    assert _ranks(m, split, "test") == [4, 1, 3]  # targets 3, 0, 4
    # the same code masks the history: u0 (0, 1, 2 seen) only has item 4 ahead of 3, u1 (1, 4
    # seen) none ahead of 0, u2 (2, 1, 5 seen) item 0 ahead of 4
    assert _ranks(m, split, "test", mask_history=True) == [1, 0, 1]


def test_last_item_by_hand(split):
    m = make_baseline("last-item", split, max_len=4)
    # valid: last items 1, 4, 1 go first, then popularity
    assert _ranks(m, split, "valid") == [2, 1, 5]
    # test: last items 2, 1, 5 (u1's target 0 is behind 1 only; u2's 4 behind 5, 1, 0, 2)
    assert _ranks(m, split, "test") == [4, 1, 4]
    seqs = Sequences.from_lists([[0, 1, 2, 2], [3, 1, 1, 1]], n_items=4)
    sp = leave_one_out(seqs)  # both test targets repeat the last input item
    assert _ranks(make_baseline("last-item", sp), sp, "test") == [0, 0]


def test_llm_knn_by_hand(split):
    rows = np.array([[1, 0], [0, 1], [1, 1], [-1, 0], [1, -0.2], [0, -1]], dtype=np.float64)
    m = make_baseline("llm-knn", split, rows=rows, max_len=4, window=1)
    # u1, test: input 1 4 1, query = row 1 = (0, 1); inputs 1, 4 rank below all others.
    # cosines: 0: 0, 2: 0.71, 3: 0, 5: -1 -> target 0 is behind 2 and tied with 3: rank 2
    assert _ranks(m, split, "test")[1] == 2


def _knn_oracle(rows, split, which, window, exclude):
    """A plain loop: per user, the mean of the unit rows of the last `window` items."""
    unit = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    out = []
    for u, hist in enumerate(split.train.to_lists()):
        target = int(split.valid_targets[u]) if which == "valid" else int(split.test_targets[u])
        if which == "test":
            hist = hist + [int(split.valid_targets[u])]
        q = unit[hist[-window:]].sum(0)
        q = q / np.linalg.norm(q)
        s = unit @ q
        if exclude:
            s[hist] = -2.0
        out.append(int((np.delete(s, target) >= s[target]).sum()))
    return out


@pytest.mark.parametrize("window, exclude", [(1, True), (3, True), (3, False)])
def test_llm_knn_against_a_plain_loop(window, exclude):
    seqs = random_sequences(n_users=40, n_items=30, max_len=9, seed=3)
    sp = leave_one_out(seqs)
    rows = np.random.default_rng(0).standard_normal((30, 5))
    m = LLMKNN(rows, max_len=20, window=window, exclude_inputs=exclude)
    for which in ("valid", "test"):
        # float32 scores against a float64 oracle: compare away from near-ties only
        assert _ranks(m, sp, which) == _knn_oracle(rows, sp, which, window, exclude)


@pytest.mark.parametrize("name", ["popularity", "last-item", "llm-knn"])
def test_candidate_scores_match_full_scores(name, split):
    m = make_baseline(name, split, rows=np.random.default_rng(1).standard_normal((6, 3)), max_len=4)
    seq = torch.tensor([[0, 1, 2, 5], [0, 0, 3, 4]])
    h = m.next_hidden(seq)
    full = m.score(h)
    assert full.shape == (2, 6)
    torch.testing.assert_close(m.score(h, torch.tensor([5, 0])), full[:, [5, 0]])
    torch.testing.assert_close(
        m.score(h, torch.tensor([[1, 2], [3, 3]])), full.gather(1, torch.tensor([[1, 2], [3, 3]]))
    )
    metrics = Evaluator(m, split, EvalOptions(eval_negatives=3)).evaluate("test", protocol="sampled")
    assert 0.0 <= metrics["ndcg@10"] <= 1.0


def test_bad_baselines(split):
    with pytest.raises(ValueError, match="unknown baseline"):
        make_baseline("item-knn", split)
    with pytest.raises(ValueError, match="needs item rows"):
        make_baseline("llm-knn", split)
    with pytest.raises(ValueError, match="5 item rows for 6 items"):
        make_baseline("llm-knn", split, rows=np.ones((5, 2)))
    with pytest.raises(ValueError, match="window"):
        make_baseline("llm-knn", split, rows=np.ones((6, 2)), window=0)


def test_llm_knn_ranks_items_without_a_direction_last():
    # Items without text have all-zero rows: no cosine, below every item that has one.
    rows = np.array([[1.0, 0.0], [0.0, 0.0], [-1.0, 0.0], [0.6, 0.8], [0.0, 0.0]])
    with pytest.warns(UserWarning, match="2 all-zero item row"):
        m = LLMKNN(rows, max_len=3, exclude_inputs=False)
    scores = m.score(m.next_hidden(torch.tensor([[0, 1, 2]])))[0]  # items 0 and 1 as input
    assert scores.argsort(descending=True).tolist()[:3] == [0, 3, 2]
    assert (scores[[1, 4]] < scores[[0, 2, 3]].min()).all()
    only_zero = m.score(m.next_hidden(torch.tensor([[0, 0, 2]])))[0]  # a query without direction
    assert torch.isfinite(only_zero).all()
