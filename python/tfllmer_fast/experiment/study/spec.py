"""The TF-LLMER study: datasets x backbones x variants x seeds, with a small selection grid.

A study is described by a TOML/YAML file (see ``studies/``)::

    [study]
    backbones = ["sasrec"]
    variants = ["id", "llminit", "pca+norm", "recpca", "tfllmer"]
    seeds = [0, 1, 2]

    [base]                      # Config fields shared by every run (same backbone settings)
    epochs = 60
    patience = 10

    [grid]                      # selection grid; each key only applies where it matters
    lam = [0.25, 0.5, 1.0]      # recpca, tfllmer
    graph_window = ["none", 5]  # recpca, tfllmer
    temperature = [1.0, 0.5]    # pca+norm, tfllmer (normalised scoring)

    [[dataset]]
    name = "beauty"             # label; ``dataset`` defaults to it (a relative path is
                                # resolved against the study file's folder)
    [[dataset]]
    name = "ml-100k"
    max_len = 200               # any other key: a Config override for this dataset
    seeds = [0]                 # per-dataset seeds / grid override the study's
    [dataset.grid]
    lam = [0.5]

Variants (same backbone hyper-parameters for all):

* ``id``: random item table (ID-only), plain dot-product scoring;
* ``llminit``: PCA of the LLM embeddings (rescaled to the random init's std), dot product;
* ``llminit-raw`` (extra): the same PCA table at its raw scale (``init_scale="none"``);
* ``pca+norm``: the PCA table, normalised item scoring with temperature tau;
* ``recpca``: Rec-PCA table (lam, graph window), dot product;
* ``tfllmer``: Rec-PCA table, normalised item scoring (TF-LLMER).

Protocol: every grid point of a variant is trained with the first seed and the setting with
the best **validation** NDCG@10 (the config's ``selection_metric``) is then trained with every
seed (the first seed's run is the grid run itself). Test metrics are never used to choose.
Data, split, graphs (one per window) and initial item tables are computed once per dataset.
The trivial baselines (``[study] baselines``, default all of
:data:`tfllmer_fast.train.BASELINES`) are evaluated once per dataset, beside every backbone.
Each run has its own folder (``runs/<dataset>/<backbone>/<variant>/<setting>-seed<k>``): a
finished run (``results.json``) is skipped, an interrupted one resumes from its checkpoint.

Conditioning (``conditioning.json`` per run): the Hessian of the full-softmax CE w.r.t. the
sequence representations of one fixed batch of training windows (the last prediction point
of 256 windows drawn with a fixed seed), with the run's scoring (item normalisation, tau), at
initialisation and after training (best state), from
:func:`tfllmer_fast.train.conditioning.conditioning_report` (exact blocks, float64). With
``normalize_hidden`` the Gauss-Newton figure is reported as well (the Hessian is indefinite).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path

from ...data.load import BUILTIN_DATASETS
from ...train.options import BASELINES
from ..config import Config, flatten_config, load_config_file
from ..results import load_results

VARIANTS = {
    "id": dict(init="random", normalize_items=False, embeddings=None),
    "llminit": dict(init="pca", normalize_items=False),
    # LLMInit with the raw PCA scale (no rescaling to the random init's std): the LLM
    # geometry's own norms reach the backbone, as in an implementation that copies the
    # projected vectors verbatim.
    "llminit-raw": dict(init="pca", normalize_items=False, init_scale="none"),
    # The LLM rows kept through training (train.item_tables): fixed, or fixed + a small delta.
    "llminit-frozen": dict(init="pca", normalize_items=False, item_table_mode="frozen"),
    "llminit-delta": dict(init="pca", normalize_items=False, item_table_mode="frozen+delta"),
    "pca+norm": dict(init="pca", normalize_items=True),
    "recpca": dict(init="recpca", normalize_items=False),
    "tfllmer": dict(init="recpca", normalize_items=True),
    "tfllmer-frozen": dict(init="recpca", normalize_items=True, item_table_mode="frozen"),
    "tfllmer-delta": dict(init="recpca", normalize_items=True, item_table_mode="frozen+delta"),
}
VARIANT_LABELS = {
    "id": "ID-only",
    "llminit": "LLMInit (PCA)",
    "llminit-raw": "LLMInit, raw PCA scale",
    "pca+norm": "PCA + norm",
    "recpca": "Rec-PCA",
    "tfllmer": "TF-LLMER (Rec-PCA + norm)",
    "llminit-frozen": "LLMInit, frozen",
    "llminit-delta": "LLMInit, frozen + delta",
    "tfllmer-frozen": "TF-LLMER, frozen",
    "tfllmer-delta": "TF-LLMER, frozen + delta",
}
GRID_KEYS = ("lam", "graph_window", "temperature", "delta_bound", "delta_l2")


def grid_keys_for(variant: str) -> tuple[str, ...]:
    """The grid keys that change a variant's runs (others are ignored for it)."""
    spec = VARIANTS[variant]
    keys = []
    if spec["init"] == "recpca":
        keys += ["lam", "graph_window"]
    if spec["normalize_items"]:
        keys.append("temperature")
    if spec.get("item_table_mode") == "frozen+delta":
        keys += ["delta_bound", "delta_l2"]
    return tuple(keys)


