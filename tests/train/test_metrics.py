import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tfllmer_fast.train.metrics import metric_names, metrics_from_ranks, target_ranks


def test_hand_computed_metrics():
    ranks = [0, 1, 4, 9, 25]
    m = metrics_from_ranks(ranks)
    assert m["recall@5"] == pytest.approx(3 / 5)
    assert m["recall@10"] == pytest.approx(4 / 5)
    assert m["recall@20"] == pytest.approx(4 / 5)
    assert m["ndcg@5"] == pytest.approx((1 + 1 / math.log2(3) + 1 / math.log2(6)) / 5)
    assert m["ndcg@10"] == pytest.approx((1 + 1 / math.log2(3) + 1 / math.log2(6) + 1 / math.log2(11)) / 5)
    assert m["mrr@5"] == pytest.approx((1 + 1 / 2 + 1 / 5) / 5)
    assert m["mrr@20"] == pytest.approx((1 + 1 / 2 + 1 / 5 + 1 / 10) / 5)
    assert set(m) == set(metric_names())


def test_single_user_at_top_and_out_of_list():
    assert metrics_from_ranks([0]) == {k: 1.0 for k in metric_names()}
    assert metrics_from_ranks([20]) == {k: 0.0 for k in metric_names()}


def test_ties_count_against_the_target():
    # Full ranking: the target's own score is one of the columns (column 1 for user 0).
    scores = torch.tensor([[3.0, 2.0, 2.0, 0.0], [1.0, 1.0, 1.0, 1.0]])
    # user 0: the 3.0 is greater and one other item ties -> rank 2
    # user 1: a collapsed model (every score tied) ranks the target last, not first
    ranks = target_ranks(scores, torch.tensor([2.0, 1.0]), includes_target=True)
    assert ranks.tolist() == [2, 3]
    # Sampled protocol: the row holds the negatives only.
    assert target_ranks(scores, torch.tensor([2.0, 5.0])).tolist() == [3, 0]


def test_non_finite_target_scores_rank_last():
    scores = torch.tensor([[0.5, float("nan"), 0.1], [float("nan")] * 3, [0.2, 0.3, 0.9]])
    target = torch.tensor([float("nan"), float("nan"), float("inf")])
    assert target_ranks(scores, target, includes_target=True).tolist() == [2, 2, 2]
    # NaN candidates never outrank a finite target
    assert target_ranks(scores[:1], torch.tensor([0.6])).tolist() == [0]


def test_bad_ranks():
    with pytest.raises(ValueError, match="no ranks"):
        metrics_from_ranks([])
    with pytest.raises(ValueError, match=">= 0"):
        metrics_from_ranks([-1, 2])


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 60), min_size=1, max_size=40))
def test_metrics_match_plain_python(ranks):
    m = metrics_from_ranks(np.array(ranks))
    for k in (5, 10, 20):
        hits = [r for r in ranks if r < k]
        assert m[f"recall@{k}"] == pytest.approx(len(hits) / len(ranks))
        assert m[f"ndcg@{k}"] == pytest.approx(sum(1 / math.log2(r + 2) for r in hits) / len(ranks))
        assert m[f"mrr@{k}"] == pytest.approx(sum(1 / (r + 1) for r in hits) / len(ranks))
