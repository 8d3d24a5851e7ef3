"""GRU4Rec (Hidasi et al. 2016; the sequential variant of RecBole 1.2.1)."""

from __future__ import annotations

import torch
from torch import nn

from .common import SequentialRecommender
from .dropout import Dropout


class GRU4Rec(SequentialRecommender):
    """Item embedding -> dropout -> GRU -> linear back to the embedding size.

    Defaults as RecBole: embedding 64, GRU hidden 128, 1 layer, dropout 0.3, no GRU bias,
    Xavier init. The GRU runs over left-aligned sequences (padding after the items, so it
    never reads padding before a real item); inputs/outputs stay right-aligned.
    """

    causal = True

    def __init__(
        self,
        n_items: int,
        hidden: int = 64,
        max_len: int = 50,
        *,
        gru_hidden: int = 128,
        n_layers: int = 1,
        dropout: float = 0.3,
        **kw,
    ):
        super().__init__(n_items, hidden, max_len, **kw)
        self.emb_drop = Dropout(dropout)
        self.gru = nn.GRU(hidden, gru_hidden, num_layers=n_layers, bias=False, batch_first=True)
        self.dense = nn.Linear(gru_hidden, hidden)
        nn.init.xavier_normal_(self.item_emb.weight)
        with torch.no_grad():
            self.item_emb.weight[0].zero_()
        for name, p in self.gru.named_parameters():
            if name.startswith("weight"):
                nn.init.xavier_uniform_(p)

    def _init_item_table(self):  # keep the Xavier scale when re-initialising
        nn.init.xavier_normal_(self.item_emb.weight)
        with torch.no_grad():
            self.item_emb.weight[0].zero_()

    def encode(self, seq: torch.Tensor) -> torch.Tensor:
        self.check_width(seq)
        b, w = seq.shape
        n_pad = (seq == 0).sum(1, keepdim=True)
        cols = torch.arange(w, device=seq.device).unsqueeze(0)
        to_left = (cols + n_pad) % w  # left-aligned column j holds right-aligned column j + n_pad
        x = self.emb_drop(self.item_emb(seq.gather(1, to_left)))
        y, _ = self.gru(x)
        y = self.dense(y)
        to_right = (cols - n_pad) % w
        return y.gather(1, to_right.unsqueeze(-1).expand(b, w, y.shape[-1]))