def _none(v):
    return None if isinstance(v, str) and v.lower() in ("none", "null") else v


# ----- the study description ---------------------------------------------------------------
@dataclass
class DatasetSpec:
    name: str
    overrides: dict
    seeds: list[int]
    grid: dict


@dataclass
class StudySpec:
    backbones: list[str]
    variants: list[str]
    seeds: list[int]
    base: dict
    grid: dict
    datasets: list[DatasetSpec] = field(default_factory=list)
    title: str = "TF-LLMER study"
    baselines: list[str] = field(default_factory=lambda: list(BASELINES))

    @classmethod
    def from_dict(cls, d: dict, base_dir=None) -> StudySpec:
        """The study of mapping ``d``; ``base_dir``: the folder relative data paths
        (``dataset``, ``cold_items_from``, and ``embeddings`` files found there) are
        resolved against (the study file's; None: the current directory)."""
        d = dict(d)
        unknown = set(d) - {"study", "base", "grid", "dataset"}
        if unknown:
            raise ValueError(f"unknown study section(s): {', '.join(sorted(unknown))}")
        st = dict(d.get("study", {}))
        bad = set(st) - {"backbones", "variants", "seeds", "title", "baselines"}
        if bad:
            raise ValueError(f"unknown [study] key(s): {', '.join(sorted(bad))}")
        variants = list(st.get("variants", list(VARIANTS)))
        for v in variants:
            if v not in VARIANTS:
                raise ValueError(f"unknown variant {v!r}; choose from {list(VARIANTS)}")
        baselines = list(st.get("baselines", BASELINES))
        for b in baselines:
            if b not in BASELINES:
                raise ValueError(f"unknown baseline {b!r}; choose from {list(BASELINES)}")
        grid = _check_grid(d.get("grid", {}))
        base = _resolve_paths(flatten_config(d.get("base", {})), base_dir)
        seeds = [int(s) for s in st.get("seeds", [0])]
        datasets = []
        for entry in d.get("dataset", []):
            entry = dict(entry) if isinstance(entry, dict) else {"name": str(entry)}
            if "name" not in entry:
                raise ValueError("every [[dataset]] needs a name")
            name = str(entry.pop("name"))
            ds_seeds = [int(s) for s in entry.pop("seeds", seeds)]
            ds_grid = {**grid, **_check_grid(entry.pop("grid", {}))}
            overrides = _resolve_paths({"dataset": name, **flatten_config(entry)}, base_dir)
            Config.from_dict(_data_fields(base, overrides))  # validate the keys now, not hours later
            datasets.append(DatasetSpec(name, overrides, ds_seeds, ds_grid))
        if not datasets:
            raise ValueError("the study has no [[dataset]]")
        backbones = list(st.get("backbones", ["sasrec"]))
        for ds in datasets:  # every variant x grid point, now: bad input fails before data loads
            for v in variants:
                for point in grid_points(ds, v):
                    for b in backbones:
                        Config.from_dict({**base, **ds.overrides, "model": b, **VARIANTS[v], **point})
        if len({ds.name for ds in datasets}) != len(datasets):
            raise ValueError("dataset names must be unique")
        return cls(
            backbones=backbones,
            variants=variants,
            seeds=seeds,
            base=base,
            grid=grid,
            datasets=datasets,
            title=str(st.get("title", "TF-LLMER study")),
            baselines=baselines,
        )

    @classmethod
    def from_file(cls, path) -> StudySpec:
        """The study of a TOML/YAML file; relative data paths in it are relative to its folder."""
        path = Path(path)
        return cls.from_dict(load_config_file(path), base_dir=path.resolve().parent)


def _resolve_paths(fields: dict, base_dir) -> dict:
    """``dataset`` and ``cold_items_from`` given as relative paths, resolved against
    ``base_dir``; an ``embeddings`` file too when it is there (a name such as "minilm", or a
    file of the dataset's own folder, is left to the loader)."""
    if base_dir is None:
        return fields
    base_dir = Path(base_dir)
    out = dict(fields)
    for key in ("dataset", "cold_items_from", "embeddings"):
        v = out.get(key)
        if not isinstance(v, str) or Path(v).is_absolute():
            continue
        if key == "dataset" and v in ("synthetic", *BUILTIN_DATASETS):
            continue
        if key == "embeddings" and (v in ("minilm", "feat512") or not (base_dir / v).exists()):
            continue
        out[key] = str(base_dir / v)
    return out


