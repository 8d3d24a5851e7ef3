"""What users hand the recommender, turned into the model's 0-based item ids.

* **Keys.** A model knows its items by the keys of the log it was trained on (strings in
  the checkpoint). A key given here is matched by its string form: ``1234``,
  ``numpy.int64(1234)``, ``1234.0`` and ``"1234"`` are one key; ``"01234"`` is another
  (the readers keep keys as written, so a model trained on ``01234`` knows ``"01234"``).
* **Histories.** A list (or any sequence) of histories, one per user, each a list of keys,
  oldest first; a mapping ``{user key: history}``; or a :class:`~tfllmer_fast.data.Sequences`
  (its ``item_ids`` are its keys; without them its items are the model's ids).
* **Unknown keys** (``unknown="skip"``, the default) are dropped and counted;
  ``unknown="raise"`` raises a ValueError naming them. Ids (``ids=True``) outside
  ``0..n_items-1`` always raise: a wrong id is a bug, never catalogue drift.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ..data.sequences import Sequences

UNKNOWN_RULES = ("skip", "raise")


def key_string(k) -> str:
    """The string form a key is matched by (see the module docstring)."""
    if type(k) is str:
        return k
    if isinstance(k, str):  # numpy.str_ and other subclasses
        return str.__str__(k)
    if isinstance(k, (bool, np.bool_)):
        return str(bool(k))
    if isinstance(k, (int, np.integer)):
        return str(int(k))
    if isinstance(k, (float, np.floating)) and float(k).is_integer():
        return str(int(k))
    if isinstance(k, bytes):
        return k.decode("utf-8", "replace")
    return str(k)


class KeyMap:
    """Item keys <-> the model's 0-based ids (``keys[i]`` is the key of item ``i``)."""

    def __init__(self, keys):
        self.keys = np.empty(len(keys), dtype=object)
        self.keys[:] = [str(k) for k in keys]
        self._index: dict[str, int] | None = None

    def __len__(self) -> int:
        return self.keys.size

    @property
    def index(self) -> dict[str, int]:
        if self._index is None:
            index = {k: i for i, k in enumerate(self.keys.tolist())}
            if len(index) != self.keys.size:
                seen, dup = set(), []
                for k in self.keys.tolist():
                    (dup.append(k) if k in seen else seen.add(k))
                raise ValueError(f"the model's item keys are not unique: {', '.join(sorted(set(dup))[:5])}")
            self._index = index
        return self._index

    def lookup(self, keys) -> np.ndarray:
        """int64 ids of ``keys`` (any iterable), -1 for unknown keys."""
        index = self.index
        strs = [key_string(k) for k in keys]
        return np.fromiter((index.get(s, -1) for s in strs), dtype=np.int64, count=len(strs))


def check_unknown_rule(unknown: str) -> None:
    if unknown not in UNKNOWN_RULES:
        raise ValueError(f"unknown must be one of {UNKNOWN_RULES}, got {unknown!r}")


def unknown_error(what: str, keys: list) -> ValueError:
    shown = ", ".join(repr(key_string(k)) for k in keys[:5]) + (f" and {len(keys) - 5} more" if len(keys) > 5 else "")
    return ValueError(
        f"{len(keys)} {what} the model does not know: {shown} (pass unknown='skip' to drop them, "
        "or add the new items to the model with add-items first)"
    )


def ids_of(values, n_items: int, what: str) -> np.ndarray:
    """0-based ids given as ids (``ids=True``): integers in ``0..n_items-1`` or an error."""
    arr = np.asarray(list(values) if not isinstance(values, np.ndarray) else values)
    if arr.size == 0:
        return np.zeros(0, np.int64)
    if arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
        arr = arr.astype(np.int64)
    if arr.dtype.kind not in "iu":
        raise ValueError(f"{what}: ids must be integers (0-based item ids), got dtype {arr.dtype}")
    arr = arr.astype(np.int64).reshape(-1)
    bad = (arr < 0) | (arr >= n_items)
    if bad.any():
        raise ValueError(
            f"{what}: item id {int(arr[bad][0])} out of range 0..{n_items - 1} "
            f"({int(bad.sum())} such id(s); ids are 0-based, not shifted)"
        )
    return arr


def item_set(keys, keymap: KeyMap, *, ids: bool, unknown: str, what: str) -> tuple[np.ndarray, int]:
    """Sorted distinct ids of an item list (``items`` / ``exclude`` / queries) and how many
    of its keys were unknown (dropped)."""
    if isinstance(keys, (str, bytes)) or not hasattr(keys, "__iter__"):
        raise ValueError(f"{what} must be a list of item keys, got {type(keys).__name__}")
    keys = list(keys)
    if ids:
        return np.unique(ids_of(keys, len(keymap), what)), 0
    found = keymap.lookup(keys)
    miss = found < 0
    if miss.any() and unknown == "raise":
        raise unknown_error(f"key(s) of {what}", [keys[j] for j in np.flatnonzero(miss)])
    return np.unique(found[~miss]), int(miss.sum())


