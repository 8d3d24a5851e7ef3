"""The cold-start protocol and the popularity groups of evaluation targets (numpy only).

Cold items (:func:`choose_cold_items`, :func:`read_item_list`) are removed from every
training sequence by :func:`cold_start_split`: the co-occurrence graph, the training rows
and the training loss never see them, while the evaluation inputs keep the histories users
really had (``LeaveOneOutSplit.eval_history``). :func:`item_groups` names the item groups
every evaluation reports: ``head`` / ``tail`` by training frequency over the warm items, and
``warm`` / ``cold`` when there are cold items. :func:`repeat_targets` and
:func:`target_groups` add what belongs to a (user, target) pair rather than to an item: a
target is a ``repeat`` when it occurs in the user's evaluation history (the whole history
the model's input is cut from), an ``explore`` target otherwise, and the two cross every
item group (``cold_explore``, ...).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from .sequences import LeaveOneOutSplit, Sequences


def choose_cold_items(n_items: int, fraction: float, seed: int = 0) -> np.ndarray:
    """``round(fraction * n_items)`` item ids drawn uniformly without replacement with
    ``numpy.random.default_rng(seed)``, sorted (int64)."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"cold_items must be a fraction in [0, 1), got {fraction}")
    k = int(round(fraction * n_items))
    if k == 0:
        return np.zeros(0, dtype=np.int64)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n_items, size=k, replace=False)).astype(np.int64)


def read_item_list(path, item_keys=None, n_items: int | None = None) -> np.ndarray:
    """Item ids listed in a text file: whitespace-separated keys, ``#`` starts a comment.

    A key is matched against ``item_keys`` (the data's raw item ids, e.g. the ASIN or
    MovieLens id of the shared datasets) when given, else read as a 0-based item index.
    Unknown keys and repeats are errors. Returns sorted int64 ids.
    """
    from .files import read_key_list

    path = Path(path)
    keys = read_key_list(path, "item list")
    if not keys:
        raise ValueError(f"{path}: the item list is empty")
    if len(set(keys)) != len(keys):
        seen: set[str] = set()
        dup = sorted({k for k in keys if k in seen or seen.add(k)})[:5]
        raise ValueError(f"{path}: item(s) listed twice: {', '.join(dup)}")
    if item_keys is not None:
        index = {str(k): i for i, k in enumerate(np.asarray(item_keys).tolist())}
        unknown = [k for k in keys if k not in index]
        if unknown:
            raise ValueError(f"{path}: unknown item id(s) {', '.join(unknown[:5])} (ids are the data's item keys)")
        ids = np.array([index[k] for k in keys], dtype=np.int64)
    else:
        try:
            ids = np.array([int(k) for k in keys], dtype=np.int64)
        except ValueError:
            raise ValueError(
                f"{path}: the data has no item keys, so ids must be 0-based item indices (integers)"
            ) from None
        bad = ids[(ids < 0) | (ids >= (n_items if n_items is not None else np.inf))]
        if bad.size:
            raise ValueError(f"{path}: item index {int(bad[0])} outside 0..{n_items - 1}")
    return np.sort(ids)


def drop_items(seqs: Sequences, items) -> Sequences:
    """Every history without the listed items (ids are kept: no renumbering)."""
    items = np.asarray(items, dtype=np.int64)
    if items.size == 0:
        return seqs
    drop = np.zeros(seqs.n_items, dtype=bool)
    drop[items] = True
    keep = ~drop[seqs.items]
    user = np.repeat(np.arange(seqs.n_users), seqs.lengths)
    offsets = np.zeros(seqs.n_users + 1, dtype=np.int64)
    np.cumsum(np.bincount(user[keep], minlength=seqs.n_users), out=offsets[1:])
    return Sequences(offsets, seqs.items[keep], seqs.n_items, user_ids=seqs.user_ids, item_ids=seqs.item_ids)


def cold_start_split(split: LeaveOneOutSplit, cold) -> LeaveOneOutSplit:
    """``split`` with the ``cold`` items removed from the training histories; the
    evaluation keeps the original histories and the targets (cold ones included)."""
    cold = np.unique(np.asarray(cold, dtype=np.int64))
    if cold.size and (cold[0] < 0 or cold[-1] >= split.n_items):
        raise ValueError(f"cold item ids must lie in 0..{split.n_items - 1}")
    if cold.size >= split.n_items:
        raise ValueError("every item is cold: nothing is left to train on")
    if split.cold_items is not None:
        raise ValueError("the split already has cold items")
    return replace(split, train=drop_items(split.train, cold), eval_history=split.train, cold_items=cold)


