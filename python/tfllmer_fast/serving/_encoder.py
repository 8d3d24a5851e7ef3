"""The sequence encoder as a function of 0-based ids (history -> user vector), and the item
vectors it is scored against.

``user_vector @ item_vector`` is the model's score:

* user vector ``u = output_hidden(next_hidden(history))`` (the head and the hidden
  normalisation included), plus a last coordinate 1 when the model has an output bias;
* item vector ``v_i = e_i' / temperature`` (``e_i'`` the scored row, normalised when
  ``normalize_items``), plus a last coordinate ``bias_i / temperature`` (BERT4Rec with
  unnormalised items: ``(<u, e_i> + b_i) / T``).

Inputs of :class:`UserEncoder` are right-aligned 0-based ids, padding ``-1`` on the left
(any negative id is padding), the most recent item last; only the last
:func:`input_width` columns are read (what evaluation reads). An id ``>= n_items`` is
sent to a row past the table, so the lookup fails instead of reading another row (in
BERT4Rec the row after the items is the mask token).
"""

from __future__ import annotations

import torch
from torch import nn


def input_width(model) -> int:
    """History items the model reads: ``max_len`` (BERT4Rec: ``max_len - 1``, the mask token
    takes the last position)."""
    return max(1, model.max_len - (0 if model.causal else 1))


def has_bias(model) -> bool:
    return model.output_bias() is not None


class UserEncoder(nn.Module):
    """``(batch, length)`` int64 ids (see the module docstring) -> ``(batch, dim)`` float32
    user vectors. Wraps ``model`` (in eval mode; no copy)."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.n_items = int(model.n_items)
        self.width = input_width(model)
        self.past_table = int(model.item_emb.weight.shape[0])
        self.bias = has_bias(model)

    def forward(self, item_ids: torch.Tensor) -> torch.Tensor:
        ids = item_ids[:, -self.width :]
        seq = torch.where(ids < 0, torch.zeros_like(ids), ids + 1)
        seq = torch.where(ids >= self.n_items, torch.full_like(ids, self.past_table), seq)
        u = self.model.output_hidden(self.model.next_hidden(seq)).float()
        if self.bias:
            u = torch.cat([u, torch.ones_like(u[:, :1])], dim=1)
        return u


@torch.no_grad()
def item_vectors(model) -> torch.Tensor:
    """(n_items, dim) float32 item vectors (see the module docstring), on the model's device."""
    with torch.autocast(model.item_emb.weight.device.type, enabled=False):
        v = model.item_table().detach().float()
        b = model.output_bias()
        if b is not None:
            v = torch.cat([v, b.detach().float().unsqueeze(1)], dim=1)
        return v / model.temperature if model.temperature != 1.0 else v.clone()