def _check_grid(g: dict) -> dict:
    out = {}
    for k, v in g.items():
        k = k.replace("-", "_")
        if k not in GRID_KEYS:
            raise ValueError(f"grid key {k!r} not supported; use {GRID_KEYS}")
        vals = v if isinstance(v, list) else [v]
        if not vals:
            raise ValueError(f"grid {k} is empty")
        out[k] = [_none(x) for x in vals]
    return out


def setting_tag(setting: dict) -> str:
    """Folder-name tag of a grid point: ``lam0.5-wnone-tau1``; ``default`` when empty."""
    short = {"lam": "lam", "graph_window": "w", "temperature": "tau", "delta_bound": "db", "delta_l2": "l2"}
    if not setting:
        return "default"
    return "-".join(f"{short[k]}{'none' if v is None else format(v, 'g')}" for k, v in setting.items())


@dataclass
class Job:
    dataset: DatasetSpec
    backbone: str
    variant: str
    setting: dict
    seed: int
    config: Config
    folder: Path


def variant_config(spec: StudySpec, ds: DatasetSpec, backbone: str, variant: str, setting: dict, seed: int) -> Config:
    tag = setting_tag(setting)
    fields = {
        **spec.base,
        **ds.overrides,
        "model": backbone,
        **VARIANTS[variant],
        **setting,
        "seed": seed,
        "name": f"{variant}[{tag}]",
    }
    return Config.from_dict(fields)


def grid_points(ds: DatasetSpec, variant: str) -> list[dict]:
    """The settings of the selection grid of ``variant`` on dataset row ``ds``: one dict per
    combination of the grid keys that apply to the variant."""
    keys = [k for k in grid_keys_for(variant) if k in ds.grid]
    return [dict(zip(keys, vals)) for vals in itertools.product(*(ds.grid[k] for k in keys))]


def jobs_for(
    spec: StudySpec,
    ds: DatasetSpec,
    backbone: str,
    variant: str,
    root: Path,
    seeds_stage: bool,
    chosen: dict | None,
    seeds: list[int] | None = None,
) -> list[Job]:
    """The runs of a variant: every grid point with the dataset's first seed, or
    (``seeds_stage``) the ``chosen`` point with every seed (``seeds``, default the dataset's)."""
    jobs = []
    points = [chosen] if seeds_stage else grid_points(ds, variant)
    seeds = (ds.seeds if seeds is None else list(seeds)) if seeds_stage else ds.seeds[:1]
    for setting in points:
        for seed in seeds:
            cfg = variant_config(spec, ds, backbone, variant, setting, seed)
            folder = root / "runs" / ds.name / backbone / variant / f"{setting_tag(setting)}-seed{seed}"
            jobs.append(Job(ds, backbone, variant, setting, seed, cfg, folder))
    return jobs


def finished_seeds(root: Path, ds: DatasetSpec, backbone: str, variant: str, setting: dict) -> list[int]:
    """Seeds of a setting's finished runs on disk (any seed, e.g. one given by ``--seeds``)."""
    folder = root / "runs" / ds.name / backbone / variant
    tag = setting_tag(setting)
    out = []
    for p in folder.glob(f"{tag}-seed*") if folder.is_dir() else []:
        k = p.name[len(tag) + len("-seed") :]
        if k.lstrip("-").isdigit() and (p / "results.json").exists():
            out.append(int(k))
    return sorted(out)


def baseline_folder(root: Path, ds: DatasetSpec, name: str) -> Path:
    """Where a baseline's results.json lives: ``runs/<dataset>/baselines/<name>``."""
    return Path(root) / "runs" / ds.name / "baselines" / name


def dataset_config(spec: StudySpec, ds: DatasetSpec) -> Config:
    """The configuration of a dataset row's data (shared by its runs) and of its baselines
    (its evaluation fields; the first seed). Without embeddings its table is ID-only."""
    return Config.from_dict({**_data_fields(spec.base, ds.overrides), "seed": ds.seeds[0]})


def _data_fields(base: dict, overrides: dict) -> dict:
    fields = {**base, **overrides}
    if fields.get("embeddings", "minilm") is None:
        fields["init"] = "random"
    return fields


def select_setting(jobs: list[Job], metric: str) -> tuple[dict, list[dict]]:
    """The grid point with the best validation ``metric`` (ties: the first listed)."""
    rows = []
    for j in jobs:
        r = load_results(j.folder / "results.json")
        rows.append(
            {
                "setting": j.setting,
                "tag": setting_tag(j.setting),
                "valid": r["metrics"]["valid"][metric],
                "test": r["metrics"]["test"][metric],
            }
        )
    best = max(range(len(rows)), key=lambda i: (rows[i]["valid"], -i))
    for i, row in enumerate(rows):
        row["chosen"] = i == best
    return rows[best]["setting"], rows
