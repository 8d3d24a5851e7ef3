"""The options the training layer reads, as small typed records, and their choices.

Torch-free, so that a configuration (and the command line that builds one) can name them
without loading torch. The experiment layer's :class:`~tfllmer_fast.experiment.config.Config`
composes them from its flat fields (``config.model_options``, ...); code that trains without
a Config builds them directly::

    ModelOptions.for_model("gru4rec", hidden=32)      # GRU4Rec's own defaults, hidden 32
    TrainOptions(epochs=20, lr=3e-3)

Per-model defaults live in one table, :data:`MODEL_DEFAULTS` (RecBole 1.2.1's).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace

from .._validation import check_int

#: Backbones (see :mod:`.models`).
MODELS = ("sasrec", "gru4rec", "bert4rec")
#: Transformer position ids: from each row's oldest item (RecBole) or from its end.
POSITIONS = ("from_start", "from_end")
#: What training may change in an LLM-initialised item table (see :mod:`.item_tables`).
ITEM_TABLES = ("free", "frozen", "frozen+delta")
LOSSES = ("ce", "bce", "sampled_softmax")
NEGATIVE_SAMPLING = ("uniform", "popularity")
#: Training rows (see :mod:`.rows`): auto = prefixes for next-item models, windows for BERT4Rec.
ROW_LAYOUTS = ("auto", "windows", "prefixes")
AMP_MODES = ("auto", "bf16", "fp16", "off")
#: torch.compile modes of the prefix rows' encoder on CUDA.
COMPILE_MODES = ("off", "reduce-overhead", "default", "max-autotune")
#: Evaluation protocols: full ranking, sampled negatives, or both.
PROTOCOLS = ("full", "sampled", "both")
#: The trivial baselines (see :mod:`.baselines`).
BASELINES = ("popularity", "last-item", "llm-knn")

#: The defaults that differ between backbones (RecBole 1.2.1): the one place they are set.
MODEL_DEFAULTS = {
    "sasrec": {"n_layers": 2, "dropout": 0.5},
    "gru4rec": {"n_layers": 1, "dropout": 0.3},
    "bert4rec": {"n_layers": 2, "dropout": 0.2},
}
#: Negatives per target when none is given, by loss.
DEFAULT_NEGATIVES = {"bce": 1, "sampled_softmax": 1024}


def _choice(name: str, value, options) -> None:
    if value not in options:
        raise ValueError(f"{name} must be one of {options}, got {value!r}")


def _positive_int(name: str, value) -> None:
    check_int(value, name, minimum=1)


def _fraction(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must lie in [0, 1), got {value!r}")


class _Options:
    """Shared helpers of the option records."""

    def to_dict(self) -> dict:
        return asdict(self)

    def replace(self, **changes):
        return replace(self, **changes)

    @classmethod
    def from_mapping(cls, values: dict):
        """The record from the entries of ``values`` that are its fields (others ignored), e.g.
        a saved run configuration."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})


