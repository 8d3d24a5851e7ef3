"""Ranking metrics for one held-out target per user (leave-one-out).

Everything starts from the 0-based **rank** of the target: the number of other candidates
whose score is greater than *or equal to* the target's. Ties count against the target, so a
collapsed model (every score equal) ranks every target last instead of first, and a NaN or
infinite target score is ranked last; with float scores from a healthy model exact ties are
rare and the choice does not matter. With a single relevant item per user:

* ``recall@K`` (= HR@K, hit ratio) = 1 if rank < K else 0
* ``ndcg@K``  = 1 / log2(rank + 2) if rank < K else 0 (the ideal DCG is 1)
* ``mrr@K``   = 1 / (rank + 1) if rank < K else 0

Averages are over users. Functions work on torch tensors (on any device) and accept numpy.
"""

from __future__ import annotations

import numpy as np
import torch

DEFAULT_KS = (5, 10, 20)
METRICS = ("recall", "ndcg", "mrr")


def target_ranks(scores: torch.Tensor, target_scores: torch.Tensor, *, includes_target: bool = False) -> torch.Tensor:
    """0-based ranks: per row, the number of other candidates scored ``>=`` the target.

    ``scores``: (B, C); ``target_scores``: (B,). ``includes_target``: the target's own score
    is one of the C columns (full ranking), so one tie is the target itself. A non-finite
    target score gets the worst rank; NaN candidate scores never outrank the target.
    """
    t = target_scores.unsqueeze(1)
    ranks = (scores >= t).sum(1) - int(includes_target)
    worst = torch.full_like(ranks, scores.shape[1] - int(includes_target))
    return torch.where(torch.isfinite(target_scores), ranks.clamp_min(0), worst)


def metric_sums(ranks: torch.Tensor, ks=DEFAULT_KS) -> dict[str, torch.Tensor]:
    """Per-metric sums over users (0-d tensors, on the ranks' device), for accumulation."""
    ranks = torch.as_tensor(ranks)
    r = ranks.to(torch.float64)
    out = {}
    for k in ks:
        hit = ranks < k
        out[f"recall@{k}"] = hit.sum().to(torch.float64)
        out[f"ndcg@{k}"] = torch.where(hit, 1.0 / torch.log2(r + 2.0), torch.zeros_like(r)).sum()
        out[f"mrr@{k}"] = torch.where(hit, 1.0 / (r + 1.0), torch.zeros_like(r)).sum()
    return out


def metrics_from_ranks(ranks, ks=DEFAULT_KS) -> dict[str, float]:
    """Mean recall/ndcg/mrr at every K from 0-based ranks (numpy or torch)."""
    ranks = torch.as_tensor(np.asarray(ranks) if not torch.is_tensor(ranks) else ranks)
    if ranks.numel() == 0:
        raise ValueError("no ranks given")
    if (ranks < 0).any():
        raise ValueError("ranks must be >= 0")
    n = ranks.numel()
    return {name: float(v) / n for name, v in metric_sums(ranks.reshape(-1), ks).items()}


def metric_names(ks=DEFAULT_KS) -> list[str]:
    return [f"{m}@{k}" for k in ks for m in METRICS]
