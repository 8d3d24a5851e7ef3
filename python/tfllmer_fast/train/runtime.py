"""Where and how torch runs: device, mixed precision, seeds, CPU threads."""

from __future__ import annotations

import random
from contextlib import contextmanager

import numpy as np
import torch

from .._openmp import available_cpus, passive_waits


def resolve_device(spec: str | torch.device = "auto") -> torch.device:
    """``"auto"``: CUDA when available, else CPU. Anything else goes to ``torch.device``;
    a CUDA device on a machine without CUDA is a ValueError that says so."""
    if isinstance(spec, torch.device):
        return spec
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(spec)
    except RuntimeError as e:
        raise ValueError(f"unknown device {spec!r}: use 'auto', 'cpu', 'cuda' or 'cuda:N'") from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device {spec!r} requested but CUDA is not available on this machine: use --device cpu (or auto)"
        )
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(f"device {spec!r} requested but this machine has {torch.cuda.device_count()} CUDA device(s)")
    return dev


def resolve_amp(amp: str, device: torch.device):
    """(autocast dtype or None, whether a GradScaler is needed)."""
    if device.type != "cuda" or amp == "off":
        return None, False
    if amp == "auto":
        amp = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return (torch.bfloat16, False) if amp == "bf16" else (torch.float16, True)


def seed_everything(seed: int) -> None:
    """Seed Python's, numpy's and torch's global generators."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


@contextmanager
def cpu_threads(threads: int | None):
    """torch's CPU thread count inside the block (``None``: every CPU this process may run
    on), restored after.

    Yields the count in force. torch's setting is process-wide, so a library call that
    changed it for good would change the caller's own torch work. Idle OpenMP threads sleep
    inside the block (:func:`~tfllmer_fast._openmp.passive_waits`)."""
    before = torch.get_num_threads()
    n = threads or available_cpus()
    if n != before:
        torch.set_num_threads(n)
    try:
        with passive_waits(n):
            yield n
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def generator_for(device: torch.device, seed: int) -> torch.Generator:
    """A generator on ``device`` (sampling on CUDA needs a CUDA generator)."""
    return torch.Generator(device=device).manual_seed(seed)


def compiled_encoder(model, mode: str, device: torch.device, prefixes: bool):
    """The function a training step calls for the prefix rows' representations:
    ``model.next_hidden``, or on CUDA with a compile ``mode`` other than "off", that function compiled
    (``reduce-overhead``: CUDA graphs, which replay a step's hundreds of small kernels in one
    launch; the steps of a small model otherwise wait on Python). Off on the CPU, where
    launches are cheap and compilation would only add minutes, and for window rows, whose
    gather of padding positions has a data-dependent shape."""
    if mode == "off" or device.type != "cuda" or not prefixes:
        return model.next_hidden
    # dynamic=False: one graph per batch width; static_shapes keeps those few.
    return torch.compile(model.next_hidden, mode=mode, dynamic=False)
