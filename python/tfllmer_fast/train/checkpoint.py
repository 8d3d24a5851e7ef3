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
from .options import ItemTableOptions, ModelOptions

#: Version 2: the fingerprint names every trajectory field (version 1 left some out).
CHECKPOINT_FORMAT = 2


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: unreadable, of another format or another run."""


def save_checkpoint(state: dict, path) -> None:
    """``torch.save`` atomically: readers see the old file or the new one, never a partial
    write."""
    with atomic_open(path) as f:
        torch.save({"format": CHECKPOINT_FORMAT, **state}, f)


def load_checkpoint(path, map_location="cpu", *, resuming: bool = False) -> dict:
    """Read a checkpoint and check its format; errors name the file and the way out (for a
    run about to resume from it, ``resuming``: start afresh)."""
    path = Path(path)
    afresh = "start afresh with --no-resume (or another output folder)" if resuming else "retrain"
    try:
        st = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise
    except (RuntimeError, EOFError, OSError, pickle.UnpicklingError, zipfile.BadZipFile) as e:
        raise CheckpointError(
            f"checkpoint {path} cannot be read ({type(e).__name__}: {_first_sentence(e)}); "
            f"it may be truncated or not a checkpoint: use another file, or {afresh}"
        ) from None
    if not isinstance(st, dict) or "format" not in st:
        raise CheckpointError(f"{path} is not a tfllmer_fast checkpoint")
    if st["format"] != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"checkpoint {path} has format {st['format']}, this version reads format "
            f"{CHECKPOINT_FORMAT}: {afresh}, or use it with the tfllmer_fast version that wrote it"
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


def checkpoint_n_items(st: dict) -> int:
    """The number of items the checkpoint's model scores (items added later included)."""
    items = st.get("items")
    if items and "n_items" in items:
        return int(items["n_items"])
    state = st.get("best_state") or st["model"]
    if "item_emb.base" in state:
        return int(state["item_emb.base"].shape[0] - 1)
    w = state["item_emb.weight"]
    return int(w.shape[0] - 1 - (1 if st["config"].get("model") == "bert4rec" else 0))


def checkpoint_model_options(st: dict) -> tuple[ModelOptions, ItemTableOptions]:
    """The architecture and item table a checkpoint's model was built with."""
    cfg = st["config"]
    return ModelOptions.from_mapping(cfg), ItemTableOptions.from_mapping(cfg)


def model_from_checkpoint(st: dict, *, best: bool = True):
    """The model of a checkpoint (its best state unless ``best=False``), sized by the
    checkpoint's own item count (added items included), on the CPU, in eval mode."""
    from .models import build_model

    options, table = checkpoint_model_options(st)
    model = build_model(options, checkpoint_n_items(st), table)
    load_model_state(model, (st.get("best_state") if best else None) or st["model"], "checkpoint")
    return model.eval()


def load_model_state(model, state: dict, what: str) -> None:
    """``model.load_state_dict(state)``, a mismatch (another architecture or catalogue size)
    being a CheckpointError that says so rather than torch's list of tensors."""
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        first = str(e).strip().splitlines()
        detail = next((line.strip() for line in first[1:] if line.strip()), first[0] if first else "")
        raise CheckpointError(
            f"the {what} does not fit this model ({detail}): it was trained with another architecture or "
            "catalogue; use the model's own configuration and data"
        ) from None
