"""tfllmer_fast: LLM-enhanced sequential recommenders made trainable and fast (TF-LLMER).

Pipeline: interaction logs -> item co-occurrence graph -> graph Laplacian; LLM item
embeddings -> L2 normalisation -> Rec-PCA -> item table of a sequential backbone.
"""

from ._build import build_info
from .cooccurrence import CooccurrenceCounter, cooccurrence, cooccurrence_from_shards

__version__ = "0.1.0"

__all__ = ["build_info", "__version__"]
__all__ += ["cooccurrence", "CooccurrenceCounter", "cooccurrence_from_shards"]
