"""What :meth:`Recommender.recommend` and :meth:`Recommender.similar_items` return."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Recommendations:
    """Top-k lists of many users (or query items), one row each, best first.

    Attributes
    ----------
    keys : ndarray of object, (n_rows, k)
        Item keys; ``None`` where a row has fewer than ``k`` items.
    ids : ndarray of int64, (n_rows, k)
        The model's 0-based item ids; ``-1`` where a row is short.
    scores : ndarray of float32, (n_rows, k)
        The model's scores (the ranking of evaluation: same normalisation and temperature);
        ``-inf`` where a row is short.
    users : ndarray or None
        The row keys: the users of a mapping or of a ``Sequences``, the query items of
        ``similar_items``; ``None`` for a plain list (rows are then numbered).
    lengths : ndarray of int64, (n_rows,)
        Items in each row: ``k`` unless the user's candidates ran out (``exclude_seen``,
        ``items``), 0 for an empty history.
    n_unknown : int
        Keys of the histories (or queries) the model does not know, dropped.
    n_empty : int
        Rows without a single known history item (or query): they get no items.
    n_unknown_items, n_unknown_exclude : int
        Keys of ``items`` / ``exclude`` the model does not know, dropped.
    """

    keys: np.ndarray
    ids: np.ndarray
    scores: np.ndarray
    users: np.ndarray | None = None
    lengths: np.ndarray = field(default=None)
    n_unknown: int = 0
    n_empty: int = 0
    n_unknown_items: int = 0
    n_unknown_exclude: int = 0

    def __post_init__(self):
        if self.lengths is None:
            self.lengths = (self.ids >= 0).sum(1).astype(np.int64)

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    @property
    def k(self) -> int:
        return int(self.ids.shape[1])

    def row_keys(self) -> np.ndarray:
        """The key of every row (``users``, or the row numbers 0..n-1)."""
        return np.arange(len(self)) if self.users is None else np.asarray(self.users)

    def to_lists(self) -> list[list[tuple[str, float]]]:
        """Per row, ``[(item key, score), ...]`` best first (short rows are shorter)."""
        return [
            [(self.keys[r, j], float(self.scores[r, j])) for j in range(int(self.lengths[r]))] for r in range(len(self))
        ]

    def records(self):
        """Iterate ``(user, rank, item, score)``, rank 1 the best; short rows give fewer."""
        users = self.row_keys()
        for r in range(len(self)):
            for j in range(int(self.lengths[r])):
                yield users[r], j + 1, self.keys[r, j], float(self.scores[r, j])

    def to_frame(self):
        """A pandas DataFrame with columns ``user``, ``rank``, ``item``, ``score``, one row
        per recommended item (needs pandas)."""
        import pandas as pd

        n = self.lengths
        rows = np.repeat(np.arange(len(self)), n)
        rank = np.concatenate([np.arange(c) for c in n]) if n.size else np.zeros(0, np.int64)
        return pd.DataFrame(
            {
                "user": self.row_keys()[rows],
                "rank": rank + 1,
                "item": self.keys[rows, rank],
                "score": self.scores[rows, rank],
            }
        )
