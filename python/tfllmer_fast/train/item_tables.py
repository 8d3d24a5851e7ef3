"""How the item table is parametrised during training (``Config.item_table_mode``, :class:`~.options.ItemTableOptions`).

* ``free`` (default): a plain ``nn.Embedding``; training moves every row (the LLM table only
  initialises it).
* ``frozen``: the rows of the real items are a buffer, never updated: the trained space *is*
  the projected LLM space, so a new item's projected row is already a row of that space.
* ``frozen+delta``: the frozen rows plus a trainable ``delta`` (zero at the start), held
  small by an L2 penalty (``delta_l2``) and/or a per-row norm bound (``delta_bound``).

Both frozen tables keep what the backbones rely on: ``.weight`` is the full table (padding
row 0 = zeros, then the items, then extra tokens such as BERT4Rec's mask), and calling the
module looks rows up. Extra-token rows are not items and stay trainable (``extra``).

Penalty and bound are relative, so they mean the same at any table scale
(``init_scale``):

* penalty: ``delta_l2 * sum_i ||delta_i||^2 / sum_i ||p_i||^2`` added to every batch's loss
  (``p_i`` the frozen rows): ``delta_l2 = 1`` costs one nat when the delta carries as much
  energy as the table itself.
* bound: after every optimiser step, ``||delta_i|| <= delta_bound * ||p_i||`` for every row
  (longer deltas are scaled back onto the bound). Below 1 a row's direction then turns by at
  most ``asin(delta_bound)`` (14.5 degrees at 0.25) and its norm stays within ``1 +/- bound``
  of its frozen norm, which is what keeps frozen and new rows comparable under dot-product
  scoring.

Items outside training (the cold-start protocol) get exactly zero gradient, so their delta
stays exactly zero: their row is their projection.
"""

from __future__ import annotations

import torch
from torch import nn

from .options import ItemTableOptions

_TINY = 1e-30


class FrozenItemTable(nn.Module):
    """Frozen item rows (+ optional trainable delta) with ``nn.Embedding``'s interface.

    Parameters
    ----------
    weight : tensor (n_items + 1 + extra_tokens, hidden)
        The table to freeze: row 0 padding, rows ``1..n_items`` the items, then extra tokens.
    n_items : int
    delta : bool
        Add the trainable delta (``frozen+delta``).
    delta_l2, delta_bound : float, float or None
        Relative L2 penalty weight and per-row norm bound (see the module docstring).
    """

    def __init__(
        self,
        weight: torch.Tensor,
        n_items: int,
        *,
        delta: bool = False,
        delta_l2: float = 0.0,
        delta_bound: float | None = None,
    ):
        super().__init__()
        ItemTableOptions(mode="frozen+delta", delta_l2=delta_l2, delta_bound=delta_bound)  # checks them
        weight = weight.detach()
        self.n_items = int(n_items)
        base = weight[: n_items + 1].clone()
        base[0].zero_()
        self.register_buffer("base", base)
        n_extra = weight.shape[0] - n_items - 1
        self.extra = nn.Parameter(weight[n_items + 1 :].clone()) if n_extra else None
        self.delta = (
            nn.Parameter(torch.zeros(n_items, weight.shape[1], dtype=weight.dtype, device=weight.device))
            if delta
            else None
        )
        self.delta_l2 = float(delta_l2)
        self.delta_bound = None if delta_bound is None else float(delta_bound)

    @property
    def mode(self) -> str:
        return "frozen" if self.delta is None else "frozen+delta"

    @property
    def weight(self) -> torch.Tensor:
        rows = self.base[1:] if self.delta is None else self.base[1:] + self.delta
        parts = [self.base[:1], rows] + ([self.extra] if self.extra is not None else [])
        return torch.cat(parts)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return nn.functional.embedding(ids, self.weight)

    @torch.no_grad()
    def set_item_rows(self, table: torch.Tensor) -> None:
        """Freeze ``table`` (n_items, hidden) as the item rows; the delta restarts at zero."""
        self.base[1:] = table.to(self.base.device, self.base.dtype)
        if self.delta is not None:
            self.delta.zero_()

    def penalty(self) -> torch.Tensor | None:
        """The relative L2 penalty of the delta (None when off)."""
        if self.delta is None or not self.delta_l2:
            return None
        energy = self.base[1:].pow(2).sum().clamp_min(_TINY)
        return self.delta_l2 * self.delta.pow(2).sum() / energy

    @torch.no_grad()
    def project_(self) -> None:
        """Scale every delta row back onto its bound (a no-op without one)."""
        if self.delta is None or self.delta_bound is None:
            return
        # Just inside the bound, so that rounding never leaves a row above it.
        limit = (self.delta_bound * (1 - 1e-6)) * self.base[1:].norm(dim=1, keepdim=True)
        norm = self.delta.norm(dim=1, keepdim=True)
        over = norm > limit
        if over.any():
            self.delta.mul_(torch.where(over, limit / norm.clamp_min(_TINY), 1.0))

    def extra_repr(self) -> str:
        return f"n_items={self.n_items}, mode={self.mode!r}, delta_l2={self.delta_l2}, delta_bound={self.delta_bound}"


def configure_item_table(model, options: ItemTableOptions):
    """Give ``model`` the item table of ``options.mode`` (in place; returns the model). The
    frozen tables start from the model's current rows; ``set_item_table`` then replaces them."""
    if options.mode == "free":
        return model
    model.item_emb = FrozenItemTable(
        model.item_emb.weight,
        model.n_items,
        delta=options.mode == "frozen+delta",
        delta_l2=options.delta_l2,
        delta_bound=options.delta_bound,
    )
    return model


def item_table_mode(model) -> str:
    t = model.item_emb
    return t.mode if isinstance(t, FrozenItemTable) else "free"


def item_table_penalty(model) -> torch.Tensor | None:
    """The item table's term of the training objective (None: none)."""
    t = model.item_emb
    return t.penalty() if isinstance(t, FrozenItemTable) else None


def after_optimizer_step(model) -> None:
    """What the table needs after every optimiser step (the norm bound)."""
    t = model.item_emb
    if isinstance(t, FrozenItemTable):
        t.project_()


def delta_stats(model) -> dict | None:
    """Size of the delta relative to the frozen rows (None without a delta): the largest and
    the mean per-row ratio ``||delta_i|| / ||p_i||`` (rows with a zero frozen row left out)."""
    t = model.item_emb
    if not isinstance(t, FrozenItemTable) or t.delta is None:
        return None
    with torch.no_grad():
        pn = t.base[1:].norm(dim=1)
        dn = t.delta.norm(dim=1)
        keep = pn > 0
        ratio = (dn[keep] / pn[keep]).double()
        return {
            "max_ratio": float(ratio.max()) if ratio.numel() else 0.0,
            "mean_ratio": float(ratio.mean()) if ratio.numel() else 0.0,
            "rel_energy": float(dn.pow(2).sum() / pn.pow(2).sum().clamp_min(_TINY)),
        }
