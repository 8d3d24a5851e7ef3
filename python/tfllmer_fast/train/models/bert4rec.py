"""BERT4Rec (Sun et al. 2019) with RecBole 1.2.1's default hyper-parameters."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..sampling import rand
from .common import TransformerBackbone


class BERT4Rec(TransformerBackbone):
    """Bidirectional self-attention trained by masked-item prediction (cloze).

    Defaults as RecBole: hidden 64, 2 layers, 2 heads, inner 256, dropout 0.2, mask ratio 0.2,
    an output head (dense -> GELU -> LayerNorm) and a per-item output bias (the bias is left
    out when item embeddings are normalised, so that scores stay pure cosines). The mask
    token is table row ``n_items + 1``. At prediction time the history is followed by the
    mask token (the oldest item drops out when the history already fills ``max_len``).

    Training windows: each window's items are masked independently with probability
    ``mask_ratio`` (at least one per window: the last item when none was drawn); the loss
    covers the masked positions only.
    """

    causal = False

    def __init__(
        self,
        n_items: int,
        hidden: int = 64,
        max_len: int = 50,
        *,
        n_layers: int = 2,
        n_heads: int = 2,
        inner_size: int = 256,
        hidden_dropout: float = 0.2,
        attn_dropout: float = 0.2,
        layer_norm_eps: float = 1e-12,
        mask_ratio: float = 0.2,
        **kw,
    ):
        if not 0 < mask_ratio <= 1:
            raise ValueError(f"mask_ratio must be in (0, 1], got {mask_ratio}")
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
            extra_tokens=1,
            **kw,
        )
        self.mask_ratio = float(mask_ratio)
        self.mask_token = n_items + 1
        self.head = nn.Linear(hidden, hidden)
        self.head_ln = nn.LayerNorm(hidden, eps=layer_norm_eps)
        self.bias = None if self.normalize_items else nn.Parameter(torch.zeros(n_items))
        self._reset_parameters()

    def _attention_mask(self, seq: torch.Tensor) -> torch.Tensor:
        # Bidirectional; padding keys hidden; padding queries see themselves (no empty row).
        w = seq.shape[1]
        eye = torch.eye(w, dtype=torch.bool, device=seq.device)
        return ((seq > 0)[:, None, :] | eye).unsqueeze(1)

    def output_hidden(self, h: torch.Tensor) -> torch.Tensor:
        return super().output_hidden(self.head_ln(F.gelu(self.head(h))))

    def output_bias(self):
        return self.bias

    def next_hidden(self, seq: torch.Tensor) -> torch.Tensor:
        b, w = seq.shape
        if w >= self.max_len:
            seq = seq[:, w - self.max_len + 1 :]
        mask = torch.full((b, 1), self.mask_token, dtype=seq.dtype, device=seq.device)
        return self.encode(torch.cat([seq, mask], dim=1), last_only=True)[:, -1]

    def training_pairs(self, window: torch.Tensor, generator: torch.Generator | None = None):
        x = window[:, 1:] if window.shape[1] > self.max_len else window
        real = x > 0
        draw = rand(x.shape, x.device, generator) < self.mask_ratio
        masked = draw & real
        none = ~masked.any(1)
        masked[:, -1] |= none  # the last column is always a real item (right alignment)
        inp = torch.where(masked, torch.full_like(x, self.mask_token), x)
        h = self.encode(inp)
        return h[masked], x[masked] - 1
