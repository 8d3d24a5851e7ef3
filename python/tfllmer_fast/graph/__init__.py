"""The graph layer: co-occurrence graphs, Laplacians, embedding normalisation and
diagnostics, Rec-PCA and the initial item tables built from them.

numpy, scipy and the compiled core only: no torch.
"""

from .cooccurrence import CooccurrenceCounter, cooccurrence
from .diagnostics import EmbeddingDiagnostics, embedding_diagnostics
from .item_table import initial_item_table, training_graph
from .laplacian import laplacian
from .normalization import normalize_embeddings
from .recpca import NotFittedError, RecPCA, RecPCAConvergenceError
from .shards import cooccurrence_from_shards, iter_shard

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
