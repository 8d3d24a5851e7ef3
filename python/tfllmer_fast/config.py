"""Every knob of a training run in one dataclass, loadable from TOML or YAML.

Files may be flat (``model = "gru4rec"``) or grouped in tables/sections (``[model]``,
``[train]``, ...): section names are ignored, keys must be field names of :class:`Config`.
Unknown keys are errors (typos must not pass silently). Command-line flags override files.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from .losses import LOSSES
from .models.common import POSITIONS

INIT_MODES = ("random", "pca", "recpca")
DEFAULT_DROPOUT = {"sasrec": 0.5, "gru4rec": 0.3, "bert4rec": 0.2}


@dataclass
class Config:
    """A training run. Defaults: TF-LLMER SASRec (Rec-PCA init + normalised item scoring) on
    the built-in synthetic catalogue, RecBole's hyper-parameters otherwise."""

    # --- run ---
    name: str | None = None          # label in results tables (default: derived)
    seed: int = 0
    device: str = "auto"             # "auto" = CUDA when available, else CPU
    threads: int | None = None       # CPU threads for torch (None = all cores)
    amp: str = "auto"                # "auto" (bf16 on CUDA if supported, else fp16), "bf16", "fp16", "off"
    progress: bool = True            # tqdm progress bars

    # --- data ---
    dataset: str = "synthetic"       # "synthetic", "beauty", "scientific", "ml-100k" or a folder
    embeddings: str | None = "minilm"  # "minilm", "feat512", a .npy path, or None (ID-only)
    kcore: int | None = None
    max_len: int = 50
    synthetic_users: int = 4000       # only for dataset = "synthetic"
    synthetic_items: int = 1500
    synthetic_dim: int = 64

    # --- model ---
    model: str = "sasrec"            # "sasrec", "gru4rec", "bert4rec"
    hidden: int = 64
    n_layers: int | None = None      # default: 2 (transformers), 1 (GRU4Rec)
    n_heads: int = 2
    inner_size: int = 256
    dropout: float | None = None     # default per model: 0.5 / 0.3 / 0.2
    attn_dropout: float | None = None  # default = dropout
    gru_hidden: int = 128
    mask_ratio: float = 0.2
    layer_norm_eps: float = 1e-12
    init_std: float = 0.02
    positions: str = "from_start"    # transformer position ids: "from_start" (RecBole) or "from_end"

    # --- item table and scoring ---
    init: str = "recpca"             # "random", "pca", "recpca"
    normalize_items: bool = True     # logits = <h, e/||e||> / temperature
    normalize_hidden: bool = False
    temperature: float = 1.0
    lam: float = 0.5                 # Rec-PCA lambda (RecPCA's default)
    graph_window: int | None = None  # co-occurrence window (None = whole history)
    graph_weighting: str = "count"
    normalize_llm: bool | None = None  # L2-normalise LLM rows before PCA (None: recpca yes, pca no)
    init_scale: str = "std"          # "std" (match random-init std), "unit" (unit rows), "none"

    # --- training ---
    loss: str = "ce"                 # "ce", "bce", "sampled_softmax"
    n_negatives: int | None = None   # bce: 1; sampled_softmax: 1024
    negative_sampling: str = "uniform"  # sampled_softmax: "uniform" or "popularity"
    epochs: int = 200
    train_samples: str = "auto"      # "prefixes": RecBole's one row per target; "windows": every position of a history at once; "auto": prefixes for next-item models, windows for BERT4Rec
    batch_size: int = 256            # training rows (windows or prefixes) per step
    length_bucketing: bool = True    # batches of similar-length windows (less padding work)
    lr: float = 1e-3
    weight_decay: float = 0.0
    grad_clip: float | None = None
    patience: int = 10               # evaluations without improvement before stopping
    eval_every: int = 1
    selection_metric: str = "ndcg@10"

    # --- evaluation ---
    protocol: str = "full"           # "full", "sampled" or "both" for the final metrics
    mask_history: bool = False
    eval_negatives: int = 100
    eval_batch_size: int | None = None
    ks: list[int] = field(default_factory=lambda: [5, 10, 20])

    def __post_init__(self):
        self.validate()

    # ----- derived -----------------------------------------------------------------------
    @property
    def model_dropout(self) -> float:
        return DEFAULT_DROPOUT[self.model] if self.dropout is None else self.dropout

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        norm = "+norm" if self.normalize_items else ""
        return f"{self.model}-{self.init}{norm}"

    def validate(self) -> None:
        def choice(key, options):
            if getattr(self, key) not in options:
                raise ValueError(f"{key} must be one of {options}, got {getattr(self, key)!r}")

        choice("model", tuple(DEFAULT_DROPOUT))
        choice("positions", POSITIONS)
        choice("train_samples", ("auto", "windows", "prefixes"))
        choice("init", INIT_MODES)
        choice("loss", LOSSES)
        choice("amp", ("auto", "bf16", "fp16", "off"))
        choice("protocol", ("full", "sampled", "both"))
        choice("init_scale", ("std", "unit", "none"))
        choice("negative_sampling", ("uniform", "popularity"))
        for key in ("hidden", "max_len", "epochs", "batch_size", "n_heads", "inner_size",
                    "eval_every", "eval_negatives", "gru_hidden"):
            if int(getattr(self, key)) < 1:
                raise ValueError(f"{key} must be >= 1, got {getattr(self, key)}")
        if self.patience < 0:
            raise ValueError("patience must be >= 0")
        if not self.temperature > 0:
            raise ValueError("temperature must be > 0")
        if not self.lr > 0:
            raise ValueError("lr must be > 0")
        if self.init != "random" and self.embeddings is None:
            raise ValueError(f"init={self.init!r} needs item embeddings; set embeddings "
                             "or use init='random'")
        m, k = self.selection_metric.split("@") if "@" in self.selection_metric else ("", "")
        if m not in ("recall", "ndcg", "mrr") or not k.isdigit() or int(k) not in self.ks:
            raise ValueError(f"selection_metric must be recall/ndcg/mrr@K with K in ks, "
                             f"got {self.selection_metric!r}")

    # ----- (de)serialisation ------------------------------------------------------------
    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Config":
        flat = _flatten(d)
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(flat) - names)
        if unknown:
            raise ValueError(f"unknown config key(s): {', '.join(unknown)}")
        return cls(**flat)

    @classmethod
    def from_file(cls, path) -> "Config":
        return cls.from_dict(load_config_file(path))

    def replace(self, **changes) -> "Config":
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_saved(cls, d: dict) -> "Config":
        """A config saved by an earlier run (checkpoint or results.json): fields it lacks
        take the value those runs used (:data:`LEGACY_DEFAULTS`), not today's default."""
        return cls.from_dict({**LEGACY_DEFAULTS, **_flatten(d)})

    def fingerprint(self) -> str:
        """JSON of the fields that change the training trajectory (resume must match).
        A field at its :data:`LEGACY_DEFAULTS` value is left out, so checkpoints written
        before it existed still match the configuration they were trained with."""
        skip = {"name", "device", "threads", "progress", "epochs", "patience", "protocol",
                "mask_history", "eval_negatives", "eval_batch_size"}
        return json.dumps({k: v for k, v in self.to_dict().items()
                           if k not in skip and not (k in LEGACY_DEFAULTS and v == LEGACY_DEFAULTS[k])},
                          sort_keys=True)


