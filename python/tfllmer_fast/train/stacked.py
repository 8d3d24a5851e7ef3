"""Forward passes of K models of one shape at once, on stacked parameters (K, ...).

Used by :mod:`.group`. Each op runs once for all K models (batched matrix products, one
attention, one LayerNorm), while everything random stays per model: model ``k``'s dropout
masks are drawn from its own generator, with the shapes, in the order and with the draws
(:func:`~.models.dropout.dropout_noise`) of the lone model's forward pass, which draws them
from torch's global generator. A model in a group therefore sees the masks it would see
alone.

Batches of the K models hold different rows (each model has its own data order), so they
may have different widths; the stack is as wide as the widest, the extra columns are padding
on the left (masked as keys, never read as outputs) and each model's masks are placed
where its own columns are. A group that must match lone runs bit for bit stacks equal
widths only (see :mod:`.group`). Parameter names are those of the lone module.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F

from .models import GRU4Rec, SASRec
from .models.dropout import attention_math, dropout_noise

_EPS = 1e-12

#: Backbones that have a stacked forward (BERT4Rec trains alone: its masked positions, and
#: so the shapes of its loss, differ per model).
STACKED_MODELS = (SASRec, GRU4Rec)


class Dropout:
    """Per-model dropout for a stack: ``gens[k]`` replays model ``k``'s lone stream, or
    with ``shared`` (a generator on the device), one draw covers the whole stack: every
    model still gets masks of its own, independent of the others', in one launch instead of
    K, but not the bits a lone run would draw (what a GPU wants: see :mod:`.group`)."""

    def __init__(self, gens: list[torch.Generator], device: torch.device,
                 shared: torch.Generator | None = None):
        self.gens = gens
        self.device = device
        self.shared = shared

    def noise(self, p: float, shapes: list[tuple], full: tuple, right: bool = True):
        """(K, *full) multipliers: model k's lone noise ``bernoulli(1-p) / (1-p)`` of shape
        ``shapes[k]`` in the last (``right``) or first columns of the trailing dims, ones
        elsewhere."""
        if self.shared is not None:
            noise = torch.empty((len(shapes),) + tuple(full), device=self.device)
            return noise.bernoulli_(1 - p, generator=self.shared).div_(1 - p)
        parts = []
        for shape, g in zip(shapes, self.gens):
            noise = dropout_noise(shape, p, g, device=g.device).to(self.device)
            pad = []  # F.pad order: last dim first, (before, after) each
            for s, f in zip(reversed(shape), reversed(full)):
                pad += [f - s, 0] if right else [0, f - s]
            parts.append(F.pad(noise, pad, value=1.0) if any(pad) else noise)
        return stack(parts)


def stack(tensors: list[torch.Tensor]) -> torch.Tensor:
    """``torch.stack``, but a view for one tensor: a stack of one model copies nothing."""
    return tensors[0].unsqueeze(0) if len(tensors) == 1 else torch.stack(tensors)


def linear(x, w, b=None):
    """``x @ w.T + b`` per model: x (K, ..., in), w (K, out, in), b (K, out)."""
    K, shape = x.shape[0], x.shape[1:-1]
    x2 = x.reshape(K, -1, x.shape[-1])
    y = (torch.baddbmm(b.unsqueeze(1), x2, w.transpose(1, 2)) if b is not None
         else torch.bmm(x2, w.transpose(1, 2)))
    return y.view(K, *shape, w.shape[1])


def layer_norm(x, w, b, eps, exact: bool = False):
    """LayerNorm of x (K, ..., H) with model k's affine ``w[k]``, ``b[k]``. ``exact``: model by
    model through the fused kernel, as the lone module runs it (its backward sums the affine
    gradients in its own order, which a separate multiply-add does not reproduce; the
    forward values agree either way). Otherwise one normalisation and one stacked affine."""
    if exact:
        return stack([F.layer_norm(x[k], x.shape[-1:], w[k], b[k], eps)
                      for k in range(x.shape[0])])
    view = (x.shape[0],) + (1,) * (x.dim() - 2) + (x.shape[-1],)
    return torch.addcmul(b.view(view), F.layer_norm(x, x.shape[-1:], None, None, eps),
                         w.view(view))


def embed(table, idx):
    """Rows ``idx`` (K, ...) of each model's table (K, V, H)."""
    K, V = table.shape[:2]
    offset = (torch.arange(K, device=idx.device) * V).view((K,) + (1,) * (idx.dim() - 1))
    return F.embedding(idx + offset, table.reshape(K * V, -1))


