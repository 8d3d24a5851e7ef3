"""tfllmer_fast: LLM-enhanced sequential recommenders made trainable and fast (TF-LLMER).

Pipeline: interaction logs -> item co-occurrence graph -> graph Laplacian; LLM item
embeddings -> L2 normalisation -> Rec-PCA -> item table of a sequential backbone.

Layers, imports flowing one way: :mod:`.data` -> :mod:`.graph` (no torch) -> :mod:`.train`
(torch) -> :mod:`.serving` (recommend, export) -> :mod:`.experiment` (config, run, study,
CLI). This façade loads nothing until a name is used: ``import tfllmer_fast`` imports
neither torch nor matplotlib and changes no environment variable, no global setting of any
library.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from ._version import __version__

# public name -> the module that defines it
_EXPORTS = {
    "build_info": "._build",
    # data
    "Dataset": ".data",
    "Sequences": ".data",
    "LeaveOneOutSplit": ".data",
    "leave_one_out": ".data",
    "kcore_filter": ".data",
    "load_dataset": ".data",
    "load_embeddings": ".data",
    "load_interactions": ".data",
    "load_item_text_table": ".data",
    "load_item_text": ".data",
    "load_recbole_atomic": ".data",
    "load_sequence_file": ".data",
    "SyntheticCatalogue": ".data",
    "make_synthetic_catalogue": ".data",
    "embed_texts": ".data",
    "shared_data_dir": ".data",
    # the graph, embeddings and Rec-PCA
    "cooccurrence": ".graph",
    "CooccurrenceCounter": ".graph",
    "cooccurrence_from_shards": ".graph",
    "laplacian": ".graph",
    "normalize_embeddings": ".graph",
    "EmbeddingDiagnostics": ".graph",
    "embedding_diagnostics": ".graph",
    "RecPCA": ".graph",
    "RecPCAConvergenceError": ".graph",
    "NotFittedError": ".graph",
    "initial_item_table": ".graph",
    # training (torch)
    "SASRec": ".train",
    "GRU4Rec": ".train",
    "BERT4Rec": ".train",
    "Trainer": ".train",
    "evaluate": ".train",
    "metrics_from_ranks": ".train",
    "hessian_spectrum": ".train",
    "conditioning_report": ".train",
    # serving
    "Recommender": ".serving",
    # experiments
    "Config": ".experiment.config",
    "run_experiment": ".experiment.run",
    "RunResult": ".experiment.run",
    "save_run": ".experiment.run",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'tfllmer_fast' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # what type checkers and IDEs see
    from ._build import build_info
    from .data import (
        Dataset,
        LeaveOneOutSplit,
        Sequences,
        SyntheticCatalogue,
        embed_texts,
        kcore_filter,
        leave_one_out,
        load_dataset,
        load_embeddings,
        load_interactions,
        load_item_text,
        load_item_text_table,
        load_recbole_atomic,
        load_sequence_file,
        make_synthetic_catalogue,
        shared_data_dir,
    )
    from .experiment.config import Config
    from .experiment.run import RunResult, run_experiment, save_run
    from .graph import (
        CooccurrenceCounter,
        EmbeddingDiagnostics,
        NotFittedError,
        RecPCA,
        RecPCAConvergenceError,
        cooccurrence,
        cooccurrence_from_shards,
        embedding_diagnostics,
        initial_item_table,
        laplacian,
        normalize_embeddings,
    )
    from .serving import Recommender
    from .train import (
        BERT4Rec,
        GRU4Rec,
        SASRec,
        Trainer,
        conditioning_report,
        evaluate,
        hessian_spectrum,
        metrics_from_ranks,
    )
