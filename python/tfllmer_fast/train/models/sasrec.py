"""SASRec (Kang & McAuley 2018) with RecBole 1.2.1's default hyper-parameters."""

from __future__ import annotations

import torch

from .common import TransformerBackbone


class SASRec(TransformerBackbone):
    """Causal self-attention over the history; position t predicts item t+1.

    Defaults as RecBole: hidden 64, 2 layers, 2 heads, inner size 256, GELU, hidden and
    attention dropout 0.5, LayerNorm eps 1e-12, N(0, 0.02) init, max length 50.
    """

    causal = True

    def __init__(
        self,
        n_items: int,
        hidden: int = 64,
        max_len: int = 50,
        *,
        n_layers: int = 2,
        n_heads: int = 2,
        inner_size: int = 256,
        hidden_dropout: float = 0.5,
        attn_dropout: float = 0.5,
        layer_norm_eps: float = 1e-12,
        **kw,
    ):
        super().__init__(
            n_items,
            hidden,
            max_len,
            n_layers=n_layers,
            n_heads=n_heads,
            inner_size=inner_size,
            hidden_dropout=hidden_dropout,
            attn_dropout=attn_dropout,
            layer_norm_eps=layer_norm_eps,
            **kw,
        )
        self._reset_parameters()

    def _attention_mask(self, seq: torch.Tensor) -> torch.Tensor:
        # Causal and never attending to padding keys. Padding queries may attend to
        # themselves so that no softmax row is empty (their outputs are never used, and real
        # positions never see them).
        w = seq.shape[1]
        causal = torch.ones(w, w, dtype=torch.bool, device=seq.device).tril_()
        eye = torch.eye(w, dtype=torch.bool, device=seq.device)
        return (causal & ((seq > 0)[:, None, :] | eye)).unsqueeze(1)
