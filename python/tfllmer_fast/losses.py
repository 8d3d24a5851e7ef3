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
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

LOSSES = ("ce", "bce", "sampled_softmax")


class FullCrossEntropy:
    name = "ce"

    def __call__(self, model, h, targets, generator=None):
        logits = model.score(h)
        return F.cross_entropy(logits.float(), targets)


class _NegativeSampler:
    def __init__(self, n_items: int, distribution: str, counts=None, device="cpu"):
        if distribution not in ("uniform", "popularity"):
            raise ValueError(f"negative sampling must be 'uniform' or 'popularity', "
                             f"got {distribution!r}")
        self.n_items = n_items
        self.distribution = distribution
        if distribution == "popularity":
            if counts is None:
                raise ValueError("popularity sampling needs item counts")
            p = np.asarray(counts, dtype=np.float64) + 1.0  # +1: never zero probability
            p /= p.sum()
            self.probs = torch.as_tensor(p, dtype=torch.float32, device=device)
            self.log_q = torch.log(self.probs)
        else:
            self.probs = None
            self.log_q = None

    def draw(self, shape, device, generator):
        if self.probs is None:
            return torch.randint(self.n_items, shape, device=device, generator=generator)
        n = int(np.prod(shape))
        return torch.multinomial(self.probs, n, replacement=True,
                                 generator=generator).view(shape)

    def log_prob(self, items):
        if self.log_q is None:
            return torch.full(items.shape, -float(np.log(self.n_items)), device=items.device)
        return self.log_q[items]


class SampledSoftmax:
    name = "sampled_softmax"

    def __init__(self, n_items, n_negatives=1024, distribution="uniform", counts=None,
                 device="cpu"):
        if n_negatives < 1:
            raise ValueError("n_negatives must be >= 1")
        self.n_negatives = int(n_negatives)
        self.sampler = _NegativeSampler(n_items, distribution, counts, device)

    def __call__(self, model, h, targets, generator=None):
        neg = self.sampler.draw((self.n_negatives,), h.device, generator)
        pos = model.score(h, targets.unsqueeze(1)).float()          # (T, 1)
        negs = model.score(h, neg).float()                          # (T, N)
        pos = pos - self.sampler.log_prob(targets).unsqueeze(1)
        negs = negs - self.sampler.log_prob(neg).unsqueeze(0)
        negs = negs.masked_fill(neg.unsqueeze(0) == targets.unsqueeze(1), float("-inf"))
        logits = torch.cat([pos, negs], dim=1)
        return F.cross_entropy(logits, torch.zeros_like(targets))


class BinaryCrossEntropy:
    name = "bce"

    def __init__(self, n_items, n_negatives=1):
        if n_negatives < 1:
            raise ValueError("n_negatives must be >= 1")
        self.n_items = int(n_items)
        self.n_negatives = int(n_negatives)

    def __call__(self, model, h, targets, generator=None):
        neg = torch.randint(self.n_items, (targets.numel(), self.n_negatives),
                            device=h.device, generator=generator)
        pos = model.score(h, targets.unsqueeze(1)).float().squeeze(1)
        negs = model.score(h, neg).float()
        valid = (neg != targets.unsqueeze(1)).float()
        loss_pos = F.softplus(-pos)
        loss_neg = (F.softplus(negs) * valid).sum(1)
        return (loss_pos + loss_neg).mean()


def make_loss(name: str, n_items: int, *, n_negatives: int | None = None,
              negative_sampling: str = "uniform", item_counts=None, device="cpu"):
    """The loss called ``name`` (one of :data:`LOSSES`)."""
    if name == "ce":
        return FullCrossEntropy()
    if name == "bce":
        return BinaryCrossEntropy(n_items, n_negatives or 1)
    if name == "sampled_softmax":
        return SampledSoftmax(n_items, n_negatives or 1024, negative_sampling, item_counts,
                              device)
    raise ValueError(f"unknown loss {name!r}; choose one of {', '.join(LOSSES)}")