#: Fields added after runs had been saved, with the behaviour those runs had.
LEGACY_DEFAULTS = {"positions": "from_end", "train_samples": "windows"}


def _flatten(d: dict) -> dict:
    out = {}
    for k, v in d.items():
        k = k.replace("-", "_")
        if isinstance(v, dict):
            for kk, vv in _flatten(v).items():
                if kk in out:
                    raise ValueError(f"config key {kk!r} given twice")
                out[kk] = vv
        else:
            if k in out:
                raise ValueError(f"config key {k!r} given twice")
            out[k] = None if v in ("none", "None", "null") and k in _NULLABLE else v
    return out


_NULLABLE = {"embeddings", "kcore", "n_layers", "dropout", "attn_dropout", "graph_window",
             "normalize_llm", "n_negatives", "grad_clip", "eval_batch_size", "threads", "name"}


def load_config_file(path) -> dict:
    """Parse a ``.toml`` (tomllib) or ``.yaml``/``.yml`` (PyYAML, if installed) file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".toml":
        with open(path, "rb") as f:
            return tomllib.load(f)
    if suffix in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise ImportError("YAML configs need PyYAML: pip install pyyaml") from e
        with open(path) as f:
            data = yaml.safe_load(f) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{path}: the top level must be a mapping")
        return data
    if suffix == ".json":
        return json.loads(path.read_text())
    raise ValueError(f"config file must be .toml, .yaml/.yml or .json, got {path.name}")
