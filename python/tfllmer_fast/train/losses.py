"""Training losses on (representation, target item) pairs.

Every loss takes the model (for its scoring head), representations ``h`` (T, hidden) and
0-based targets (T,), and returns the mean over the T prediction points.

* ``ce`` - full-softmax cross-entropy over all items (default; RecBole's ``CE``).
* ``bce`` - binary cross-entropy with ``n_negatives`` uniformly drawn negatives per target
  (the original SASRec loss; negatives equal to the target are ignored).
* ``sampled_softmax`` - softmax over the target and ``n_negatives`` negatives shared by the
  whole batch, drawn uniformly or by popularity, with the log-Q correction (logit minus
  log of the sampling probability) and accidental hits removed. For catalogues too big for
  a full softmax.

``exclude`` (every loss): item ids outside the training catalogue (the cold-start
protocol's cold items). Their logits are -inf in ``ce`` (softmax probability 0, hence zero
gradient on their rows), and ``bce`` / ``sampled_softmax`` never draw them as negatives.

``exclude_pairs`` (``ce`` only; ``TrainOptions.exclude_input_items``): per prediction point,
the items of its own input (:func:`input_pairs`), which then get a -inf logit too, except
the target: the softmax no longer pushes down what the user has just seen.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .options import DEFAULT_NEGATIVES, LOSSES
from .sampling import multinomial, randint


class _LinearCrossEntropy(torch.autograd.Function):
    """Mean cross-entropy of ``logits = scale * h @ E.T (+ bias)`` without keeping logits.

    The forward pass walks the targets in chunks: logits of a chunk, softmax in place, and
    right away the gradients (``(p - onehot) / T`` times ``E`` / ``h``); the backward pass only
    scales them. Same maths as ``F.cross_entropy(h @ E.T, t)``, but no (T, n_items) tensor
    survives the chunk and the log-softmax backward / one-hot fill passes disappear: less
    memory traffic on the CPU and far less memory on the GPU.
    """

    @staticmethod
    def forward(ctx, h, E, bias, targets, scale, chunk, mask_rows=None, mask_items=None):
        T = h.shape[0]
        Ec = E.to(h.dtype)
        grad_h = torch.empty_like(h)
        grad_E = torch.zeros(E.shape, dtype=torch.float32, device=E.device)
        grad_b = None if bias is None else torch.zeros(bias.shape, dtype=torch.float32, device=bias.device)
        total = torch.zeros((), dtype=torch.float32, device=h.device)
        for a in range(0, T, chunk):
            hc, tc = h[a : a + chunk], targets[a : a + chunk]
            logits = (hc @ Ec.t()).float()
            if scale != 1.0:
                logits.mul_(scale)
            if bias is not None:
                logits.add_(bias.float())
            if mask_rows is not None:  # sorted by row: this chunk's pairs are one slice
                lo, hi = torch.searchsorted(mask_rows, torch.tensor([a, a + chunk], device=mask_rows.device)).tolist()
                logits[mask_rows[lo:hi] - a, mask_items[lo:hi]] = float("-inf")
            rows = torch.arange(tc.numel(), device=h.device)
            picked = logits[rows, tc]
            m = logits.amax(1, keepdim=True)
            logits.sub_(m).exp_()
            z = logits.sum(1, keepdim=True)
            total += (m.squeeze(1) + z.squeeze(1).log() - picked).sum()
            logits.div_(z)  # softmax
            logits[rows, tc] -= 1.0  # d loss_i / d logits_i (before the 1/T)
            if grad_b is not None:
                grad_b += logits.sum(0) / T
            logits.mul_(scale / T)  # logits = scale * h E^T: chain rule
            g = logits.to(h.dtype)
            grad_h[a : a + chunk] = g @ Ec
            grad_E.addmm_(g.t().float(), hc.float()) if h.dtype != torch.float32 else grad_E.addmm_(g.t(), hc)
        ctx.save_for_backward(grad_h, grad_E, *(() if grad_b is None else (grad_b,)))
        ctx.has_bias = grad_b is not None
        ctx.e_dtype = E.dtype
        return total / T

    @staticmethod
    def backward(ctx, g):
        grad_h, grad_E, *rest = ctx.saved_tensors
        gb = rest[0] * g if ctx.has_bias else None
        return grad_h * g.to(grad_h.dtype), (grad_E * g).to(ctx.e_dtype), gb, None, None, None, None, None


def linear_cross_entropy(h, E, targets, *, scale: float = 1.0, bias=None, chunk: int | None = None, exclude_pairs=None):
    """``F.cross_entropy(scale * h @ E.T + bias, targets)`` computed chunk-wise (see
    :class:`_LinearCrossEntropy`); ``chunk`` rows of logits at a time (default: about 1M
    logits per chunk on the CPU, where small chunks stay in cache; 64M on a GPU).
    ``exclude_pairs``: ``(rows, items)`` whose logits are -inf (rows sorted; never a target)."""
    if chunk is None:
        budget = 1 << 20 if h.device.type == "cpu" else 1 << 26
        chunk = max(1, budget // max(1, E.shape[0]))
    rows, items = (None, None) if exclude_pairs is None else exclude_pairs
    return _LinearCrossEntropy.apply(h, E, bias, targets, float(scale), int(chunk), rows, items)


def input_pairs(inputs: torch.Tensor, one_per_row: bool, targets: torch.Tensor):
    """``(rows, items)``: for every prediction point, the 0-based items of its own input,
    without its target; rows sorted.

    ``inputs`` (B, W): right-aligned shifted ids. ``one_per_row`` (prefix rows): point ``b``
    reads all of row ``b``. Otherwise (causal window rows) the points are the non-padding
    positions in row-major order, as :meth:`SequentialRecommender.training_pairs` returns
    them, and point ``(b, j)`` reads positions ``0..j`` of row ``b``.
    """
    real = inputs > 0
    if one_per_row:
        rows, cols = real.nonzero(as_tuple=True)
        items = inputs[rows, cols] - 1
    else:
        point = torch.cumsum(real.reshape(-1), 0).reshape(real.shape) - 1  # index of point (b, j)
        w = inputs.shape[1]
        reads = torch.ones(w, w, dtype=torch.bool, device=inputs.device).tril()  # [j, k]: k <= j
        both = real.unsqueeze(2) & real.unsqueeze(1) & reads  # [b, j, k]
        b, j, k = both.nonzero(as_tuple=True)
        rows, items = point[b, j], inputs[b, k] - 1
    keep = items != targets[rows]
    return rows[keep], items[keep]


def _excluded_mask(n_items: int, exclude) -> np.ndarray | None:
    if exclude is None or len(exclude) == 0:
        return None
    exclude = np.asarray(exclude, dtype=np.int64)
    if exclude.min() < 0 or exclude.max() >= n_items:
        raise ValueError(f"excluded item ids must lie in 0..{n_items - 1}")
    mask = np.zeros(n_items, dtype=bool)
    mask[exclude] = True
    if mask.all():
        raise ValueError("every item is excluded from the training loss")
    return mask


class FullCrossEntropy:
    """Full-softmax CE over all items (fused, chunked; see :func:`linear_cross_entropy`);
    excluded items get a -inf logit."""

    name = "ce"

    def __init__(self, n_items: int | None = None, exclude=None, device="cpu"):
        mask = None if n_items is None else _excluded_mask(n_items, exclude)
        self.mask_bias = None
        if mask is not None:
            self.mask_bias = torch.where(torch.as_tensor(mask, device=device), float("-inf"), 0.0).float()

    def __call__(self, model, h, targets, generator=None, exclude_pairs=None):
        bias = model.output_bias()
        if self.mask_bias is not None:
            bias = self.mask_bias if bias is None else bias + self.mask_bias
        return linear_cross_entropy(
            model.output_hidden(h),
            model.item_table(),
            targets,
            scale=1.0 / model.temperature,
            bias=bias,
            exclude_pairs=exclude_pairs,
        )


class _NegativeSampler:
    def __init__(self, n_items: int, distribution: str, counts=None, device="cpu", exclude=None):
        if distribution not in ("uniform", "popularity"):
            raise ValueError(f"negative sampling must be 'uniform' or 'popularity', got {distribution!r}")
        self.n_items = n_items
        self.distribution = distribution
        mask = _excluded_mask(n_items, exclude)
        # Uniform draws over the allowed items: an index into this table (None: all items).
        self.allowed = None if mask is None else torch.as_tensor(np.flatnonzero(~mask), device=device)
        self.n_allowed = n_items if mask is None else int((~mask).sum())
        if distribution == "popularity":
            if counts is None:
                raise ValueError("popularity sampling needs item counts")
            p = np.asarray(counts, dtype=np.float64) + 1.0  # +1: never zero probability
            if mask is not None:
                p[mask] = 0.0
            p /= p.sum()
            self.probs = torch.as_tensor(p, dtype=torch.float32, device=device)
            self.log_q = torch.log(self.probs)
        else:
            self.probs = None
            self.log_q = None

    def draw(self, shape, device, generator):
        if self.probs is None:
            idx = randint(self.n_allowed, shape, device, generator)
            return idx if self.allowed is None else self.allowed.to(device)[idx]
        return multinomial(self.probs, int(np.prod(shape)), device, generator).view(shape)

    def log_prob(self, items):
        if self.log_q is None:
            return torch.full(items.shape, -float(np.log(self.n_allowed)), device=items.device)
        return self.log_q[items]


class SampledSoftmax:
    name = "sampled_softmax"

    def __init__(self, n_items, n_negatives=1024, distribution="uniform", counts=None, device="cpu", exclude=None):
        if n_negatives < 1:
            raise ValueError("n_negatives must be >= 1")
        self.n_negatives = int(n_negatives)
        self.sampler = _NegativeSampler(n_items, distribution, counts, device, exclude)

    def __call__(self, model, h, targets, generator=None):
        neg = self.sampler.draw((self.n_negatives,), h.device, generator)
        pos = model.score(h, targets.unsqueeze(1)).float()  # (T, 1)
        negs = model.score(h, neg).float()  # (T, N)
        pos = pos - self.sampler.log_prob(targets).unsqueeze(1)
        negs = negs - self.sampler.log_prob(neg).unsqueeze(0)
        negs = negs.masked_fill(neg.unsqueeze(0) == targets.unsqueeze(1), float("-inf"))
        logits = torch.cat([pos, negs], dim=1)
        return F.cross_entropy(logits, torch.zeros_like(targets))


class BinaryCrossEntropy:
    name = "bce"

    def __init__(self, n_items, n_negatives=1, exclude=None, device="cpu"):
        if n_negatives < 1:
            raise ValueError("n_negatives must be >= 1")
        self.n_items = int(n_items)
        self.n_negatives = int(n_negatives)
        self.sampler = _NegativeSampler(self.n_items, "uniform", device=device, exclude=exclude)

    def __call__(self, model, h, targets, generator=None):
        neg = self.sampler.draw((targets.numel(), self.n_negatives), h.device, generator)
        pos = model.score(h, targets.unsqueeze(1)).float().squeeze(1)
        negs = model.score(h, neg).float()
        valid = (neg != targets.unsqueeze(1)).float()
        loss_pos = F.softplus(-pos)
        loss_neg = (F.softplus(negs) * valid).sum(1)
        return (loss_pos + loss_neg).mean()


def make_loss(
    name: str,
    n_items: int,
    *,
    n_negatives: int | None = None,
    negative_sampling: str = "uniform",
    item_counts=None,
    device="cpu",
    exclude=None,
):
    """The loss called ``name`` (one of :data:`LOSSES`); ``exclude``: item ids outside the
    training catalogue (see the module docstring)."""
    if name == "ce":
        return FullCrossEntropy(n_items, exclude, device)
    if name == "bce":
        return BinaryCrossEntropy(n_items, n_negatives or DEFAULT_NEGATIVES["bce"], exclude, device)
    if name == "sampled_softmax":
        return SampledSoftmax(
            n_items,
            n_negatives or DEFAULT_NEGATIVES["sampled_softmax"],
            negative_sampling,
            item_counts,
            device,
            exclude,
        )
    raise ValueError(f"unknown loss {name!r}; choose one of {', '.join(LOSSES)}")
