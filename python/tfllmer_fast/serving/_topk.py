"""Scores of a block of users and their top-k, ties broken by the smaller item id.

The scores are the model's scoring path with the item table computed once
(:func:`scorer`): ``model.score`` recomputes the normalised table on every call, which costs
as much as the product itself for a million items. The arithmetic is ``score``'s, step for
step (a test checks that the two agree bit for bit).
"""

from __future__ import annotations

import torch


class Scorer:
    """The model's scores ``score(h)`` over a fixed candidate set, in float32.

    ``cols``: sorted 0-based ids of the candidates (``None``: every item, column ``i`` =
    item ``i``); ``banned``: ids scored ``-inf`` (only with ``cols=None``)."""

    def __init__(self, model, cols: torch.Tensor | None = None, banned: torch.Tensor | None = None):
        self.model = model
        with torch.no_grad(), torch.autocast(model.item_emb.weight.device.type, enabled=False):
            table = model.item_table().detach().float()
            bias = model.output_bias()
            bias = None if bias is None else bias.detach().float()
        if cols is not None:
            table = table[cols]
            bias = None if bias is None else bias[cols]
        self.table_t = table.t()
        self.bias = bias
        self.temperature = model.temperature
        self.cols = cols
        self.banned = banned
        self.n_cols = table.shape[0]

    @torch.no_grad()
    def __call__(self, h: torch.Tensor) -> torch.Tensor:
        with torch.autocast(h.device.type, enabled=False):
            logits = self.model.output_hidden(h.float()) @ self.table_t
            if self.bias is not None:
                logits = logits + self.bias
            if self.temperature != 1.0:
                logits = logits / self.temperature
            if self.banned is not None and self.banned.numel():
                logits[:, self.banned] = float("-inf")
            return logits


def mask_rows(scores: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> None:
    """``scores[rows, cols] = -inf`` (the seen items of each user)."""
    if rows.numel():
        scores[rows, cols] = float("-inf")


def top_k(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(values, columns) of each row's ``k`` best scores, best first, equal scores by the
    smaller column; ``-inf`` entries are what is left when a row has fewer than ``k``
    finite scores (the caller marks them as padding).

    ``torch.topk`` breaks ties in no documented order, so rows whose k-th value is tied
    with a score it left out are ranked again exactly (they are rare but for repeated
    rows of the item table)."""
    vals, cols = torch.topk(scores, k, dim=1, sorted=True)
    # Within the chosen k: by value, then by column.
    cols, perm = torch.sort(cols, dim=1)
    vals = vals.gather(1, perm)
    order = torch.sort(vals, dim=1, descending=True, stable=True).indices
    vals, cols = vals.gather(1, order), cols.gather(1, order)
    kth = vals[:, -1:]
    finite = torch.isfinite(kth).squeeze(1)
    n_tied_all = (scores == kth).sum(1)
    n_tied_kept = (vals == kth).sum(1)
    redo = torch.nonzero(finite & (n_tied_all > n_tied_kept)).squeeze(1).tolist()
    for r in redo:
        cand = torch.nonzero(scores[r] >= kth[r]).squeeze(1)  # ascending columns
        best = torch.sort(scores[r, cand], descending=True, stable=True).indices[:k]
        cols[r] = cand[best]
        vals[r] = scores[r, cols[r]]
    return vals, cols
