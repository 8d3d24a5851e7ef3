"""The training layer (torch): backbones, losses, row layouts, the trainer and its
checkpoints, full-ranking evaluation, metrics and the conditioning diagnostic.

Reads data and graph objects and its own typed options (:mod:`.options`: the model, the
item table, the optimisation, the evaluation); knows nothing of experiments, configuration
files or the command line. Names load on first use: ``tfllmer_fast.train.options`` can be
imported without torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

# public name -> the module of this layer that defines it
_EXPORTS = {
    **dict.fromkeys(
        ["CHECKPOINT_FORMAT", "CheckpointError", "load_checkpoint", "model_from_checkpoint", "save_checkpoint"],
        ".checkpoint",
    ),
    **dict.fromkeys(["BASELINES", "make_baseline"], ".baselines"),
    **dict.fromkeys(["conditioning_report", "hessian_spectrum"], ".conditioning"),
    **dict.fromkeys(["EvalData", "Evaluator", "build_eval_data", "evaluate", "float_scores"], ".evaluation"),
    **dict.fromkeys(["make_loss"], ".losses"),
    **dict.fromkeys(["metrics_from_ranks"], ".metrics"),
    **dict.fromkeys(["MODELS", "BERT4Rec", "GRU4Rec", "SASRec", "SequentialRecommender", "build_model"], ".models"),
    **dict.fromkeys(
        ["EvalOptions", "ItemTableOptions", "LOSSES", "MODEL_DEFAULTS", "ModelOptions", "TrainOptions"], ".options"
    ),
    **dict.fromkeys(["build_prefixes", "build_windows"], ".rows"),
    **dict.fromkeys(["cpu_threads", "resolve_device", "seed_everything"], ".runtime"),
    **dict.fromkeys(["FitResult", "Trainer"], ".trainer"),
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'tfllmer_fast.train' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:
    from .baselines import BASELINES, make_baseline
    from .checkpoint import CHECKPOINT_FORMAT, CheckpointError, load_checkpoint, model_from_checkpoint, save_checkpoint
    from .conditioning import conditioning_report, hessian_spectrum
    from .evaluation import EvalData, Evaluator, build_eval_data, evaluate, float_scores
    from .losses import make_loss
    from .metrics import metrics_from_ranks
    from .models import MODELS, BERT4Rec, GRU4Rec, SASRec, SequentialRecommender, build_model
    from .options import LOSSES, MODEL_DEFAULTS, EvalOptions, ItemTableOptions, ModelOptions, TrainOptions
    from .rows import build_prefixes, build_windows
    from .runtime import cpu_threads, resolve_device, seed_everything
    from .trainer import FitResult, Trainer
