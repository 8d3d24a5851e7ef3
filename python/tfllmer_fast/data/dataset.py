"""The Dataset record: sequences plus optional item side information."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._validation import check_finite_rows
from .sequences import Sequences


@dataclass
class Dataset:
    """Sequences plus optional item side information, all indexed by 0-based item id.

    ``embeddings[i]`` (float32, shape ``(n_items, D)``) and ``item_text[i]`` describe item
    ``i`` of ``sequences``; either may be ``None``.
    """

    name: str
    sequences: Sequences
    embeddings: np.ndarray | None
    item_text: list[str] | None

    def __post_init__(self):
        n = self.sequences.n_items
        if self.embeddings is not None:
            emb = self.embeddings
            if emb.ndim != 2 or emb.shape[0] != n:
                raise ValueError(
                    f"{self.name}: {emb.shape[0] if emb.ndim else 0} embedding rows "
                    f"(shape {emb.shape}) for {n} items: one row per item expected"
                )
            if emb.dtype != np.float32:
                self.embeddings = np.asarray(emb, dtype=np.float32)
            check_finite_rows(self.embeddings, f"{self.name} embeddings")
        if self.item_text is not None and len(self.item_text) != n:
            raise ValueError(f"{self.name}: {len(self.item_text)} item texts for {n} items")

    @property
    def n_items(self) -> int:
        return self.sequences.n_items

    @property
    def n_users(self) -> int:
        return self.sequences.n_users