@dataclass(frozen=True)
class ModelOptions(_Options):
    """A backbone's architecture and scoring (every value resolved: no ``None`` sentinels).

    ``dropout`` is the hidden (and embedding) dropout, ``attn_dropout`` the transformers'
    attention dropout; ``gru_hidden`` is GRU4Rec's only, ``mask_ratio`` BERT4Rec's only,
    ``n_heads`` / ``inner_size`` / ``positions`` the transformers' only. Scoring:
    ``logits = <h', e_i'> / temperature`` with ``e_i'`` (``h'``) L2-normalised when
    ``normalize_items`` (``normalize_hidden``) is on.
    """

    model: str = "sasrec"
    hidden: int = 64
    max_len: int = 50
    n_layers: int = 2
    n_heads: int = 2
    inner_size: int = 256
    dropout: float = 0.5
    attn_dropout: float = 0.5
    gru_hidden: int = 128
    mask_ratio: float = 0.2
    layer_norm_eps: float = 1e-12
    init_std: float = 0.02
    positions: str = "from_start"
    normalize_items: bool = False
    normalize_hidden: bool = False
    temperature: float = 1.0

    def __post_init__(self):
        _choice("model", self.model, MODELS)
        _choice("positions", self.positions, POSITIONS)
        for name in ("hidden", "max_len", "n_layers", "n_heads", "inner_size", "gru_hidden"):
            _positive_int(name, getattr(self, name))
        for name in ("dropout", "attn_dropout"):
            _fraction(name, getattr(self, name))
        if not 0.0 < self.mask_ratio <= 1.0:
            raise ValueError(f"mask_ratio must lie in (0, 1], got {self.mask_ratio!r}")
        if not (self.temperature > 0 and math.isfinite(self.temperature)):
            raise ValueError(f"temperature must be a positive number, got {self.temperature!r}")

    @classmethod
    def for_model(cls, model: str, **values) -> ModelOptions:
        """Options of ``model`` with its defaults from :data:`MODEL_DEFAULTS`; ``values``
        override them. A value of ``None`` means the model's default (``attn_dropout``:
        the dropout)."""
        _choice("model", model, MODELS)
        given = {k: v for k, v in values.items() if v is not None}
        merged = {**MODEL_DEFAULTS[model], **given}
        merged.setdefault("attn_dropout", merged["dropout"])
        return cls(model=model, **merged)

    @classmethod
    def from_mapping(cls, values: dict) -> ModelOptions:
        """From a saved run configuration (its ``None`` entries resolved as in :meth:`for_model`)."""
        names = {f.name for f in fields(cls)} - {"model"}
        return cls.for_model(values.get("model", "sasrec"), **{k: v for k, v in values.items() if k in names})


@dataclass(frozen=True)
class ItemTableOptions(_Options):
    """What training may change in the item table: ``mode`` free (every row), frozen (the
    initial rows stay fixed) or frozen+delta (fixed rows plus a trainable delta held small by
    a relative L2 penalty ``delta_l2`` and/or a per-row norm bound ``delta_bound``)."""

    mode: str = "free"
    delta_l2: float = 0.0
    delta_bound: float | None = 0.25

    def to_config(self) -> dict:
        """The fields as a run configuration names them (``item_table_mode``, ``delta_*``)."""
        return {"item_table_mode": self.mode, "delta_l2": self.delta_l2, "delta_bound": self.delta_bound}

    @classmethod
    def from_mapping(cls, values: dict) -> ItemTableOptions:
        """From a saved run configuration (which may call the mode ``item_table``, its name
        in configurations of earlier versions)."""
        mode = values.get("item_table_mode", values.get("item_table", "free"))
        defaults = cls()
        return cls(
            mode=mode,
            delta_l2=values.get("delta_l2", defaults.delta_l2),
            delta_bound=values.get("delta_bound", defaults.delta_bound),
        )

    def __post_init__(self):
        _choice("item_table_mode", self.mode, ITEM_TABLES)
        for name in ("delta_l2", "delta_bound"):
            v = getattr(self, name)
            if v is None and name == "delta_bound":
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not (v >= 0 and math.isfinite(v)):
                none = " or none" if name == "delta_bound" else ""
                raise ValueError(f"{name} must be a finite number >= 0{none}, got {v!r}")


@dataclass(frozen=True)
class EvalOptions(_Options):
    """How the trainer evaluates: protocol, history masking, the sampled protocol's negatives,
    block size, cut-offs, and the head share of the popularity groups."""

    protocol: str = "full"
    mask_history: bool = False
    eval_negatives: int = 100
    eval_batch_size: int | None = None
    ks: tuple[int, ...] = (5, 10, 20)
    head_share: float = 0.2

    def __post_init__(self):
        _choice("protocol", self.protocol, PROTOCOLS)
        _positive_int("eval_negatives", self.eval_negatives)
        if self.eval_batch_size is not None:
            _positive_int("eval_batch_size", self.eval_batch_size)
        object.__setattr__(self, "ks", tuple(int(k) for k in self.ks))
        if not self.ks or min(self.ks) < 1:
            raise ValueError(f"ks must be cut-offs >= 1, got {self.ks!r}")
        if not 0.0 < self.head_share < 1.0:
            raise ValueError(f"head_share must lie in (0, 1), got {self.head_share!r}")

    def selection(self) -> dict:
        """What chooses the best epoch (and so when a run stops), for a run's fingerprint: the
        sampled protocol and its negatives, history masking. Empty at the defaults, so that
        checkpoints fingerprinted before selection was recorded still resume; ``full`` and
        ``both`` select alike (on the full ranking)."""
        chosen = {}
        if self.protocol == "sampled":
            chosen.update(selection_protocol="sampled", selection_negatives=self.eval_negatives)
        if self.mask_history:
            chosen["selection_mask_history"] = True
        return chosen


