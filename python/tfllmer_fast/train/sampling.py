"""Random draws that accept a ``torch.Generator`` on any device.

torch requires a generator on the device it samples on ("Expected a 'cuda' device type for
generator"). Models and losses draw on the generator's own device and move the result, so
a CPU generator works with CUDA tensors (and the other way round), with the same stream
of numbers on every device for a CPU generator.
"""

from __future__ import annotations

import torch


def _draw_device(device: torch.device, generator: torch.Generator | None) -> torch.device:
    return torch.device(generator.device) if generator is not None else torch.device(device)


def rand(shape, device, generator: torch.Generator | None = None) -> torch.Tensor:
    """Uniform [0, 1) floats of ``shape`` on ``device``."""
    at = _draw_device(device, generator)
    return torch.rand(shape, device=at, generator=generator).to(device)


def randint(high: int, shape, device, generator: torch.Generator | None = None) -> torch.Tensor:
    """Uniform integers in ``[0, high)`` of ``shape`` on ``device``."""
    at = _draw_device(device, generator)
    return torch.randint(high, shape, device=at, generator=generator).to(device)


def multinomial(probs: torch.Tensor, n: int, device, generator: torch.Generator | None = None) -> torch.Tensor:
    """``n`` draws with replacement from ``probs``, on ``device``."""
    at = _draw_device(device, generator)
    return torch.multinomial(probs.to(at), n, replacement=True, generator=generator).to(device)


def epoch_order(lengths: torch.Tensor, batch_size: int, bucketing: bool, generator: torch.Generator) -> torch.Tensor:
    """The order of ``len(lengths)`` training rows for one epoch (CPU int64), consumed in
    batches of ``batch_size``.

    Plain shuffle, or with ``bucketing``: shuffle, cut into chunks of 50 batches, sort each
    chunk by row length, cut into batches and shuffle the batches. Batches then hold rows of
    similar length, so trimming padding columns saves most of the work on short-history
    data, while every epoch still sees a fresh random order.
    """
    n = lengths.shape[0]
    perm = torch.randperm(n, generator=generator)
    if not bucketing:
        return perm
    chunk = 50 * batch_size
    lens = lengths[perm]
    parts = []
    for a in range(0, n, chunk):
        order = torch.argsort(lens[a : a + chunk], stable=True)
        parts.append(perm[a : a + chunk][order])
    perm = torch.cat(parts)
    batches = list(torch.split(perm, batch_size))
    shuffle = torch.randperm(len(batches), generator=generator).tolist()
    return torch.cat([batches[i] for i in shuffle])
