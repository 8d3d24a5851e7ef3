"""Checkpoint files of a training run: atomic writes and a format version that is read.

A checkpoint is a dict saved with ``torch.save``: ``format`` (:data:`CHECKPOINT_FORMAT`),
``epoch``, ``config`` (the run's Config as a dict), ``fingerprint`` (the fields that change
the training trajectory, see ``Config.fingerprint``), model/optimizer/scaler states, RNG
states, the best state and the early-stopping state.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import torch

from .._atomic import atomic_open

#: Version 2: the fingerprint names every trajectory field (version 1 left some out).
CHECKPOINT_FORMAT = 2


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: unreadable, of another format or another run."""


def save_checkpoint(state: dict, path) -> None:
    """``torch.save`` atomically: readers see the old file or the new one, never a partial
    write."""
    with atomic_open(path) as f:
        torch.save({"format": CHECKPOINT_FORMAT, **state}, f)


def load_checkpoint(path, map_location="cpu") -> dict:
    """Read a checkpoint and check its format; errors name the file and the way out."""
    path = Path(path)
    try:
        st = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise
    except (RuntimeError, EOFError, OSError, pickle.UnpicklingError, zipfile.BadZipFile) as e:
        raise CheckpointError(
            f"checkpoint {path} cannot be read ({type(e).__name__}: {_first_sentence(e)}); "
            "it may be truncated: delete it, or start afresh with --no-resume"
        ) from None
    if not isinstance(st, dict) or "format" not in st:
        raise CheckpointError(f"{path} is not a tfllmer_fast checkpoint")
    if st["format"] != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"checkpoint {path} has format {st['format']}, this version reads format "
            f"{CHECKPOINT_FORMAT}: retrain (--no-resume or another output folder), or "
            "evaluate it with the tfllmer_fast version that wrote it"
        )
    return st


def _first_sentence(e: BaseException) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return text.split(". ")[0].rstrip(".")


def check_fingerprint(st: dict, fingerprint: str, path) -> None:
    """The checkpoint must come from a run with the same trajectory fields."""
    import json

    if st.get("fingerprint") == fingerprint:
        return
    saved, now = json.loads(st.get("fingerprint") or "{}"), json.loads(fingerprint)
    diff = ", ".join(
        f"{k}: {saved.get(k, '(absent)')!r} -> {now.get(k, '(absent)')!r}"
        for k in sorted(set(saved) | set(now))
        if saved.get(k) != now.get(k)
    )
    raise CheckpointError(
        f"checkpoint {path} was written with a different configuration "
        f"({diff}); use another output folder or --no-resume to start afresh"
    )