def transformer_encode(model: SASRec, P: dict, seq, widths, drop: Dropout | None,
                       exact: bool = False, last_only: bool = False):
    """SASRec's ``encode`` for a stack: seq (K, B, W) right-aligned, ``widths[k]`` the width
    model k would use alone; returns (K, B, W, hidden), or with ``last_only`` (K, B, 1,
    hidden) as the lone ``encode(seq, last_only=True)``. ``exact``: see :func:`layer_norm`."""
    K, B, W = seq.shape
    H = model.hidden
    if model.positions == "from_end":
        pos = torch.arange(model.max_len - W, model.max_len, device=seq.device).expand(K, B, W)
    else:
        n_pad = W - (seq > 0).sum(-1, keepdim=True)
        pos = (torch.arange(W, device=seq.device) - n_pad).clamp_(min=0)
    x = layer_norm(embed(P["item_emb.weight"], seq) + embed(P["pos_emb.weight"], pos),
                   P["ln.weight"], P["ln.bias"], model.ln.eps, exact)
    p_h = model.drop.p
    if drop is not None and p_h > 0:
        x = x * drop.noise(p_h, [(B, w, H) for w in widths], (B, W, H))
    causal = torch.ones(W, W, dtype=torch.bool, device=seq.device).tril_()
    eye = torch.eye(W, dtype=torch.bool, device=seq.device)
    mask = (causal & ((seq > 0)[:, :, None, :] | eye)).unsqueeze(2)  # (K, B, 1, W, W)
    for i, layer in enumerate(model.layers):
        x = _layer(layer, {k.split(".", 2)[2]: v for k, v in P.items()
                           if k.startswith(f"layers.{i}.")}, x, mask, widths, drop, exact,
                   last_only and i == len(model.layers) - 1)
    return x


def _attention(q, k, v, mask, p, widths, drop):
    """(K, B, nh, Q, d) queries on (K, B, nh, W, d) keys and values, as the lone module's
    :func:`~.models.dropout.attention` computes it: without dropout torch's fused kernel, on
    the stack seen as K*B rows; with dropout the math path, each model with its own masks
    (Q is W, or 1 for the last position only)."""
    K, B, nh, Q, d = q.shape
    W = k.shape[3]
    if drop is None or p == 0:
        a = F.scaled_dot_product_attention(q.flatten(0, 1), k.flatten(0, 1), v.flatten(0, 1),
                                           attn_mask=mask.flatten(0, 1))
        return a.view(K, B, nh, Q, d)
    shapes = [(B, nh, w if Q == W else Q, w) for w in widths]
    return attention_math(q, k, v, mask, drop.noise(p, shapes, (B, nh, Q, W)))


def _layer(layer, P, x, mask, widths, drop, exact, last_only=False):
    K, B, W, H = x.shape
    nh = layer.n_heads
    d, key_widths = H // nh, widths
    if last_only:  # as TransformerLayer.forward(..., last_only=True)
        wt, bias = P["qkv.weight"], P["qkv.bias"]
        q = linear(x[:, :, -1:], wt[:, :H], bias[:, :H]).view(K, B, 1, nh, d).transpose(2, 3)
        k, v = linear(x, wt[:, H:], bias[:, H:]).view(K, B, W, 2, nh, d) \
            .permute(3, 0, 1, 4, 2, 5)
        mask, x, W, widths = mask[..., -1:, :], x[:, :, -1:], 1, [1] * len(widths)
    else:
        q, k, v = linear(x, P["qkv.weight"], P["qkv.bias"]).view(K, B, W, 3, nh, d) \
            .permute(3, 0, 1, 4, 2, 5)
    a = _attention(q, k, v, mask, layer.attn_dropout, key_widths, drop)
    a = a.transpose(2, 3).reshape(K, B, W, H)
    p = layer.drop.p
    noise = (lambda: drop.noise(p, [(B, w, H) for w in widths], (B, W, H))) \
        if drop is not None and p > 0 else None
    y = linear(a, P["proj.weight"], P["proj.bias"])
    x = layer_norm(x + (y * noise() if noise else y), P["ln1.weight"], P["ln1.bias"],
                   layer.ln1.eps, exact)
    y = linear(F.gelu(linear(x, P["ff1.weight"], P["ff1.bias"])), P["ff2.weight"], P["ff2.bias"])
    return layer_norm(x + (y * noise() if noise else y), P["ln2.weight"], P["ln2.bias"],
                      layer.ln2.eps, exact)


