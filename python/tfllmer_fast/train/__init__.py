"""The training layer (torch): backbones, losses, row layouts, the trainer and its
checkpoints, full-ranking evaluation, metrics and the conditioning diagnostic.

Imports torch. Reads data and graph objects; knows nothing of experiments, configs on disk
or the command line (a run configuration is any object with the fields of
:class:`~tfllmer_fast.experiment.config.Config`).
"""

from .checkpoint import CHECKPOINT_FORMAT, CheckpointError, load_checkpoint, save_checkpoint
from .conditioning import conditioning_report, hessian_spectrum
from .evaluation import EvalData, build_eval_data, evaluate, float_scores
from .losses import LOSSES, make_loss
from .metrics import metrics_from_ranks
from .models import MODELS, BERT4Rec, GRU4Rec, SASRec, SequentialRecommender, build_model
from .rows import build_prefixes, build_windows
from .runtime import cpu_threads, resolve_device, seed_everything
from .trainer import FitResult, Trainer

__all__ = [
    "BERT4Rec",
    "CHECKPOINT_FORMAT",
    "CheckpointError",
    "EvalData",
    "FitResult",
    "GRU4Rec",
    "LOSSES",
    "MODELS",
    "SASRec",
    "SequentialRecommender",
    "Trainer",
    "build_eval_data",
    "build_model",
    "build_prefixes",
    "build_windows",
    "conditioning_report",
    "cpu_threads",
    "evaluate",
    "float_scores",
    "hessian_spectrum",
    "load_checkpoint",
    "make_loss",
    "metrics_from_ranks",
    "resolve_device",
    "save_checkpoint",
    "seed_everything",
]