@dataclass(frozen=True)
class TrainOptions(_Options):
    """The optimisation, the schedule and where it runs.

    ``n_negatives=None``: the loss's default (:data:`DEFAULT_NEGATIVES`). ``threads``: torch's
    CPU thread count during ``fit`` and evaluation (None: leave torch's setting alone).
    ``epochs``, ``patience``, ``device``, ``threads``, ``progress`` and ``compile`` do not
    change a run's trajectory (:meth:`trajectory`), so a checkpoint resumes under new values.
    ``progress``: tqdm bars (the epoch lines are log records of ``tfllmer_fast.train.trainer``,
    printed by the CLI, and by the bars' display when no log handler shows them).
    ``exclude_input_items``: the ``ce`` loss gives the items of each training row's own input
    (except its target) a -inf logit (next-item models only).
    """

    seed: int = 0
    device: str = "auto"
    threads: int | None = None
    amp: str = "auto"
    progress: bool = True
    loss: str = "ce"
    n_negatives: int | None = None
    negative_sampling: str = "uniform"
    epochs: int = 200
    train_samples: str = "auto"
    batch_size: int = 256
    length_bucketing: bool = True
    static_shapes: bool = False
    compile: str = "off"
    lr: float = 1e-3
    weight_decay: float = 0.0
    grad_clip: float | None = None
    patience: int = 10
    eval_every: int = 1
    selection_metric: str = "ndcg@10"
    exclude_input_items: bool = False

    #: Fields that do not change what training computes (see the class docstring).
    NOT_TRAJECTORY = frozenset({"device", "threads", "progress", "epochs", "patience", "compile"})
    #: Fields added after checkpoints were first fingerprinted: left out of the trajectory at
    #: their default, so that every earlier checkpoint still resumes.
    LATER_FIELDS = {"exclude_input_items": False}

    def __post_init__(self):
        _choice("amp", self.amp, AMP_MODES)
        _choice("loss", self.loss, LOSSES)
        _choice("negative_sampling", self.negative_sampling, NEGATIVE_SAMPLING)
        _choice("train_samples", self.train_samples, ROW_LAYOUTS)
        _choice("compile", self.compile, COMPILE_MODES)
        for name in ("epochs", "batch_size", "eval_every"):
            _positive_int(name, getattr(self, name))
        for name in ("threads", "n_negatives"):
            if getattr(self, name) is not None:
                _positive_int(name, getattr(self, name))
        check_int(self.patience, "patience", minimum=0)
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr!r}")
        if not self.weight_decay >= 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ValueError(f"grad_clip must be > 0 (or none), got {self.grad_clip!r}")
        metric, _, k = self.selection_metric.partition("@")
        if metric not in ("recall", "ndcg", "mrr") or not k.isdigit():
            raise ValueError(f"selection_metric must be recall/ndcg/mrr@K, got {self.selection_metric!r}")

    @property
    def negatives(self) -> int | None:
        """Negatives per target of the loss (``n_negatives`` or the loss's default)."""
        return self.n_negatives if self.n_negatives is not None else DEFAULT_NEGATIVES.get(self.loss)

    def trajectory(self) -> dict:
        """The fields that change what training computes."""
        return {
            k: v
            for k, v in self.to_dict().items()
            if k not in self.NOT_TRAJECTORY and not (k in self.LATER_FIELDS and v == self.LATER_FIELDS[k])
        }


__all__ = [
    "AMP_MODES", "BASELINES", "COMPILE_MODES", "DEFAULT_NEGATIVES", "EvalOptions", "ITEM_TABLES", "ItemTableOptions",
    "LOSSES", "MODELS", "MODEL_DEFAULTS", "ModelOptions", "NEGATIVE_SAMPLING", "POSITIONS", "PROTOCOLS",
    "ROW_LAYOUTS", "TrainOptions",
]  # fmt: skip
