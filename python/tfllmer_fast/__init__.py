"""tfllmer_fast: LLM-enhanced sequential recommenders made trainable and fast (TF-LLMER).

Pipeline: interaction logs -> item co-occurrence graph -> graph Laplacian; LLM item
embeddings -> L2 normalisation -> Rec-PCA -> item table of a sequential backbone.
"""

import os as _os

# OpenMP threads that spin after a parallel region steal the cores from whatever runs next
# (numpy's OpenBLAS, torch, another process) and made mixed workloads 5-10x slower on small
# machines. Passive waiting costs our long kernels nothing. Must be set before libgomp loads;
# an explicit OMP_WAIT_POLICY from the user wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from ._build import build_info  # noqa: E402
from .conditioning import conditioning_report, hessian_spectrum
from .cooccurrence import CooccurrenceCounter, cooccurrence, cooccurrence_from_shards
from .data import (Dataset, load_dataset, load_embeddings, load_interactions, load_item_text,
                   load_recbole_atomic, load_sequence_file)
from .diagnostics import EmbeddingDiagnostics, embedding_diagnostics
from .laplacian import laplacian
from .normalization import normalize_embeddings
from .recpca import RecPCA, RecPCAConvergenceError
from .sequences import Sequences, kcore_filter, leave_one_out
from .synthetic import SyntheticCatalogue, make_synthetic_catalogue
from .text import embed_texts

# Training stack (torch): backbones, trainer, evaluation, the pipeline and its config.
from .config import Config
from .evaluation import evaluate
from .metrics import metrics_from_ranks
from .models import BERT4Rec, GRU4Rec, SASRec
from .pipeline import run_experiment
from .trainer import Trainer

__version__ = "0.1.0"

__all__ = [
    "__version__", "build_info",
    # data and the co-occurrence graph
    "cooccurrence", "CooccurrenceCounter", "cooccurrence_from_shards",
    "Sequences", "leave_one_out", "kcore_filter", "Dataset", "load_dataset", "load_embeddings",
    "load_interactions", "load_item_text", "load_recbole_atomic", "load_sequence_file",
    "SyntheticCatalogue", "make_synthetic_catalogue", "embed_texts",
    # embeddings and Rec-PCA
    "laplacian", "normalize_embeddings", "EmbeddingDiagnostics", "embedding_diagnostics",
    "RecPCA", "RecPCAConvergenceError",
    # diagnostics of training
    "hessian_spectrum", "conditioning_report",
    # training and evaluation
    "Config", "SASRec", "GRU4Rec", "BERT4Rec", "Trainer", "evaluate", "metrics_from_ranks",
    "run_experiment",
]