def head_items(counts, head_share: float = 0.2, *, candidates=None) -> np.ndarray:
    """Boolean mask of the head: the most frequent items (ties: smaller id first) that
    together hold ``head_share`` of the interactions counted in ``counts``, i.e. the
    shortest such prefix of the items sorted by count, among ``candidates`` (a boolean mask;
    default every item). Items with zero count are never head."""
    counts = np.asarray(counts, dtype=np.int64)
    if not 0.0 < head_share < 1.0:
        raise ValueError(f"head_share must lie in (0, 1), got {head_share}")
    cand = np.ones(counts.size, bool) if candidates is None else np.asarray(candidates, bool)
    c = np.where(cand, counts, 0)
    head = np.zeros(counts.size, dtype=bool)
    total = int(c.sum())
    if total == 0:
        return head
    order = np.lexsort((np.arange(c.size), -c))  # count descending, then id
    cum = np.cumsum(c[order])
    n_head = int(np.searchsorted(cum, head_share * total, side="left")) + 1
    head[order[:n_head]] = True
    head &= c > 0
    return head


def item_groups(split: LeaveOneOutSplit, head_share: float = 0.2) -> dict[str, np.ndarray]:
    """Boolean item masks of the target groups: ``head`` / ``tail`` (the warm items by
    training frequency, see :func:`head_items`) and, with cold items, ``warm`` / ``cold``."""
    n = split.n_items
    cold = np.zeros(n, dtype=bool)
    if split.cold_items is not None:
        cold[split.cold_items] = True
    counts = np.bincount(split.train.items, minlength=n)
    head = head_items(counts, head_share, candidates=~cold)
    groups = {}
    if cold.any():
        groups["warm"] = ~cold
        groups["cold"] = cold
    groups["head"] = head
    groups["tail"] = ~cold & ~head
    return groups


#: The target groups of a (user, target) pair, in table order.
REPEAT_GROUPS = ("repeat", "explore")


def repeat_targets(split: LeaveOneOutSplit, which: str) -> tuple[np.ndarray, np.ndarray]:
    """Per user of ``split``: ``(repeat, last)`` boolean arrays for the ``which`` targets.

    ``repeat[u]``: the target occurs in the user's evaluation history (validation: the
    history before the validation item; test: that history plus the validation item; with
    the cold-start protocol the histories users really had, cold items included), anywhere
    in it, not only among the ``max_len`` items a model reads. ``last[u]``: the target
    equals the most recent item of that history (a special repeat).
    """
    hist = split.history
    n, n_users = split.n_items, hist.n_users
    if which == "valid":
        targets, extra = np.asarray(split.valid_targets, np.int64), None
    elif which == "test":
        targets, extra = np.asarray(split.test_targets, np.int64), np.asarray(split.valid_targets, np.int64)
    else:
        raise ValueError(f"which must be 'valid' or 'test', got {which!r}")
    lengths = hist.lengths
    users = np.repeat(np.arange(n_users, dtype=np.int64), lengths)
    seen = np.unique(users * n + hist.items)
    repeat = np.isin(np.arange(n_users, dtype=np.int64) * n + targets, seen, assume_unique=False)
    last_item = np.full(n_users, -1, dtype=np.int64)
    has = lengths > 0
    last_item[has] = hist.items[hist.offsets[1:][has] - 1]
    if extra is not None:
        repeat |= targets == extra
        last_item = extra
    return repeat, targets == last_item


def target_groups(split: LeaveOneOutSplit, which: str, groups: dict | None = None, head_share: float = 0.2) -> dict:
    """Boolean masks over the users of ``split`` (one target each) for every target group of
    the ``which`` split: the item groups (``groups``, default :func:`item_groups`) applied
    to the targets, ``repeat`` / ``explore`` (see :func:`repeat_targets`), and each item
    group crossed with both (``warm_repeat``, ``cold_explore``, ...)."""
    if groups is None:
        groups = item_groups(split, head_share)
    targets = np.asarray(split.valid_targets if which == "valid" else split.test_targets, np.int64)
    repeat, _ = repeat_targets(split, which)
    out = {name: np.asarray(mask, bool)[targets] for name, mask in groups.items()}
    by_item = dict(out)
    out["repeat"], out["explore"] = repeat, ~repeat
    for name, sel in by_item.items():
        out[f"{name}_repeat"] = sel & repeat
        out[f"{name}_explore"] = sel & ~repeat
    return out


def repeat_shares(split: LeaveOneOutSplit) -> dict:
    """The share of repeat targets and of targets equal to the last input item, per split
    (``{"valid": {"repeat": ..., "last_item": ...}, "test": {...}}``)."""
    out = {}
    for which in ("valid", "test"):
        repeat, last = repeat_targets(split, which)
        n = max(repeat.size, 1)
        out[which] = {"repeat": float(repeat.sum()) / n, "last_item": float(last.sum()) / n}
    return out
