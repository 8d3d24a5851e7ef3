"""Where a run's data came from, recorded in its checkpoint, so that the checkpoint can be
evaluated (or extended) from any folder."""

from __future__ import annotations

from pathlib import Path

from ..data import Dataset
from .config import Config

#: Config fields that name files: a checkpoint records them resolved (see data_sources).
SOURCE_FIELDS = ("dataset", "embeddings", "item_text", "cold_items_from")


def data_sources(config: Config) -> dict:
    """The files a run read, as absolute paths (names such as "beauty" stay names), so that
    its checkpoint can be evaluated from any folder."""
    out = {}
    for name in SOURCE_FIELDS:
        value = getattr(config, name)
        out[name] = str(Path(value).resolve()) if isinstance(value, str) and Path(value).exists() else value
    return out


def checkpoint_config(st: dict, **overrides) -> Config:
    """The Config of a checkpoint, its file fields pointing where the run found its data:
    a relative path that does not resolve from here is replaced by the absolute path the
    run recorded (when that exists). ``overrides`` (e.g. ``dataset=``) win."""
    config = Config.from_dict(st["config"])
    recorded = st.get("data_sources") or {}
    changes = {}
    for name in SOURCE_FIELDS:
        mine, theirs = getattr(config, name), recorded.get(name)
        if isinstance(mine, str) and isinstance(theirs, str) and not Path(mine).exists() and Path(theirs).exists():
            changes[name] = theirs
    changes.update({k: v for k, v in overrides.items() if v is not None})
    return config.replace(**changes)


def check_same_items(st: dict, data: Dataset) -> None:
    """The data must hold the catalogue the checkpoint was trained on (its keys in order)."""
    from ..train.new_items import checkpoint_items

    items = checkpoint_items(st, data.n_items)
    added = sum(a["n"] for a in items.get("added", []))
    trained = [str(k) for k in items["known_ids"][: items["n_items"] - added]]
    keys = data.sequences.item_ids
    mine = [str(k) for k in (keys if keys is not None else range(data.n_items))]
    # Positions as keys: the checkpoint's data had no keys of its own (or an earlier version
    # did not keep them), so only the catalogue's size can be checked.
    positional = trained == [str(i) for i in range(len(trained))]
    if positional and len(mine) == len(trained):
        return
    if mine != trained:
        where = next((i for i, (a, b) in enumerate(zip(mine, trained)) if a != b), min(len(mine), len(trained)))
        raise ValueError(
            f"the data ({data.name}: {len(mine)} items) is not the catalogue the checkpoint was trained on "
            f"({len(trained)} items; they differ at item {where}): pass the dataset it was trained on (--dataset)"
        )
