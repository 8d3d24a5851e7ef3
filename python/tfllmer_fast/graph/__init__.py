"""The graph layer: co-occurrence graphs, Laplacians, embedding normalisation and
diagnostics, Rec-PCA and the initial item tables built from them.

numpy, scipy and the compiled core only: no torch. Rec-PCA is a scikit-learn estimator, so
scikit-learn (about 0.7 s to import) loads when a Rec-PCA name is first used, not when the
co-occurrence functions are.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from ._cooccurrence import CooccurrenceCounter, cooccurrence
from .diagnostics import EmbeddingDiagnostics, embedding_diagnostics
from .item_table import initial_item_table, training_graph
from .normalization import normalize_embeddings
from .operators import laplacian
from .shards import cooccurrence_from_shards, iter_shard

if TYPE_CHECKING:
    from .recpca import NotFittedError, RecPCA, RecPCAConvergenceError

_LAZY = {"NotFittedError": ".recpca", "RecPCA": ".recpca", "RecPCAConvergenceError": ".recpca"}

__all__ = [
    "CooccurrenceCounter",
    "EmbeddingDiagnostics",
    "NotFittedError",
    "RecPCA",
    "RecPCAConvergenceError",
    "cooccurrence",
    "cooccurrence_from_shards",
    "embedding_diagnostics",
    "initial_item_table",
    "iter_shard",
    "laplacian",
    "normalize_embeddings",
    "training_graph",
]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
