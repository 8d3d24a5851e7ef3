import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from tfllmer_fast.metrics import metric_names, metrics_from_ranks, target_ranks


def test_hand_computed_metrics():
    ranks = [0, 1, 4, 9, 25]
    m = metrics_from_ranks(ranks)
    assert m["recall@5"] == pytest.approx(3 / 5)
    assert m["recall@10"] == pytest.approx(4 / 5)
    assert m["recall@20"] == pytest.approx(4 / 5)
    assert m["ndcg@5"] == pytest.approx((1 + 1 / math.log2(3) + 1 / math.log2(6)) / 5)
    assert m["ndcg@10"] == pytest.approx(
        (1 + 1 / math.log2(3) + 1 / math.log2(6) + 1 / math.log2(11)) / 5)
    assert m["mrr@5"] == pytest.approx((1 + 1 / 2 + 1 / 5) / 5)
    assert m["mrr@20"] == pytest.approx((1 + 1 / 2 + 1 / 5 + 1 / 10) / 5)
    assert set(m) == set(metric_names())


def test_single_user_at_top_and_out_of_list():
    assert metrics_from_ranks([0]) == {k: 1.0 for k in metric_names()}
    assert metrics_from_ranks([20]) == {k: 0.0 for k in metric_names()}


def test_rank_counts_strictly_greater_scores():
    scores = torch.tensor([[3.0, 2.0, 2.0, 0.0], [1.0, 1.0, 1.0, 1.0]])
    # user 0: target score 2 (tied with another item) -> rank 1 (only the 3.0 is greater)
    # user 1: every score tied -> rank 0 (ties in the target's favour, documented)
    assert target_ranks(scores, torch.tensor([2.0, 1.0])).tolist() == [1, 0]


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