def gru_encode(model: GRU4Rec, P: dict, seq, widths, drop: Dropout | None):
    """GRU4Rec's ``encode`` for a stack. The recurrence runs model by model (torch has no
    batched-weights GRU kernel) with the lone model's own kernel; the rest is stacked."""
    K, B, W = seq.shape
    H = model.hidden
    n_pad = (seq == 0).sum(-1, keepdim=True)
    cols = torch.arange(W, device=seq.device)
    x = embed(P["item_emb.weight"], seq.gather(-1, (cols + n_pad) % W))
    if drop is not None and model.emb_drop.p > 0:
        x = x * drop.noise(model.emb_drop.p, [(B, w, H) for w in widths], (B, W, H), right=False)
    gru = model.gru
    # unbind: one stacked gradient per weight (selecting slice k of a stack K times would
    # fill K full-size zero gradients)
    weights = [P["gru." + n].unbind(0) for n in gru._flat_weights_names]
    ys = []
    with warnings.catch_warnings():
        # cuDNN wants one flat weight buffer and copies a stack's slices into one per call
        # (a few hundred KB); it warns about that on every call.
        warnings.filterwarnings("ignore", message="RNN module weights are not part")
        for k, w in enumerate(widths):
            hx = torch.zeros(gru.num_layers, B, gru.hidden_size, device=x.device, dtype=x.dtype)
            y, _ = torch._VF.gru(x[k, :, :w], hx, [wt[k] for wt in weights], gru.bias,
                                 gru.num_layers, float(gru.dropout), gru.training,
                                 gru.bidirectional, True)
            ys.append(F.pad(y, (0, 0, 0, W - w)))
    y = linear(stack(ys), P["dense.weight"], P["dense.bias"])
    to_right = ((cols - n_pad) % W).unsqueeze(-1).expand(K, B, W, y.shape[-1])
    return y.gather(2, to_right)


def stacked_encode(model, P, seq, widths, drop, exact: bool = False, last_only: bool = False):
    """The stack's ``encode``; ``last_only``: what the lone ``next_hidden`` reads, (K, B, 1,
    hidden) from a transformer (a GRU computes every position anyway)."""
    if isinstance(model, SASRec):
        return transformer_encode(model, P, seq, widths, drop, exact, last_only)
    if isinstance(model, GRU4Rec):
        return gru_encode(model, P, seq, widths, drop)
    raise TypeError(f"no stacked forward for {type(model).__name__}")


def stacked_cross_entropy(models, table, h, targets):
    """Each model's mean full-softmax CE over its rows at once: ``h`` (K, B, hidden),
    ``table`` (K, rows, hidden) the stacked item embeddings (row 0 padding), ``targets``
    (K, B) 0-based; ``models[k]`` gives model k's scoring (normalisation, temperature).
    Returns (K,). One batched product for the whole stack (the logits of all K models are
    held at once: for a GPU, where K chunked losses would cost K x a dozen launches)."""
    K = len(models)
    dev = h.device
    e = table[:, 1:models[0].n_items + 1]

    def norm_where(x, flags):
        if not any(flags):
            return x
        if all(flags):
            return F.normalize(x, dim=-1, eps=_EPS)
        f = torch.tensor(flags, device=dev).view(K, *([1] * (x.dim() - 1)))
        return torch.where(f, F.normalize(x, dim=-1, eps=_EPS), x)

    h = norm_where(h, [m.normalize_hidden for m in models])
    e = norm_where(e, [m.normalize_items for m in models])
    scale = torch.tensor([1.0 / m.temperature for m in models], device=dev).view(K, 1, 1)
    logits = torch.bmm(h, e.transpose(1, 2)).float() * scale
    return F.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="none") \
        .view(K, -1).mean(1)
