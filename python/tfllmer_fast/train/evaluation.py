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
    """Metrics of the targets in each group of items, from per-user ranks.

    ``groups`` maps a name to a boolean mask over items (see
    :func:`tfllmer_fast.data.cold.item_groups`); ``targets`` are the 0-based targets of the
    ranked users. See :func:`target_metrics` for the returned dicts.
    """
    targets = np.asarray(targets, dtype=np.int64)
    return target_metrics(ranks, {name: np.asarray(m, dtype=bool)[targets] for name, m in groups.items()}, ks)


def target_metrics(ranks, masks: dict, ks=DEFAULT_KS) -> dict[str, dict]:
    """Metrics of the ranked targets each boolean mask selects (one entry per ranked user,
    e.g. :func:`tfllmer_fast.data.cold.target_groups`). Each group's dict holds the metrics
    averaged over its targets and ``n_targets``; a group without targets holds
    ``n_targets`` = 0 only."""
    ranks = np.asarray(ranks)
    out = {}
    for name, mask in masks.items():
        sel = np.asarray(mask, dtype=bool)
        if sel.shape != ranks.shape:
            raise ValueError(f"group {name!r}: a mask of shape {sel.shape} for {ranks.shape[0]} ranked targets")
        n = int(sel.sum())
        out[name] = {**(metrics_from_ranks(ranks[sel], ks) if n else {}), "n_targets": n}
    return out


class Evaluator:
    """Ranks one model (or any object with ``next_hidden`` and ``score``, e.g. the
    baselines of :mod:`.baselines`) on the validation and test targets of a split, for all
    targets and per target group, with the options of ``evaluation``.

    Parameters
    ----------
    model : SequentialRecommender or a baseline
    split : LeaveOneOutSplit
    evaluation : EvalOptions, optional (default: ``EvalOptions()``)
    max_len : int, optional
        Input width (default: ``model.max_len``).
    device, seed, amp_dtype, threads :
        Where it runs, the sampled protocol's seed, autocast of the encoder, torch's CPU
        thread count while ranking (None: leave it alone).
    """

    def __init__(
        self, model, split: LeaveOneOutSplit, evaluation=None, *, max_len=None, device="cpu", seed=0,
        amp_dtype=None, threads=None,
    ):  # fmt: skip
        from .options import EvalOptions

        self.model, self.split = model, split
        self.options = evaluation or EvalOptions()
        self.max_len = int(max_len or model.max_len)
        self.device = torch.device(device)
        self.seed, self.amp_dtype, self.threads = seed, amp_dtype, threads
        self._data: dict[str, EvalData] = {}
        self._item_groups = None
        self._target_groups: dict[str, dict] = {}

    def data(self, which: str) -> EvalData:
        """The device tensors of ``which`` ("valid" or "test"), built once."""
        if which not in self._data:
            self._data[which] = build_eval_data(self.split, self.max_len, which, self.device)
        return self._data[which]

    def evaluate(self, which: str = "valid", *, protocol: str = "full", mask_history=None, return_ranks=False):
        """Metrics on the validation or test targets (see :func:`evaluate`)."""
        from .runtime import cpu_threads

        e = self.options
        # Always through cpu_threads: it also keeps idle OpenMP threads asleep while ranking.
        with cpu_threads(self.threads if self.threads is not None else torch.get_num_threads()):
            return evaluate(
                self.model,
                self.data(which),
                protocol=protocol,
                mask_history=e.mask_history if mask_history is None else mask_history,
                n_negatives=e.eval_negatives,
                seed=self.seed,
                ks=e.ks,
                batch_size=e.eval_batch_size,
                return_ranks=return_ranks,
                amp_dtype=self.amp_dtype,
            )

    def item_groups(self) -> dict:
        """Boolean item masks: head / tail, and warm / cold with cold items
        (:func:`tfllmer_fast.data.cold.item_groups`)."""
        from ..data.cold import item_groups

        if self._item_groups is None:
            self._item_groups = item_groups(self.split, self.options.head_share)
        return self._item_groups

    def target_groups(self, which: str) -> dict:
        """Boolean masks over the ``which`` targets: the item groups, repeat / explore and
        their crossings (:func:`tfllmer_fast.data.cold.target_groups`)."""
        from ..data.cold import target_groups

        if which not in self._target_groups:
            self._target_groups[which] = target_groups(self.split, which, self.item_groups())
        return self._target_groups[which]

    def evaluate_groups(self, which: str = "valid", *, protocol: str = "full", name: str | None = None) -> dict:
        """``{name: all targets, name_<group>: the targets of each group}`` from one ranking
        pass; every dict carries ``n_targets``. ``name`` defaults to ``which``."""
        name = which if name is None else name
        metrics, ranks = self.evaluate(which, protocol=protocol, return_ranks=True)
        out = {name: {**metrics, "n_targets": int(len(ranks))}}
        for g, m in target_metrics(ranks, self.target_groups(which), self.options.ks).items():
            out[f"{name}_{g}"] = m
        return out


def float_scores(model, h, items=None):
    """``model.score(h, items)`` in float32 with autocast off, as every ranking of the
    package computes it (under AMP only the encoder runs in low precision: ranks are
    sensitive to rounding ties)."""
    with torch.autocast(h.device.type, enabled=False):
        return model.score(h, items).float()
