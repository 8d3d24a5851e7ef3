"""Parts shared by the sequential backbones: the item table and the (normalised) scoring head.

Conventions inside every model (the public API stays 0-based):

* Model inputs hold *shifted* ids: ``item + 1``; ``0`` is padding (row 0 of the table, always
  zero, never scored). BERT4Rec adds one more row for its mask token.
* Sequences are **right-aligned**: the most recent item is the last column, padding is on the
  left. Position ids count from each row's first real item (``positions="from_start"``,
  RecBole's convention) or from the last column (``"from_end"``, the SASRec paper's); either
  way trimming all-padding columns on the left of a batch changes nothing (the trainer does
  this to skip wasted work).
* Scores are over the ``n_items`` real items only, column ``i`` = item ``i`` (0-based).

Scoring: ``logits = <h', e_i'> / temperature`` where ``e_i' = e_i / ||e_i||`` when
``normalize_items`` is on (TF-LLMER) and ``e_i`` otherwise, and likewise ``h'`` for
``normalize_hidden``. With both off and temperature 1 this is RecBole's plain dot product.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..options import POSITIONS
from .dropout import Dropout, attention

_EPS = 1e-12


class SequentialRecommender(nn.Module):
    """Base class: item table + scoring; subclasses implement :meth:`encode`.

    Parameters
    ----------
    n_items : int
        Number of real items (0-based ids ``0..n_items-1``).
    hidden : int
        Item-embedding / representation size.
    max_len : int
        Longest history the model reads.
    normalize_items, normalize_hidden : bool
        L2-normalise item embeddings / sequence representations in the scoring path.
    temperature : float
        Divides the logits (use < 1 when both sides are normalised, e.g. 0.05-0.2).
    extra_tokens : int
        Extra table rows after the items (BERT4Rec's mask token).
    """

    #: True for next-item models (every position predicts the next item), False for
    #: masked-item models (BERT4Rec).
    causal: bool = True

    def __init__(
        self,
        n_items: int,
        hidden: int = 64,
        max_len: int = 50,
        *,
        normalize_items: bool = False,
        normalize_hidden: bool = False,
        temperature: float = 1.0,
        init_std: float = 0.02,
        extra_tokens: int = 0,
    ):
        super().__init__()
        if n_items < 1:
            raise ValueError(f"n_items must be >= 1, got {n_items}")
        if hidden < 1 or max_len < 1:
            raise ValueError("hidden and max_len must be >= 1")
        if not (temperature > 0 and math.isfinite(temperature)):
            raise ValueError(f"temperature must be a positive number, got {temperature}")
        self.n_items = int(n_items)
        self.hidden = int(hidden)
        self.max_len = int(max_len)
        self.normalize_items = bool(normalize_items)
        self.normalize_hidden = bool(normalize_hidden)
        self.temperature = float(temperature)
        self.init_std = float(init_std)
        self.item_emb = nn.Embedding(n_items + 1 + extra_tokens, hidden, padding_idx=0)

    # ----- item table -------------------------------------------------------------------
    def _init_item_table(self):
        nn.init.normal_(self.item_emb.weight, 0.0, self.init_std)
        with torch.no_grad():
            self.item_emb.weight[0].zero_()

    @torch.no_grad()
    def set_item_table(self, table) -> None:
        """Overwrite the rows of the real items with ``table`` (n_items, hidden), 0-based."""
        table = torch.as_tensor(table, dtype=self.item_emb.weight.dtype)
        if table.shape != (self.n_items, self.hidden):
            raise ValueError(f"item table must have shape ({self.n_items}, {self.hidden}), got {tuple(table.shape)}")
        if not torch.isfinite(table).all():
            raise ValueError("item table contains NaN or Inf")
        if hasattr(self.item_emb, "set_item_rows"):  # a frozen table (train.item_tables)
            self.item_emb.set_item_rows(table)
            return
        self.item_emb.weight[1 : self.n_items + 1] = table.to(self.item_emb.weight.device)

    def item_table(self) -> torch.Tensor:
        """The scored item embeddings (n_items, hidden), normalised when configured."""
        e = self.item_emb.weight[1 : self.n_items + 1]
        return F.normalize(e, dim=-1, eps=_EPS) if self.normalize_items else e

    def output_hidden(self, h: torch.Tensor) -> torch.Tensor:
        """Sequence representation as used for scoring (a head, normalisation)."""
        return F.normalize(h, dim=-1, eps=_EPS) if self.normalize_hidden else h

    def output_bias(self) -> torch.Tensor | None:
        return None

    def score(self, h: torch.Tensor, items: torch.Tensor | None = None) -> torch.Tensor:
        """Logits of representations ``h`` (..., hidden).

        ``items=None``: against every item -> (..., n_items). Otherwise ``items`` holds 0-based
        ids: shape (K,) scores against a shared candidate set -> (..., K); shape (..., K) with
        the leading shape of ``h`` scores per-row candidates -> (..., K).
        """
        h = self.output_hidden(h)
        bias = self.output_bias()
        if items is None:
            logits = h @ self.item_table().t()
            if bias is not None:
                logits = logits + bias
        else:
            e = self.item_emb(items + 1)
            if self.normalize_items:
                e = F.normalize(e, dim=-1, eps=_EPS)
            if items.dim() == 1:
                logits = h @ e.t()
            else:
                logits = (h.unsqueeze(-2) * e).sum(-1)
            if bias is not None:
                logits = logits + bias[items]
        return logits / self.temperature if self.temperature != 1.0 else logits

    # ----- sequence side ----------------------------------------------------------------
    def encode(self, seq: torch.Tensor) -> torch.Tensor:
        """Representations at every position, (B, W, hidden), for right-aligned ``seq``."""
        raise NotImplementedError

    def check_width(self, seq: torch.Tensor) -> None:
        """A model reads at most ``max_len`` items: wider input is an error, not a silent cut."""
        if seq.shape[1] > self.max_len:
            raise ValueError(f"sequence width {seq.shape[1]} exceeds max_len {self.max_len}")

    def next_hidden(self, seq: torch.Tensor) -> torch.Tensor:
        """Representation that predicts the item after each right-aligned history, (B, hidden)."""
        return self.encode(seq)[:, -1]

    def training_pairs(self, window: torch.Tensor, generator: torch.Generator | None = None):
        """From a batch of right-aligned training windows (B, W+1) of shifted ids, return
        ``(h, targets)``: representations (T, hidden) of every non-padding prediction point
        and their 0-based target items (T,). Next-item models: input ``window[:, :-1]``,
        targets ``window[:, 1:]`` (each target predicted once, from its whole prefix)."""
        inp, tgt = window[:, :-1], window[:, 1:]
        keep = inp > 0  # the target after a real item is real (right alignment)
        h = self.encode(inp)
        return h[keep], tgt[keep] - 1

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        """Scores over all items for the next item after each history, (B, n_items)."""
        return self.score(self.next_hidden(seq))


class TransformerLayer(nn.Module):
    """Post-LayerNorm transformer block as in RecBole (attention + GELU feed-forward)."""

    def __init__(self, hidden: int, n_heads: int, inner: int, hidden_dropout: float, attn_dropout: float, eps: float):
        super().__init__()
        if hidden % n_heads:
            raise ValueError(f"hidden ({hidden}) must be a multiple of n_heads ({n_heads})")
        self.n_heads = n_heads
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.proj = nn.Linear(hidden, hidden)
        self.ln1 = nn.LayerNorm(hidden, eps=eps)
        self.ff1 = nn.Linear(hidden, inner)
        self.ff2 = nn.Linear(inner, hidden)
        self.ln2 = nn.LayerNorm(hidden, eps=eps)
        self.drop = Dropout(hidden_dropout)
        self.attn_dropout = attn_dropout

    def forward(self, x: torch.Tensor, mask: torch.Tensor, last_only: bool = False) -> torch.Tensor:
        """(b, w, h) -> (b, w, h); with ``last_only`` only the last position's output,
        (b, 1, h): its query attends to every key as in the full pass, and no other
        position is projected, attended from or fed forward (the last layer of a model
        read at one position needs nothing more)."""
        b, w, h = x.shape
        nh, d = self.n_heads, h // self.n_heads
        if last_only:  # qkv's weight rows: queries, keys, values
            wt, bias = self.qkv.weight, self.qkv.bias
            q = F.linear(x[:, -1:], wt[:h], bias[:h]).view(b, 1, nh, d).transpose(1, 2)
            k, v = F.linear(x, wt[h:], bias[h:]).view(b, w, 2, nh, d).permute(2, 0, 3, 1, 4)
            mask, x, w = mask[..., -1:, :], x[:, -1:], 1
        else:
            q, k, v = self.qkv(x).view(b, w, 3, nh, d).permute(2, 0, 3, 1, 4)
        a = attention(q, k, v, mask, self.attn_dropout, self.training)
        a = a.transpose(1, 2).reshape(b, w, h)
        x = self.ln1(x + self.drop(self.proj(a)))
        return self.ln2(x + self.drop(self.ff2(F.gelu(self.ff1(x)))))


class TransformerBackbone(SequentialRecommender):
    """Item + position embeddings, LayerNorm, dropout, a stack of :class:`TransformerLayer`.

    ``positions="from_start"`` (default, as RecBole): an item's position id is its index in
    the row's history, 0 = the oldest item read. With causal attention the output at
    position k is then exactly what a separate forward pass over the prefix ending there
    would give, so training every position of a window is RecBole's one-sample-per-prefix
    epoch, and the query at evaluation sits where training queries of that length sat.
    ``"from_end"``: the last column is position ``max_len - 1`` (the SASRec paper's
    left-padding); every evaluation query then sits at ``max_len - 1``, but of a training
    window's queries only the last does (the others sit earlier, by how many items follow).
    """

    def __init__(
        self,
        n_items,
        hidden=64,
        max_len=50,
        *,
        n_layers=2,
        n_heads=2,
        inner_size=256,
        hidden_dropout=0.5,
        attn_dropout=0.5,
        layer_norm_eps=1e-12,
        positions="from_start",
        **kw,
    ):
        super().__init__(n_items, hidden, max_len, **kw)
        if positions not in POSITIONS:
            raise ValueError(f"positions must be one of {POSITIONS}, got {positions!r}")
        self.positions = positions
        self.pos_emb = nn.Embedding(max_len, hidden)
        self.ln = nn.LayerNorm(hidden, eps=layer_norm_eps)
        self.drop = Dropout(hidden_dropout)
        self.layers = nn.ModuleList(
            TransformerLayer(hidden, n_heads, inner_size, hidden_dropout, attn_dropout, layer_norm_eps)
            for _ in range(n_layers)
        )

    def _reset_parameters(self):
        # RecBole's _init_weights: N(0, 0.02) for linear/embedding weights, zero biases,
        # unit LayerNorms.
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, 0.0, self.init_std)
                if isinstance(m, nn.Linear) and m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        self._init_item_table()

    def _attention_mask(self, seq: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def encode(self, seq: torch.Tensor, last_only: bool = False) -> torch.Tensor:
        """(B, W, hidden); with ``last_only`` (B, 1, hidden), the last position's only: the
        last layer then skips every other position (see :meth:`TransformerLayer.forward`)."""
        self.check_width(seq)
        w = seq.shape[1]
        if self.positions == "from_end":
            pos = torch.arange(self.max_len - w, self.max_len, device=seq.device)
        else:  # index from the row's first real item; padding (on the left) gets 0, masked anyway
            n_pad = w - (seq > 0).sum(dim=1, keepdim=True)
            pos = (torch.arange(w, device=seq.device) - n_pad).clamp_(min=0)
        x = self.drop(self.ln(self.item_emb(seq) + self.pos_emb(pos)))
        mask = self._attention_mask(seq)
        for i, layer in enumerate(self.layers):
            x = layer(x, mask, last_only and i == len(self.layers) - 1)
        return x

    def next_hidden(self, seq: torch.Tensor) -> torch.Tensor:
        return self.encode(seq, last_only=True)[:, -1]
