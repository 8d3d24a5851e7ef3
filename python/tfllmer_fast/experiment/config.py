"""Every knob of a training run in one dataclass, loadable from TOML or YAML.

Files may be flat (``model = "gru4rec"``) or grouped in tables/sections (``[model]``,
``[train]``, ...): section names are ignored, keys must be field names of :class:`Config`.
Unknown keys are errors (typos must not pass silently). Command-line flags override files.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from ..data.keys import KEY_TYPES
from ..train.options import (
    AMP_MODES,
    COMPILE_MODES,
    ITEM_TABLES,
    LOSSES,
    MODELS,
    NEGATIVE_SAMPLING,
    POSITIONS,
    PROTOCOLS,
    EvalOptions,
    ItemTableOptions,
    ModelOptions,
    TrainOptions,
)
from ..train.options import ROW_LAYOUTS as TRAIN_SAMPLES

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

#: The choices of the graph options (the graph layer has the same names: a test checks it).
INIT_MODES = ("random", "pca", "recpca")
INIT_SCALES = ("std", "unit", "none")
GRAPH_WEIGHTINGS = ("count", "inverse_distance", "binary")

#: Fields renamed since configurations were first saved: old name -> new name.
RENAMED_FIELDS = {"item_table": "item_table_mode"}
#: Fields added after checkpoints were first fingerprinted (see Config.fingerprint).
ADDED_FIELDS = frozenset({"user_col", "item_col", "time_col", "time_format", "key_type", "item_text", "text_cols"})

#: Named sets of fields a run can start from (``--preset``); files and flags override them.
PRESETS = {
    # The built-in demo: a short schedule that finishes in minutes on a laptop CPU (prefix
    # rows reach in ~8 epochs what 20 window epochs did).
    "quick": {"epochs": 8, "patience": 3},
}


def _opt(default, help: str, *, choices=None, factory=None):
    """A Config field with its help text (and choices) for the documentation and the CLI
    (its flag is its name with dashes)."""
    meta = {"help": help, "choices": choices}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class Config:
    """A training run. Defaults: TF-LLMER SASRec (Rec-PCA init + normalised item scoring) on
    the built-in synthetic catalogue, RecBole's hyper-parameters otherwise."""

    # --- run ---
    name: str | None = _opt(None, "label in results tables (default: derived from the fields)")
    seed: int = _opt(0, "seed of the initialisation, data order, dropout and masks")
    device: str = _opt("auto", "'auto' (CUDA when available, else CPU), 'cpu', 'cuda', 'cuda:N'")
    threads: int | None = _opt(None, "CPU threads for torch and the C++ kernels (none: all cores)")
    amp: str = _opt("auto", "mixed precision on CUDA: auto = bf16 where supported, else fp16", choices=AMP_MODES)
    progress: bool = _opt(True, "progress bars (the one line per epoch is a log record: the CLI prints it)")

    # --- data ---
    dataset: str = _opt(
        "synthetic",
        "'synthetic', 'beauty', 'scientific', 'ml-100k', or a "
        "folder or file of your own (.txt, .inter, .csv, .tsv, .parquet)",
    )
    embeddings: str | None = _opt(
        "minilm", "item embeddings: 'minilm', 'feat512' (scientific), a .npy/.npz/.f32 file, or none (ID-only)"
    )
    user_col: str = _opt("user_id", "table sources (.csv, .tsv, .parquet): the user-key column")
    item_col: str = _opt("item_id", "table sources: the item-key column (also of the item-text table)")
    time_col: str | None = _opt("timestamp", "table sources: the time column (none: row order is the order)")
    time_format: str | None = _opt(
        None, "strptime format of a text time column, e.g. '%%d/%%m/%%Y %%H:%%M' (none: ISO 8601 dates only)"
    )
    key_type: str = _opt(
        "auto", "keys read from text: auto (as written unless all are canonical integers), str, int", choices=KEY_TYPES
    )
    item_text: str | None = _opt(
        None,
        "a table of item text (.csv, .tsv, .parquet) keyed by item_col; with embeddings 'minilm' and no "
        "embedding file, the MiniLM embeddings of the texts are computed (text extra) and cached",
    )
    text_cols: list[str] | None = _opt(None, "the item-text table's text columns (none: 'text', else all but the key)")
    kcore: int | None = _opt(None, "keep the k-core: users and items with >= k interactions")
    max_len: int = _opt(50, "most recent items a model reads")
    synthetic_users: int = _opt(4000, "users of the synthetic catalogue")
    synthetic_items: int = _opt(1500, "items of the synthetic catalogue")
    synthetic_dim: int = _opt(64, "embedding width of the synthetic catalogue")
    cold_items: float = _opt(
        0.0, "cold-start protocol: share of items removed from every training sequence (evaluated as new items; 0: off)"
    )
    cold_seed: int = _opt(0, "seed of the cold-item draw")
    cold_items_from: str | None = _opt(
        None, "file listing the cold items (the data's item ids, whitespace-separated); instead of cold_items"
    )

    # --- model ---
    model: str = _opt("sasrec", "backbone", choices=MODELS)
    hidden: int = _opt(64, "model width (and the Rec-PCA/PCA output dimension)")
    n_layers: int | None = _opt(None, "layers (none: 2 for transformers, 1 for GRU4Rec)")
    n_heads: int = _opt(2, "attention heads")
    inner_size: int = _opt(256, "feed-forward width of a transformer layer")
    dropout: float | None = _opt(None, "dropout (none: 0.5 SASRec, 0.3 GRU4Rec, 0.2 BERT4Rec)")
    attn_dropout: float | None = _opt(None, "attention dropout (none: = dropout)")
    gru_hidden: int = _opt(128, "GRU4Rec state width")
    mask_ratio: float = _opt(0.2, "BERT4Rec: share of items masked per training row")
    layer_norm_eps: float = _opt(1e-12, "LayerNorm epsilon")
    init_std: float = _opt(0.02, "std of the random init (and of a rescaled LLM table)")
    positions: str = _opt(
        "from_start",
        "transformer position ids counted from each row's first item (RecBole) or from its end",
        choices=POSITIONS,
    )

    # --- item table and scoring ---
    init: str = _opt("recpca", "item table: random (ID-only), pca (LLMInit), recpca", choices=INIT_MODES)
    normalize_items: bool = _opt(True, "score with unit item rows: <h, e/|e|> / temperature")
    normalize_hidden: bool = _opt(False, "also L2-normalise the sequence representation h")
    temperature: float = _opt(1.0, "softmax temperature of the scores")
    lam: float = _opt(0.5, "Rec-PCA graph weight lambda (0 = PCA)")
    graph_window: int | None = _opt(None, "co-occurrence window in positions (none: whole history)")
    graph_weighting: str = _opt("count", "co-occurrence weights", choices=GRAPH_WEIGHTINGS)
    normalize_llm: bool | None = _opt(
        None, "L2-normalise LLM rows before the projection (none: yes for recpca, no for pca)"
    )
    init_scale: str = _opt(
        "std",
        "scale of the projected table: std (random init's std), unit (unit rows), none (raw)",
        choices=INIT_SCALES,
    )
    item_table_mode: str = _opt(
        "free",
        "what training may change in the LLM table: free (every "
        "row), frozen (the projected rows are fixed), frozen+delta (fixed "
        "rows plus a small trainable delta)",
        choices=ITEM_TABLES,
    )
    delta_l2: float = _opt(
        0.0,
        "frozen+delta: L2 penalty on the delta, relative to the table's energy (sum |delta_i|^2 / sum |p_i|^2; 0: off)",
    )
    delta_bound: float | None = _opt(
        0.25,
        "frozen+delta: bound on each row's delta relative "
        "to its frozen row, |delta_i| <= bound * |p_i| (none: no "
        "bound)",
    )

    # --- training ---
    loss: str = _opt("ce", "training loss", choices=LOSSES)
    n_negatives: int | None = _opt(None, "negatives per target (none: bce 1, sampled_softmax 1024)")
    negative_sampling: str = _opt("uniform", "sampled_softmax negatives", choices=NEGATIVE_SAMPLING)
    epochs: int = _opt(200, "most training epochs (early stopping usually ends sooner)")
    train_samples: str = _opt(
        "auto",
        "training rows: prefixes (RecBole's one row per target), "
        "windows (a whole history at once); auto: prefixes for next-item "
        "models, windows for BERT4Rec",
        choices=TRAIN_SAMPLES,
    )
    batch_size: int = _opt(256, "training rows per step")
    length_bucketing: bool = _opt(True, "batches of similar-length rows (less padding work)")
    static_shapes: bool = _opt(
        False,
        "round batch widths up to multiples of 8 (few shapes for "
        "CUDA graphs / compile; the extra columns are masked padding)",
    )
    compile: str = _opt(
        "off",
        "torch.compile the encoder on CUDA (reduce-overhead = CUDA graphs); ignored on the CPU",
        choices=COMPILE_MODES,
    )
    lr: float = _opt(1e-3, "Adam learning rate")
    weight_decay: float = _opt(0.0, "Adam weight decay")
    grad_clip: float | None = _opt(None, "clip the gradient norm to this (none: no clipping)")
    patience: int = _opt(10, "evaluations without improvement before stopping")
    eval_every: int = _opt(1, "validate every N epochs")
    selection_metric: str = _opt(
        "ndcg@10", "validation metric for early stopping and the best state: recall/ndcg/mrr@K with K in ks"
    )
    exclude_input_items: bool = _opt(
        False,
        "ce loss: the items of each training row's own input (except its target) are no negatives "
        "of the softmax (next-item models)",
    )

    # --- evaluation ---
    protocol: str = _opt("full", "final metrics: full ranking, 100 sampled negatives, or both", choices=PROTOCOLS)
    mask_history: bool = _opt(False, "full ranking: exclude the user's history items")
    eval_negatives: int = _opt(100, "negatives per user of the sampled protocol")
    eval_batch_size: int | None = _opt(None, "users per evaluation block (none: automatic)")
    ks: list[int] = _opt(None, "cut-offs K of the metrics", factory=lambda: [5, 10, 20])
    head_share: float = _opt(
        0.2,
        "head items: the most frequent (warm) items that hold this "
        "share of training interactions; the rest is the tail",
    )

    def __post_init__(self):
        self.validate()

    # ----- derived -----------------------------------------------------------------------
    @property
    def model_options(self) -> ModelOptions:
        """The backbone's options (``None`` fields resolved from the model's defaults)."""
        return ModelOptions.from_mapping(self.to_dict())

    @property
    def item_table_options(self) -> ItemTableOptions:
        return ItemTableOptions(mode=self.item_table_mode, delta_l2=self.delta_l2, delta_bound=self.delta_bound)

    @property
    def train_options(self) -> TrainOptions:
        return TrainOptions.from_mapping(self.to_dict())

    @property
    def eval_options(self) -> EvalOptions:
        return EvalOptions.from_mapping({**self.to_dict(), "ks": tuple(self.ks)})

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        norm = "+norm" if self.normalize_items else ""
        if self.item_table_mode != "free":
            norm += f"+{self.item_table_mode}"
        # The embedding source tells apart runs that differ only in it (minilm vs feat512).
        source = "" if self.init == "random" else f"-{Path(str(self.embeddings)).stem}"
        return f"{self.model}-{self.init}{norm}{source}"

    def validate(self) -> None:
        for f in fields(self):
            options = f.metadata.get("choices")
            if options and getattr(self, f.name) not in options:
                raise ValueError(f"{f.name} must be one of {options}, got {getattr(self, f.name)!r}")
        # The training layer's records check their own fields.
        self.model_options, self.item_table_options, self.train_options, self.eval_options  # noqa: B018
        for key in ("synthetic_users", "synthetic_items", "synthetic_dim"):
            if int(getattr(self, key)) < 1:
                raise ValueError(f"{key} must be >= 1, got {getattr(self, key)}")
        if self.kcore is not None and int(self.kcore) < 1:
            raise ValueError(f"kcore must be >= 1 (or none), got {self.kcore}")
        if self.init != "random" and self.embeddings is None:
            raise ValueError(f"init={self.init!r} needs item embeddings; set embeddings or use init='random'")
        self._validate_item_table()
        if not 0.0 <= self.cold_items < 1.0:
            raise ValueError(f"cold_items must be a fraction in [0, 1), got {self.cold_items}")
        if self.cold_items and self.cold_items_from:
            raise ValueError("give cold_items or cold_items_from, not both")
        m, k = self.selection_metric.split("@") if "@" in self.selection_metric else ("", "")
        if m not in ("recall", "ndcg", "mrr") or not k.isdigit() or int(k) not in self.ks:
            raise ValueError(f"selection_metric must be recall/ndcg/mrr@K with K in ks, got {self.selection_metric!r}")

    def _validate_item_table(self) -> None:
        if self.item_table_mode != "free" and self.init == "random":
            raise ValueError(
                f"item_table_mode={self.item_table_mode!r} keeps the LLM rows, but "
                "init='random' (ID-only) has none: use item_table_mode='free' or an "
                "LLM init (pca, recpca)"
            )

    # ----- (de)serialisation ------------------------------------------------------------
    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Config:
        flat = flatten_config(d)
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(flat) - names)
        if unknown:
            raise ValueError(f"unknown config key(s): {', '.join(unknown)}")
        return cls(**flat)

    @classmethod
    def from_file(cls, path) -> Config:
        return cls.from_dict(load_config_file(path))

    def replace(self, **changes) -> Config:
        return dataclasses.replace(self, **changes)

    def fingerprint(self) -> str:
        """JSON of the fields that change the training trajectory (resume must match)."""
        skip = {
            "name",
            "device",
            "threads",
            "progress",
            "epochs",
            "patience",
            "protocol",
            "mask_history",
            "eval_negatives",
            "eval_batch_size",
            "head_share",
            "compile",
        }
        if self.item_table_mode != "frozen+delta":  # the delta's options act on nothing else
            skip |= {"delta_l2", "delta_bound"}
        # Fields added since checkpoints were first fingerprinted count only when they are
        # set, so a run that does not use them resumes from its earlier checkpoints.
        skip |= {f.name for f in fields(self) if f.name in ADDED_FIELDS and getattr(self, f.name) == f.default}
        skip |= {k for k, v in TrainOptions.LATER_FIELDS.items() if getattr(self, k) == v}
        # Fields keep the names they had when checkpoints were first fingerprinted, so a
        # renamed field does not make every earlier checkpoint refuse to resume.
        old_name = {new: old for old, new in RENAMED_FIELDS.items()}
        fields_ = {old_name.get(k, k): v for k, v in self.to_dict().items() if k not in skip}
        return json.dumps({**fields_, **self.eval_options.selection()}, sort_keys=True)


def flatten_config(d: dict) -> dict:
    """The fields of a configuration mapping, with its tables/sections flattened away, dashes
    read as underscores, ``"none"`` read as None for the fields that admit None, and the
    names of earlier versions (``RENAMED_FIELDS``) read as today's. A key given twice is an
    error."""
    out = {}
    for k, v in d.items():
        k = k.replace("-", "_")
        if k in RENAMED_FIELDS:
            if RENAMED_FIELDS[k] in d:
                raise ValueError(
                    f"config keys {k!r} and {RENAMED_FIELDS[k]!r} name the same field: give {RENAMED_FIELDS[k]!r} only"
                )
            k = RENAMED_FIELDS[k]
        if isinstance(v, dict):
            for kk, vv in flatten_config(v).items():
                if kk in out:
                    raise ValueError(f"config key {kk!r} given twice")
                out[kk] = vv
        else:
            if k in out:
                raise ValueError(f"config key {k!r} given twice")
            out[k] = None if v in ("none", "None", "null") and k in _NULLABLE else v
    return out


# Fields whose type admits None: "none" in a file means None there (and only there).
_NULLABLE = frozenset(
    name for name, hint in typing.get_type_hints(Config).items() if type(None) in typing.get_args(hint)
)


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
