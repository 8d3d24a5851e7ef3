"""Trivial baselines, ranked by the same evaluation code as the trained models.

Each baseline is a torch module without parameters that has the two methods
:func:`.evaluation.evaluate` reads from a model, ``next_hidden(seq)`` (right-aligned shifted
ids, 0 = padding -> one row per history) and ``score(h, items=None)``, so its ranks, the
ties rule, history masking, the sampled protocol and every target group are exactly those
of a trained model (:class:`.evaluation.Evaluator` ranks both).

* ``popularity``: items by their training interactions (the training part of the split:
  with the cold-start protocol cold items count 0), ties by the smaller id. The score of an
  item is ``n_items - position`` in that order: a strict order, exact in float32.
* ``last-item``: the most recent input item first, then popularity (a repeat rule: it
  ranks every target that equals the last item first, and says nothing about new items).
* ``llm-knn``: no training at all; items ranked by the cosine of their L2-normalised rows
  (the LLM embeddings, or any table such as the Rec-PCA rows) with the mean of the
  normalised rows of the last ``window`` input items. With ``exclude_inputs`` (default)
  the items of the input are ranked below every other item: a neighbour rule recommends
  what is *like* the history, not the history itself, so its ``repeat`` targets rank low
  by construction and its ``explore`` figures are the no-training reference for new and
  cold items (which it ranks like any other: it needs no interaction at all).

The ``h`` these modules pass from ``next_hidden`` to ``score`` carries what they need
(the last item's id, the input ids) as float32 columns, exact for ids below 2**24.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .options import BASELINES

#: Input items the llm-knn query averages by default; ``run_baseline`` and the study choose it
#: on validation (among 1, 3, 5 and 10, 3 won on Scientific's validation targets, 1 on
#: MovieLens-100K's).
KNN_WINDOW = 3


class Baseline(nn.Module):
    """Base of the baselines: ``n_items``, ``max_len`` (the input width it reads) and the
    ``causal`` flag the evaluation code expects of a model."""

    causal = True
    name = "baseline"

    def __init__(self, n_items: int, max_len: int = 50):
        super().__init__()
        if n_items < 1 or max_len < 1:
            raise ValueError(f"a baseline needs n_items >= 1 and max_len >= 1, got {n_items}, {max_len}")
        self.n_items, self.max_len = int(n_items), int(max_len)

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        """Scores over all items, (B, n_items)."""
        return self.score(self.next_hidden(seq))

    @staticmethod
    def _pick(full: torch.Tensor, items: torch.Tensor | None) -> torch.Tensor:
        """Scores (B, n_items), a fresh tensor (the evaluation writes into it when it masks
        the history) -> those of ``items`` (K,) or (B, K)."""
        if items is None:
            return full
        if items.dim() == 1:
            return full[:, items]
        return full.gather(1, items)


def popularity_scores(counts) -> np.ndarray:
    """float32 ``n - position`` of each item in the order by count (descending), ties by
    the smaller id: a strict order, so the ties rule of the metrics never applies."""
    counts = np.asarray(counts, dtype=np.int64)
    n = counts.size
    order = np.lexsort((np.arange(n), -counts))
    out = np.empty(n, dtype=np.float32)
    out[order] = np.arange(n, 0, -1, dtype=np.float32)
    return out


class Popularity(Baseline):
    """Training counts, ties by the smaller id (see the module docstring)."""

    name = "popularity"

    def __init__(self, counts, max_len: int = 50):
        counts = np.asarray(counts)
        super().__init__(counts.size, max_len)
        self.register_buffer("pop", torch.as_tensor(popularity_scores(counts)))

    def next_hidden(self, seq: torch.Tensor) -> torch.Tensor:
        return torch.zeros(seq.shape[0], 1, device=seq.device)

    def score(self, h: torch.Tensor, items: torch.Tensor | None = None) -> torch.Tensor:
        return self._pick(self.pop.unsqueeze(0).repeat(h.shape[0], 1), items)


class LastItem(Popularity):
    """The most recent input item first, then popularity."""

    name = "last-item"

    def next_hidden(self, seq: torch.Tensor) -> torch.Tensor:
        return (seq[:, -1:] - 1).float()  # -1 for an empty history: nothing is lifted

    def score(self, h: torch.Tensor, items: torch.Tensor | None = None) -> torch.Tensor:
        last = h[:, 0].long()
        full = self.pop.unsqueeze(0).repeat(h.shape[0], 1)
        rows = (last >= 0).nonzero(as_tuple=True)[0]
        full[rows, last[rows]] += float(self.n_items + 1)  # above every popularity score
        return self._pick(full, items)


class LLMKNN(Baseline):
    """Cosine of each item's normalised row with the mean normalised row of the last
    ``window`` input items; ``exclude_inputs``: the input items rank below all others.
    All-zero rows (items without text) have no direction: they rank below every item
    that has one and add nothing to a query."""

    name = "llm-knn"

    def __init__(self, rows, max_len: int = 50, window: int = KNN_WINDOW, exclude_inputs: bool = True):
        rows = np.asarray(rows, dtype=np.float64)
        if rows.ndim != 2 or rows.shape[0] < 1:
            raise ValueError(f"llm-knn needs a 2-D table of item rows, got shape {rows.shape}")
        if not np.isfinite(rows).all():
            raise ValueError("llm-knn: the item rows contain NaN or Inf")
        norms = np.linalg.norm(rows, axis=1)
        no_direction = norms == 0
        if no_direction.any():
            warnings.warn(
                f"llm-knn: {int(no_direction.sum())} all-zero item row(s) (items without text?) rank last",
                stacklevel=2,
            )
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise ValueError(f"window must be an integer >= 1, got {window!r}")
        super().__init__(rows.shape[0], max_len)
        self.window, self.exclude_inputs = min(window, self.max_len), bool(exclude_inputs)
        unit = rows / np.where(no_direction, 1.0, norms)[:, None]
        self.register_buffer("rows", torch.as_tensor(unit, dtype=torch.float32))
        self.register_buffer("no_direction", torch.as_tensor(no_direction))

    def next_hidden(self, seq: torch.Tensor) -> torch.Tensor:
        recent = seq[:, -self.window :]
        e = self.rows[(recent - 1).clamp_min(0)] * (recent > 0).unsqueeze(-1)
        query = F.normalize(e.sum(1), dim=-1, eps=1e-12)
        return torch.cat([query, seq.float()], dim=1)  # the ids ride along for exclude_inputs

    def score(self, h: torch.Tensor, items: torch.Tensor | None = None) -> torch.Tensor:
        d = self.rows.shape[1]
        full = h[:, :d] @ self.rows.t()
        full[:, self.no_direction] = -1.5  # below every cosine, above the excluded inputs
        if self.exclude_inputs:
            ids = h[:, d:].long()
            r, c = (ids > 0).nonzero(as_tuple=True)
            full[r, ids[r, c] - 1] = -2.0  # below every cosine
        return self._pick(full, items)


def make_baseline(name: str, split, *, rows=None, max_len: int = 50, **kwargs) -> Baseline:
    """The baseline ``name`` (one of :data:`BASELINES`) for ``split`` (a LeaveOneOutSplit):
    popularity counts from its training part; ``rows`` (n_items, D): the item rows of
    ``llm-knn`` (e.g. the dataset's LLM embeddings); ``kwargs`` go to its class."""
    counts = np.bincount(split.train.items, minlength=split.n_items)
    if name == "popularity":
        return Popularity(counts, max_len, **kwargs)
    if name == "last-item":
        return LastItem(counts, max_len, **kwargs)
    if name == "llm-knn":
        if rows is None:
            raise ValueError("the llm-knn baseline needs item rows (the dataset's LLM embeddings): none given")
        if np.asarray(rows).shape[0] != split.n_items:
            raise ValueError(f"llm-knn: {np.asarray(rows).shape[0]} item rows for {split.n_items} items")
        return LLMKNN(rows, max_len, **kwargs)
    raise ValueError(f"unknown baseline {name!r}; choose one of {', '.join(BASELINES)}")
