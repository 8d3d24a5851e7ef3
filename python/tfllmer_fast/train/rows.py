"""Row layouts of the torch models: training windows, prefix rows and evaluation inputs.

Every row is right-aligned, ids shifted by +1 (0 = padding), numpy int64.

**Training windows.** Next-item models (SASRec, GRU4Rec) see each user's training history
once per epoch as one right-aligned window: the input is the history without its last item,
and *every* position predicts the item after it, so every training target (all training
items but each user's first) is predicted exactly once per epoch from its whole prefix, as in
RecBole's one-sample-per-prefix epoch, at 1/L of the cost. The loss is taken on
non-padding positions only (they are gathered before the output projection). Histories
longer than ``max_len + 1`` are cut into consecutive windows from the most recent end
(window k holds targets ``L-1-kM-M+1 .. L-1-kM``, each with the item before it as first
input), so no target is lost; a target early in an older window sees fewer than ``max_len``
items of context (a documented approximation of the prefix view). BERT4Rec windows are the
last ``max_len`` items (older items in further windows), masked afresh each epoch.

With position ids counted from each row's first item (the default, see
:class:`~tfllmer_fast.train.models.common.TransformerBackbone`) and causal attention, the output at
every position of a window equals that prefix's own forward pass, so this epoch is RecBole's
up to dropout (one mask per window instead of one per prefix) and batch composition.

**Prefix rows** (``train_samples="prefixes"``): RecBole's layout exactly, one right-aligned
row per training target holding the target and the ``max_len`` items before it; the loss is
taken at the last position only. About ``L/2`` times the encoder work of windows.

Each step trims the columns that are padding in every row of the batch (exact for both
position conventions), so short-history batches cost less.

``batch_size`` counts rows (windows or prefixes), not prediction points.
"""

from __future__ import annotations

import numpy as np

from ..data.sequences import Sequences, right_aligned_rows, segment_ranks


def build_windows(train: Sequences, max_len: int, causal: bool) -> tuple[np.ndarray, np.ndarray]:
    """Right-aligned training windows (n_windows, max_len + 1) of shifted ids, and their
    lengths (see the module docstring). Causal windows hold up to ``max_len + 1`` items
    (inputs = all but the last, targets = all but the first); masked windows up to
    ``max_len`` (column 0 stays padding)."""
    lengths = train.lengths
    overlap = 1 if causal else 0
    span = max_len + overlap
    n_pred = np.maximum(lengths - overlap, 0)  # targets per user
    n_win = -(-n_pred // max_len)  # ceil
    users = np.repeat(np.arange(lengths.size), n_win)
    end = lengths[users] - 1 - segment_ranks(n_win) * max_len  # last item (inclusive)
    start = np.maximum(0, end - span + 1)
    wlen = end - start + 1
    return right_aligned_rows(train, users, start, wlen, max_len + 1), wlen


def build_prefixes(train: Sequences, max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """One right-aligned row per training target, RecBole's sample layout: the target last,
    the (at most ``max_len``) items before it in front. Returns (n_targets, max_len + 1)
    shifted ids and the row lengths."""
    n_pred = np.maximum(train.lengths - 1, 0)
    users = np.repeat(np.arange(n_pred.size), n_pred)
    target = segment_ranks(n_pred) + 1  # index of the target in the history
    start = np.maximum(0, target - max_len)
    wlen = target - start + 1
    return right_aligned_rows(train, users, start, wlen, max_len + 1), wlen


def right_aligned(seqs: Sequences, width: int, extra: np.ndarray | None = None) -> np.ndarray:
    """(n_users, width) int64 of every user's last ``width`` items (+ ``extra[u]`` appended),
    shifted by +1, right-aligned with 0 padding on the left: the evaluation inputs."""
    if extra is not None:
        seqs = append_one(seqs, extra)
    take = np.minimum(seqs.lengths, width)
    users = np.arange(seqs.n_users)
    return right_aligned_rows(seqs, users, seqs.lengths - take, take, width)


def append_one(seqs: Sequences, extra: np.ndarray) -> Sequences:
    """Every user's history with ``extra[u]`` appended (e.g. train + validation item)."""
    lengths = seqs.lengths + 1
    offsets = np.zeros(seqs.n_users + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    items = np.empty(offsets[-1], dtype=np.int32)
    last = offsets[1:] - 1
    mask = np.ones(items.size, dtype=bool)
    mask[last] = False
    items[mask] = seqs.items
    items[last] = np.asarray(extra)
    return Sequences(offsets, items, seqs.n_items)
