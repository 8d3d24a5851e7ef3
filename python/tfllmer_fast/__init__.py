"""tfllmer_fast: LLM-enhanced sequential recommenders made trainable and fast (TF-LLMER).

Pipeline: interaction logs -> item co-occurrence graph -> graph Laplacian; LLM item
embeddings -> L2 normalisation -> Rec-PCA -> item table of a sequential backbone.
"""

from ._build import build_info

from .data import (Dataset, load_dataset, load_embeddings, load_interactions, load_item_text,
                   load_recbole_atomic, load_sequence_file)
from .sequences import Sequences, kcore_filter, leave_one_out
from .synthetic import SyntheticCatalogue, make_synthetic_catalogue
from .text import embed_texts

__all__ = ["Dataset", "load_dataset", "load_embeddings", "load_interactions", "load_item_text",
           "load_recbole_atomic", "load_sequence_file", "Sequences", "kcore_filter",
           "leave_one_out", "SyntheticCatalogue", "make_synthetic_catalogue", "embed_texts"]

# Training stack (torch): backbones, trainer, evaluation, the pipeline and its config.
from .config import Config
from .evaluation import evaluate
from .metrics import metrics_from_ranks
from .models import BERT4Rec, GRU4Rec, SASRec
from .pipeline import run_experiment
from .trainer import Trainer

__all__ += ["BERT4Rec", "Config", "GRU4Rec", "SASRec", "Trainer", "evaluate",
            "metrics_from_ranks", "run_experiment"]

__version__ = "0.1.0"

__all__ += ["build_info", "__version__"]
