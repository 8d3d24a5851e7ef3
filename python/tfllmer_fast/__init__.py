"""tfllmer_fast: LLM-enhanced sequential recommenders made trainable and fast (TF-LLMER).

Pipeline: interaction logs -> item co-occurrence graph -> graph Laplacian; LLM item
embeddings -> L2 normalisation -> Rec-PCA -> item table of a sequential backbone.
"""

from ._build import build_info

from .diagnostics import EmbeddingDiagnostics, embedding_diagnostics
from .laplacian import laplacian
from .normalization import normalize_embeddings
from .recpca import RecPCA, RecPCAConvergenceError

__all__ = ["EmbeddingDiagnostics", "embedding_diagnostics", "laplacian", "normalize_embeddings",
           "RecPCA", "RecPCAConvergenceError"]

__version__ = "0.1.0"

__all__ += ["build_info", "__version__"]