@dataclass
class Histories:
    """Histories as the model's ids: CSR over users (``seqs``), their keys, and what was
    dropped on the way."""

    seqs: Sequences
    users: np.ndarray | None
    n_unknown: int
    n_given: int  # keys given in all histories

    @property
    def n_users(self) -> int:
        return self.seqs.n_users


def _is_key(x) -> bool:
    return isinstance(x, (str, bytes, int, float, np.generic)) or x is None


def as_histories(histories, keymap: KeyMap, *, ids: bool, unknown: str) -> Histories:
    """Parse ``histories`` (see the module docstring) into the model's ids."""
    check_unknown_rule(unknown)
    n_items = len(keymap)
    if isinstance(histories, Sequences):
        return _from_sequences(histories, keymap, ids=ids, unknown=unknown)
    users = None
    if isinstance(histories, Mapping):
        users = np.empty(len(histories), dtype=object)
        users[:] = list(histories.keys())
        rows = list(histories.values())
    elif isinstance(histories, (str, bytes)) or not hasattr(histories, "__iter__"):
        raise ValueError(
            f"histories must be a list of histories (one list of item keys per user), got {type(histories).__name__}"
        )
    else:
        rows = list(histories)
    for u, h in enumerate(rows):
        if isinstance(h, (str, bytes)) or _is_key(h) or not hasattr(h, "__iter__"):
            raise ValueError(
                f"histories[{u}] is {type(h).__name__} {h!r:.40}, not a history: pass a list of histories, "
                "one list of item keys per user (e.g. [history] for one user)"
            )
    rows = [list(h) for h in rows]
    lengths = np.fromiter((len(h) for h in rows), dtype=np.int64, count=len(rows))
    flat = [k for h in rows for k in h]
    if ids:
        found = ids_of(flat, n_items, "histories") if flat else np.zeros(0, np.int64)
    else:
        found = keymap.lookup(flat)
    miss = found < 0
    if miss.any() and unknown == "raise":
        raise unknown_error("history key(s)", sorted({key_string(flat[j]) for j in np.flatnonzero(miss)}))
    return Histories(_csr(found, lengths, miss, n_items), users, int(miss.sum()), len(flat))


def _from_sequences(seqs: Sequences, keymap: KeyMap, *, ids: bool, unknown: str) -> Histories:
    n_items = len(keymap)
    if seqs.item_ids is None:
        if seqs.n_interactions and int(seqs.items.max()) >= n_items:
            raise ValueError(
                f"the histories have item id {int(seqs.items.max())}, but the model knows ids "
                f"0..{n_items - 1} (Sequences without item_ids hold the model's ids; a sequence "
                "file holds the model's ids + 1)"
            )
        found = seqs.items.astype(np.int64)
    elif ids:  # the keys are the model's ids, e.g. an item column of ids read as text
        raw = np.asarray(seqs.item_ids)
        try:
            as_int = np.asarray([int(key_string(k)) for k in raw.tolist()], dtype=np.int64)
        except ValueError:
            raise ValueError("histories: ids=True but the item keys are not integers") from None
        found = ids_of(as_int, n_items, "histories")[seqs.items]
    else:
        code = keymap.lookup(np.asarray(seqs.item_ids).tolist())
        used = np.zeros(code.size, bool)
        used[seqs.items] = True
        unseen = (code < 0) & used
        if unseen.any() and unknown == "raise":
            raise unknown_error("history key(s)", [key_string(k) for k in np.asarray(seqs.item_ids)[unseen]])
        found = code[seqs.items]
    miss = found < 0
    users = None if seqs.user_ids is None else np.asarray(seqs.user_ids)
    return Histories(_csr(found, seqs.lengths, miss, n_items), users, int(miss.sum()), seqs.n_interactions)


def _csr(found: np.ndarray, lengths: np.ndarray, miss: np.ndarray, n_items: int) -> Sequences:
    user_of = np.repeat(np.arange(lengths.size, dtype=np.int64), lengths)
    keep = ~miss
    kept = np.bincount(user_of[keep], minlength=lengths.size)
    offsets = np.zeros(lengths.size + 1, dtype=np.int64)
    np.cumsum(kept, out=offsets[1:])
    return Sequences(offsets, found[keep].astype(np.int32), n_items)
