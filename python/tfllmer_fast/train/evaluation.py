"""Leave-one-out evaluation on the device: full ranking and the sampled-negatives protocol.

* **Inputs.** Validation: the training history -> the validation target. Test: training
  history + validation item -> the test target. The model reads the last ``max_len`` items.
* **Full ranking** (default) scores every item. ``mask_history=False`` (default, as in
  RecBole's and most recent papers' full-ranking tables) keeps items the user already saw as
  candidates; ``mask_history=True`` sets the score of every item of the user's input history
  (the whole history, not just the last ``max_len``) to -inf, except the target itself.
* **Sampled** (``protocol="sampled"``): the target is ranked against ``n_negatives`` (100)
  items drawn uniformly with replacement from the items the user never interacted with
  (train + valid + test), from a generator seeded with ``seed`` (the same negatives every
  call). This is the protocol of older papers; its numbers are not comparable to full
  ranking.
* Rank = number of candidates with a strictly greater score (see :mod:`.metrics`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..data.sequences import LeaveOneOutSplit
from .metrics import DEFAULT_KS, metric_sums, metrics_from_ranks, target_ranks
from .rows import append_one, right_aligned

_SCORE_BUDGET = 1 << 25  # floats per score block (128 MiB in float32)


@dataclass
class EvalData:
    """Device tensors for one evaluation split (validation or test)."""

    inputs: torch.Tensor  # (n_users, max_len) shifted, right-aligned
    targets: torch.Tensor  # (n_users,) 0-based
    hist_offsets: torch.Tensor  # CSR of each user's full input history (0-based items)
    hist_items: torch.Tensor
    seen_keys: torch.Tensor  # sorted user * n_items + item over the whole sequence
    n_items: int
    order: torch.Tensor  # users by input length (CPU), so blocks can be trimmed
    input_len: torch.Tensor  # (n_users,) CPU


def build_eval_data(split: LeaveOneOutSplit, max_len: int, which: str, device: torch.device | str = "cpu") -> EvalData:
    """Tensors for ``which`` in {"valid", "test"} (see the module docstring)."""
    # The histories users really had (with the cold-start protocol, cold items included).
    train, n = split.history, split.n_items
    n_users = train.n_users
    if which == "valid":
        history = train
        targets = split.valid_targets
    elif which == "test":
        history = append_one(train, split.valid_targets)
        targets = split.test_targets
    else:
        raise ValueError(f"which must be 'valid' or 'test', got {which!r}")
    inputs = right_aligned(history, max_len)
    h_off, h_items = history.offsets, history.items
    # Every item of the user's whole sequence, for the sampled protocol's exclusions.
    users = np.repeat(np.arange(n_users, dtype=np.int64), train.lengths)
    keys = np.concatenate(
        [
            users * n + train.items,
            np.arange(n_users, dtype=np.int64) * n + split.valid_targets,
            np.arange(n_users, dtype=np.int64) * n + split.test_targets,
        ]
    )
    dev = torch.device(device)
    input_len = torch.as_tensor((inputs > 0).sum(1))
    return EvalData(
        order=torch.argsort(input_len, stable=True),
        input_len=input_len,
        inputs=torch.as_tensor(inputs, device=dev),
        targets=torch.as_tensor(np.asarray(targets, dtype=np.int64), device=dev),
        hist_offsets=torch.as_tensor(np.asarray(h_off, dtype=np.int64), device=dev),
        hist_items=torch.as_tensor(np.asarray(h_items, dtype=np.int64), device=dev),
        seen_keys=torch.as_tensor(np.unique(keys), device=dev),
        n_items=n,
    )


def _sample_negatives(
    data: EvalData, users: torch.Tensor, n_negatives: int, generator: torch.Generator, max_rounds: int = 100
) -> torch.Tensor:
    """(B, n_negatives) items each user never interacted with (uniform, with replacement).

    Draws on the CPU generator (reproducible on any device), redraws collisions with the
    user's items; users who interacted with (almost) every item keep a collision after
    ``max_rounds`` rounds rather than loop forever.
    """
    n = data.n_items
    b = users.numel()
    cand = torch.randint(n, (b, n_negatives), generator=generator).to(users.device)
    keys = data.seen_keys
    for _ in range(max_rounds):
        q = users.unsqueeze(1) * n + cand
        pos = torch.searchsorted(keys, q).clamp_(max=keys.numel() - 1)
        bad = keys[pos] == q
        if not bad.any():
            break
        redraw = torch.randint(n, (b, n_negatives), generator=generator).to(users.device)
        cand = torch.where(bad, redraw, cand)
    return cand


@torch.no_grad()
def evaluate(
    model,
    data: EvalData,
    *,
    protocol: str = "full",
    mask_history: bool = False,
    n_negatives: int = 100,
    seed: int = 0,
    ks=DEFAULT_KS,
    batch_size: int | None = None,
    return_ranks: bool = False,
    amp_dtype=None,
):
    """Metrics of ``model`` on ``data``: ``{"recall@10": ..., "ndcg@10": ..., ...}``.

    Parameters
    ----------
    protocol : {"full", "sampled"}
    mask_history : bool
        Full ranking only: exclude the user's history items from the candidates.
    n_negatives, seed : int
        Sampled protocol: negatives per user and the generator seed.
    batch_size : int, optional
        Users per block; default 512 on the CPU, 8192 on a GPU, and a score block under
        2**25 floats.
    return_ranks : bool
        Also return the per-user 0-based ranks (numpy int64).
    """
    if protocol not in ("full", "sampled"):
        raise ValueError(f"protocol must be 'full' or 'sampled', got {protocol!r}")
    n_users, n = data.inputs.shape[0], data.n_items
    if batch_size is None:
        # Blocks of users sorted by history length, each trimmed to its longest history:
        # small blocks on the CPU waste little on padding; the GPU prefers big blocks.
        cap = 512 if data.inputs.device.type == "cpu" else 8192
        batch_size = max(1, min(n_users, cap, _SCORE_BUDGET // max(n, n_negatives + 1)))
    was_training = model.training
    model.eval()
    dev = data.inputs.device
    gen = torch.Generator().manual_seed(seed)
    sums = None
    all_ranks = []
    try:
        for a in range(0, n_users, batch_size):
            users_cpu = data.order[a : a + batch_size]
            width = max(1, int(data.input_len[users_cpu].max()))
            users = users_cpu.to(dev)
            with torch.autocast(dev.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                h = model.next_hidden(data.inputs[users][:, -width:])
            h = h.float()
            tgt = data.targets[users]
            if protocol == "full":
                scores = float_scores(model, h, None)
                tscore = scores.gather(1, tgt.unsqueeze(1)).squeeze(1)
                if mask_history:
                    lo, hi = data.hist_offsets[users], data.hist_offsets[users + 1]
                    cnt = hi - lo
                    rows = torch.repeat_interleave(torch.arange(users.numel(), device=dev), cnt)
                    within = torch.arange(int(cnt.sum()), device=dev) - torch.repeat_interleave(
                        torch.cumsum(cnt, 0) - cnt, cnt
                    )
                    items = data.hist_items[torch.repeat_interleave(lo, cnt) + within]
                    scores[rows, items] = float("-inf")
                    # The target keeps its score even when it is in the history.
                    scores.scatter_(1, tgt.unsqueeze(1), tscore.unsqueeze(1))
                ranks = target_ranks(scores, tscore, includes_target=True)
            else:
                neg = _sample_negatives(data, users, n_negatives, gen)
                cand = torch.cat([tgt.unsqueeze(1), neg], dim=1)
                scores = float_scores(model, h, cand)
                ranks = target_ranks(scores[:, 1:], scores[:, 0])
            part = metric_sums(ranks, ks)
            sums = part if sums is None else {k: sums[k] + v for k, v in part.items()}
            if return_ranks:
                all_ranks.append((users_cpu, ranks.cpu()))
    finally:
        model.train(was_training)
    if sums is None:
        raise ValueError("no users to evaluate (the evaluation data is empty)")
    metrics = {k: float(v) / n_users for k, v in sums.items()}
    if return_ranks:
        out = np.empty(n_users, dtype=np.int64)
        for u, r in all_ranks:
            out[u.numpy()] = r.numpy()
        return metrics, out
    return metrics


def group_metrics(ranks, targets, groups: dict, ks=DEFAULT_KS) -> dict[str, dict]:
    """Metrics of the targets in each group, from per-user ranks.

    ``groups`` maps a name to a boolean mask over items (see
    :func:`tfllmer_fast.data.cold.item_groups`); ``targets`` are the 0-based targets of the
    ranked users. Each group's dict holds the metrics averaged over its targets and
    ``n_targets``; a group without targets holds ``n_targets`` = 0 only.
    """
    ranks = np.asarray(ranks)
    targets = np.asarray(targets, dtype=np.int64)
    out = {}
    for name, mask in groups.items():
        sel = np.asarray(mask, dtype=bool)[targets]
        n = int(sel.sum())
        out[name] = {**(metrics_from_ranks(ranks[sel], ks) if n else {}), "n_targets": n}
    return out


def float_scores(model, h, items=None):
    """``model.score(h, items)`` in float32 with autocast off, as every ranking of the
    package computes it (under AMP only the encoder runs in low precision: ranks are
    sensitive to rounding ties)."""
    with torch.autocast(h.device.type, enabled=False):
        return model.score(h, items).float()
