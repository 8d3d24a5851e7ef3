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
    name = "beauty"             # label; ``dataset`` defaults to it
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
Each run has its own folder (``runs/<dataset>/<backbone>/<variant>/<setting>-seed<k>``): a
finished run (``results.json``) is skipped, an interrupted one resumes from its checkpoint.

Conditioning (``conditioning.json`` per run): the Hessian of the full-softmax CE w.r.t. the
sequence representations of one fixed batch of training windows (the last prediction point
of 256 windows drawn with a fixed seed), with the run's scoring (item normalisation, tau), at
initialisation and after training (best state), from
:func:`tfllmer_fast.conditioning.conditioning_report` (exact blocks, float64). With
``normalize_hidden`` the Gauss-Newton figure is reported as well (the Hessian is indefinite).
"""

from __future__ import annotations

import itertools
import json
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .config import Config, _flatten, load_config_file
from .results import fmt_mean_std, format_table, load_results, mean_std, write_json_atomic

#: variant -> Config fields (the grid keys that apply to it are in VARIANT_GRID_KEYS)
VARIANTS = {
    "id": dict(init="random", normalize_items=False, embeddings=None),
    "llminit": dict(init="pca", normalize_items=False),
    # LLMInit with the raw PCA scale (no rescaling to the random init's std): the LLM
    # geometry's own norms reach the backbone, as in an implementation that copies the
    # projected vectors verbatim.
    "llminit-raw": dict(init="pca", normalize_items=False, init_scale="none"),
    "pca+norm": dict(init="pca", normalize_items=True),
    "recpca": dict(init="recpca", normalize_items=False),
    "tfllmer": dict(init="recpca", normalize_items=True),
}
VARIANT_LABELS = {"id": "ID-only", "llminit": "LLMInit (PCA)",
                  "llminit-raw": "LLMInit, raw PCA scale", "pca+norm": "PCA + norm",
                  "recpca": "Rec-PCA", "tfllmer": "TF-LLMER (Rec-PCA + norm)"}
GRID_KEYS = ("lam", "graph_window", "temperature")


def grid_keys_for(variant: str) -> tuple[str, ...]:
    """The grid keys that change a variant's runs (others are ignored for it)."""
    spec = VARIANTS[variant]
    keys = []
    if spec["init"] == "recpca":
        keys += ["lam", "graph_window"]
    if spec["normalize_items"]:
        keys.append("temperature")
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

    @classmethod
    def from_dict(cls, d: dict) -> "StudySpec":
        d = dict(d)
        unknown = set(d) - {"study", "base", "grid", "dataset"}
        if unknown:
            raise ValueError(f"unknown study section(s): {', '.join(sorted(unknown))}")
        st = dict(d.get("study", {}))
        bad = set(st) - {"backbones", "variants", "seeds", "title"}
        if bad:
            raise ValueError(f"unknown [study] key(s): {', '.join(sorted(bad))}")
        variants = list(st.get("variants", list(VARIANTS)))
        for v in variants:
            if v not in VARIANTS:
                raise ValueError(f"unknown variant {v!r}; choose from {list(VARIANTS)}")
        grid = _check_grid(d.get("grid", {}))
        base = _flatten(d.get("base", {}))
        seeds = [int(s) for s in st.get("seeds", [0])]
        datasets = []
        for entry in d.get("dataset", []):
            entry = dict(entry) if isinstance(entry, dict) else {"name": str(entry)}
            if "name" not in entry:
                raise ValueError("every [[dataset]] needs a name")
            name = str(entry.pop("name"))
            ds_seeds = [int(s) for s in entry.pop("seeds", seeds)]
            ds_grid = {**grid, **_check_grid(entry.pop("grid", {}))}
            overrides = {"dataset": name, **entry}
            Config.from_dict({**base, **overrides})  # validate the keys now, not hours later
            datasets.append(DatasetSpec(name, overrides, ds_seeds, ds_grid))
        if not datasets:
            raise ValueError("the study has no [[dataset]]")
        if len({ds.name for ds in datasets}) != len(datasets):
            raise ValueError("dataset names must be unique")
        return cls(backbones=list(st.get("backbones", ["sasrec"])), variants=variants,
                   seeds=seeds, base=base, grid=grid, datasets=datasets,
                   title=str(st.get("title", "TF-LLMER study")))

    @classmethod
    def from_file(cls, path) -> "StudySpec":
        return cls.from_dict(load_config_file(path))


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
    short = {"lam": "lam", "graph_window": "w", "temperature": "tau"}
    if not setting:
        return "default"
    return "-".join(f"{short[k]}{'none' if v is None else format(v, 'g')}"
                    for k, v in setting.items())


@dataclass
class Job:
    dataset: DatasetSpec
    backbone: str
    variant: str
    setting: dict
    seed: int
    config: Config
    folder: Path


def variant_config(spec: StudySpec, ds: DatasetSpec, backbone: str, variant: str,
                   setting: dict, seed: int) -> Config:
    tag = setting_tag(setting)
    fields = {**spec.base, **ds.overrides, "model": backbone, **VARIANTS[variant],
              **setting, "seed": seed, "name": f"{variant}[{tag}]"}
    return Config.from_dict(fields)


def grid_points(ds: DatasetSpec, variant: str) -> list[dict]:
    keys = [k for k in grid_keys_for(variant) if k in ds.grid]
    return [dict(zip(keys, vals)) for vals in itertools.product(*(ds.grid[k] for k in keys))]


# ----- runs ---------------------------------------------------------------------------------
class DatasetCache:
    """Data, split, graphs (per window) and initial item tables of one dataset, built once."""

    def __init__(self, config: Config):
        from .pipeline import load_run_data, make_split

        probe = config.replace(init="pca") if config.embeddings is not None else config
        t = time.perf_counter()
        self.data = load_run_data(probe)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.split = make_split(self.data.sequences)
        self.load_s = time.perf_counter() - t
        self.graphs: dict = {}
        self.tables: dict = {}

    def graph(self, window, weighting):
        from .item_init import training_graph

        key = (window, weighting)
        if key not in self.graphs:
            self.graphs[key] = training_graph(self.split, window=window, weighting=weighting)
        return self.graphs[key]

    def item_table(self, c: Config):
        from .item_init import initial_item_table

        if c.init == "random":
            return None
        key = (c.init, c.embeddings, c.hidden, c.normalize_llm, c.init_scale, c.init_std,
               c.lam if c.init == "recpca" else None,
               (c.graph_window, c.graph_weighting) if c.init == "recpca" else None)
        if key not in self.tables:
            graph = (self.graph(c.graph_window, c.graph_weighting) if c.init == "recpca"
                     else None)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self.tables[key] = initial_item_table(
                    c.init, self.data.embeddings, self.split, c.hidden, lam=c.lam,
                    graph=graph, normalize_llm=c.normalize_llm, scale=c.init_scale,
                    init_std=c.init_std)
        return self.tables[key]


def fixed_batch(split, config: Config, causal: bool, size: int = 256, seed: int = 12345):
    """A fixed batch of training windows (shifted ids, trimmed): the same for every variant."""
    import torch

    from .trainer import build_windows

    windows, wlen = build_windows(split.train, config.max_len, causal)
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(windows.shape[0], size=min(size, windows.shape[0]), replace=False))
    width = int(wlen[idx].max())
    return torch.as_tensor(windows[idx][:, -width:])


def model_conditioning(model, batch, config: Config) -> dict:
    """Conditioning of the CE w.r.t. the representations of ``batch`` (last prediction point
    of each window) with the model's output table and scoring; eval mode, no dropout."""
    import torch

    from .conditioning import conditioning_report

    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        batch = batch.to(device)
        with torch.no_grad():
            H = model.next_hidden(batch[:, :-1]).float()
            E = model.item_emb.weight[1:model.n_items + 1].float()
            targets = batch[:, -1] - 1
        kw = dict(tau=config.temperature, normalize_items=config.normalize_items,
                  normalize_h=config.normalize_hidden)
        row = conditioning_report(E, H, targets, **kw)
        out = {k: row[k] for k in ("lambda_max", "lambda_min", "lambda_min_above_threshold",
                                   "condition_number", "median_block_condition_number",
                                   "n_negative", "loss", "item_norm_cv", "seconds")}
        out["h_norm_mean"] = float(H.norm(dim=1).mean())
        if config.normalize_hidden:
            gn = conditioning_report(E, H, targets, curvature="gauss_newton", **kw)
            out["gauss_newton"] = {k: gn[k] for k in ("lambda_max", "lambda_min_above_threshold",
                                                      "condition_number")}
        return out
    finally:
        model.train(was_training)


def run_job(job: Job, cache: DatasetCache, *, verbose: bool = True) -> dict:
    """Train one run (or resume it) and write results.json + conditioning.json."""
    import torch

    from .pipeline import run_experiment
    from .trainer import build_model, seed_everything, set_cpu_threads

    c = job.config
    out = job.folder
    out.mkdir(parents=True, exist_ok=True)
    set_cpu_threads(c.threads)
    table = cache.item_table(c)
    cond_path = out / "conditioning.json"
    cond = json.loads(cond_path.read_text()) if cond_path.exists() else {}
    if "init" not in cond:
        # The same initial model as run_experiment builds (same seed, same table).
        seed_everything(c.seed)
        m0 = build_model(c, cache.split.n_items)
        if table is not None:
            m0.set_item_table(table)
        cond["init"] = model_conditioning(m0, fixed_batch(cache.split, c, m0.causal), c)
        write_json_atomic(cond, cond_path)
        del m0
    res_path = out / "results.json"
    if res_path.exists():
        results = load_results(res_path)
        model = None
    else:
        results, trainer = run_experiment(c, data=cache.data, split=cache.split,
                                          item_table=table, output_dir=out, resume=True,
                                          write_plot=False, verbose=verbose,
                                          return_trainer=True)
        model = trainer.model
    if "trained" not in cond:
        if model is None:  # results exist but the figure is missing: reload the best state
            st = torch.load(out / "checkpoint.pt", map_location="cpu", weights_only=True)
            model = build_model(c, cache.split.n_items)
            model.load_state_dict(st["best_state"] or st["model"])
        cond["trained"] = model_conditioning(model, fixed_batch(cache.split, c, model.causal), c)
        write_json_atomic(cond, cond_path)
    return results


def _jobs_for(spec: StudySpec, ds: DatasetSpec, backbone: str, variant: str, root: Path,
              seeds_stage: bool, chosen: dict | None) -> list[Job]:
    jobs = []
    points = [chosen] if seeds_stage else grid_points(ds, variant)
    seeds = ds.seeds if seeds_stage else ds.seeds[:1]
    for setting in points:
        for seed in seeds:
            cfg = variant_config(spec, ds, backbone, variant, setting, seed)
            folder = root / "runs" / ds.name / backbone / variant / f"{setting_tag(setting)}-seed{seed}"
            jobs.append(Job(ds, backbone, variant, setting, seed, cfg, folder))
    return jobs


def select_setting(jobs: list[Job], metric: str) -> tuple[dict, list[dict]]:
    """The grid point with the best validation ``metric`` (ties: the first listed)."""
    rows = []
    for j in jobs:
        r = load_results(j.folder / "results.json")
        rows.append({"setting": j.setting, "tag": setting_tag(j.setting),
                     "valid": r["metrics"]["valid"][metric], "test": r["metrics"]["test"][metric]})
    best = max(range(len(rows)), key=lambda i: (rows[i]["valid"], -i))
    for i, row in enumerate(rows):
        row["chosen"] = i == best
    return rows[best]["setting"], rows


def run_study(spec: StudySpec, output_dir, *, datasets=None, backbones=None, variants=None,
              verbose: bool = True, write_report: bool = True, train: bool = True) -> dict:
    """Run (or resume) the study; return the collected summary and write the report.

    ``datasets`` / ``backbones`` / ``variants`` restrict this invocation to a subset (e.g. to
    run two processes side by side); the report covers every run found finished.
    ``train=False`` only collects finished runs and writes the report.
    """
    root = Path(output_dir)
    root.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    n_trained = 0
    for ds in spec.datasets:
        if datasets and ds.name not in datasets:
            continue
        cache = None
        for backbone in spec.backbones:
            if backbones and backbone not in backbones:
                continue
            for variant in spec.variants:
                if variants and variant not in variants:
                    continue
                grid_jobs = _jobs_for(spec, ds, backbone, variant, root, False, None)
                for stage in ("grid", "seeds"):
                    if stage == "seeds":
                        if not all((j.folder / "results.json").exists() for j in grid_jobs):
                            break
                        chosen, _ = select_setting(grid_jobs, grid_jobs[0].config.selection_metric)
                        jobs = _jobs_for(spec, ds, backbone, variant, root, True, chosen)
                    else:
                        jobs = grid_jobs
                    for job in jobs:
                        done = ((job.folder / "results.json").exists()
                                and (job.folder / "conditioning.json").exists()
                                and "trained" in json.loads(
                                    (job.folder / "conditioning.json").read_text()))
                        if done or not train:
                            continue
                        if cache is None:  # the dataset's own embeddings, not the variant's
                            cache = DatasetCache(Config.from_dict({**spec.base, **ds.overrides}))
                        if verbose:
                            print(f"[study] {ds.name} {backbone} {variant} "
                                  f"{setting_tag(job.setting)} seed {job.seed}", flush=True)
                        run_job(job, cache, verbose=verbose)
                        n_trained += 1
    elapsed = time.time() - t0
    if train:  # one file per invocation: parallel processes never overwrite each other's
        import os

        inv_dir = root / "invocations"
        inv_dir.mkdir(exist_ok=True)
        write_json_atomic({"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t0)),
                           "wall_s": elapsed, "runs_trained": n_trained,
                           "filter": {"datasets": datasets, "backbones": backbones,
                                      "variants": variants}},
                          inv_dir / f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime(t0))}-{time.time_ns()}-{os.getpid()}.json")
    if not write_report:
        return {}
    log = [json.loads(p.read_text()) for p in sorted((root / "invocations").glob("*.json"))]
    summary = collect(spec, root)
    summary["invocations"] = log
    write_json_atomic(summary, root / "study.json")
    (root / "STUDY.md").write_text(render_report(spec, summary, root))
    return summary


# ----- collection and tables ----------------------------------------------------------------
def relative_improvement(value: float, baseline: float) -> float:
    """(value - baseline) / baseline in percent (NaN when the baseline is 0 or missing)."""
    if baseline is None or not np.isfinite(baseline) or baseline == 0:
        return float("nan")
    return 100.0 * (value - baseline) / baseline


def fmt_pct(x: float) -> str:
    return "–" if not np.isfinite(x) else f"{x:+.1f}%"


def collect(spec: StudySpec, root: Path) -> dict:
    """Every finished run grouped by dataset/backbone/variant, with the selection grid."""
    groups = []
    for ds in spec.datasets:
        for backbone in spec.backbones:
            entry = {"dataset": ds.name, "backbone": backbone, "variants": {}}
            for variant in [v for v in VARIANTS if v in spec.variants]:  # canonical order
                grid_jobs = _jobs_for(spec, ds, backbone, variant, root, False, None)
                done = [j for j in grid_jobs if (j.folder / "results.json").exists()]
                if not done:
                    continue
                metric = grid_jobs[0].config.selection_metric
                complete = len(done) == len(grid_jobs)
                chosen, grid_rows = select_setting(done, metric)
                seed_jobs = _jobs_for(spec, ds, backbone, variant, root, True, chosen)
                runs = []
                for j in seed_jobs:
                    p = j.folder / "results.json"
                    if not p.exists():
                        continue
                    r = load_results(p)
                    cp = j.folder / "conditioning.json"
                    cond = json.loads(cp.read_text()) if cp.exists() else {}
                    runs.append({"seed": j.seed, "folder": str(j.folder.relative_to(root)),
                                 "metrics": r["metrics"], "best_epoch": r["best_epoch"],
                                 "epochs_run": r["epochs_run"],
                                 "stopped_early": r["stopped_early"],
                                 "history": [{"epoch": h["epoch"], "train_loss": h["train_loss"],
                                              "valid": h.get("valid", {})}
                                             for h in r["history"]],
                                 "timings": r["timings"], "device": r["versions"].get("device"),
                                 "threads": r.get("threads"), "conditioning": cond})
                grid_times = []
                for j in done:
                    grid_times.append(load_results(j.folder / "results.json")["timings"]["total_s"])
                entry["variants"][variant] = {
                    "setting": chosen, "tag": setting_tag(chosen), "grid_complete": complete,
                    "selection_metric": metric, "grid": grid_rows, "runs": runs,
                    "grid_total_s": float(sum(grid_times))}
            if entry["variants"]:
                groups.append(entry)
    total = 0.0
    for p in (root / "runs").rglob("results.json") if (root / "runs").exists() else []:
        total += load_results(p)["timings"]["total_s"]
    return {"title": spec.title, "groups": groups, "sum_of_run_seconds": total}


def _metric_values(runs, split, metric):
    return [r["metrics"][split][metric] for r in runs if metric in r["metrics"].get(split, {})]


def results_table(group: dict, ks=(10, 20)) -> str:
    """Test metrics (mean ± std over seeds) and relative improvement over ID-only/LLMInit."""
    vs = group["variants"]
    base = {b: {m: mean_std(_metric_values(vs[b]["runs"], "test", m))[0]
                for m in ("ndcg@10", "recall@10")}
            for b in ("id", "llminit") if b in vs and vs[b]["runs"]}
    cols = ["variant", "setting", "seeds"]
    for k in ks:
        cols += [f"NDCG@{k}", f"Recall@{k}"]
    cols += ["ΔN@10 vs ID", "ΔR@10 vs ID", "ΔN@10 vs LLMInit", "ΔR@10 vs LLMInit",
             "best epoch / run", "s/epoch"]
    rows = []
    for v, info in vs.items():
        runs = info["runs"]
        if not runs:
            continue
        tag = info["tag"] if info.get("grid_complete", True) else f"{info['tag']} (grid unfinished)"
        row = {"variant": VARIANT_LABELS[v], "setting": tag, "seeds": str(len(runs))}
        for k in ks:
            row[f"NDCG@{k}"] = fmt_mean_std(_metric_values(runs, "test", f"ndcg@{k}"))
            row[f"Recall@{k}"] = fmt_mean_std(_metric_values(runs, "test", f"recall@{k}"))
        for b, name in (("id", "ID"), ("llminit", "LLMInit")):
            for m, short in (("ndcg@10", "N"), ("recall@10", "R")):
                mine = mean_std(_metric_values(runs, "test", m))[0]
                row[f"Δ{short}@10 vs {name}"] = (
                    fmt_pct(relative_improvement(mine, base[b][m])) if b in base and v != b
                    else "–")
        row["best epoch / run"] = ", ".join(f"{r['best_epoch']}/{r['epochs_run']}" for r in runs)
        sec = [r["timings"]["per_epoch_s"] for r in runs
               if r.get("timings", {}).get("per_epoch_s") is not None]
        row["s/epoch"] = f"{np.median(sec):.2f}" if sec else "–"
        rows.append(row)
    return format_table(rows, cols)


def selection_table(group: dict) -> str:
    rows = []
    for v, info in group["variants"].items():
        if len(info["grid"]) < 2:  # nothing was selected
            continue
        for g in info["grid"]:
            rows.append({"variant": VARIANT_LABELS[v], "setting": g["tag"],
                         f"valid {info['selection_metric']}": f"{g['valid']:.4f}",
                         "chosen": "**yes**" if g["chosen"] else "",
                         "complete": "" if info["grid_complete"] else "grid unfinished"})
    if not rows:
        return ""
    cols = ["variant", "setting", next(k for k in rows[0] if k.startswith("valid")), "chosen"]
    if any(r["complete"] for r in rows):
        cols.append("complete")
    return format_table(rows, cols)


def _fmt_sci(x) -> str:
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "–"
    return f"{x:.3g}"


def conditioning_table(group: dict) -> str:
    """Hessian figures (first seed of the chosen setting) at init and after training."""
    rows = []
    for v, info in group["variants"].items():
        if not info["runs"]:
            continue
        cond = info["runs"][0]["conditioning"]
        row = {"variant": VARIANT_LABELS[v]}
        for stage in ("init", "trained"):
            c = cond.get(stage, {})
            row[f"{stage} λmax"] = _fmt_sci(c.get("lambda_max"))
            row[f"{stage} λmin"] = _fmt_sci(c.get("lambda_min"))
            row[f"{stage} κ"] = _fmt_sci(c.get("condition_number"))
            if "gauss_newton" in c:
                row[f"{stage} κ"] += f" (GN {_fmt_sci(c['gauss_newton']['condition_number'])})"
        row["item-norm cv (init → trained)"] = (
            f"{_fmt_sci(cond.get('init', {}).get('item_norm_cv'))} → "
            f"{_fmt_sci(cond.get('trained', {}).get('item_norm_cv'))}")
        rows.append(row)
    cols = ["variant", "init λmax", "init λmin", "init κ", "trained λmax", "trained λmin",
            "trained κ", "item-norm cv (init → trained)"]
    return format_table(rows, cols) if rows else ""


def loss_table(group: dict) -> str:
    """Training loss at epochs 1, 5, 10, at the last epoch every variant ran (a comparison at
    equal training time) and at each run's best epoch (first seed): the Figure-1 question."""
    hists = {v: info["runs"][0] for v, info in group["variants"].items() if info["runs"]}
    if not hists:
        return ""
    common = min(len(r["history"]) for r in hists.values())
    rows = []
    for v, run in hists.items():
        loss = {h["epoch"]: h["train_loss"] for h in run["history"]}
        best = run["best_epoch"]
        row = {"variant": VARIANT_LABELS[v]}
        for e in (1, 5, 10):
            row[f"ep {e}"] = f"{loss[e]:.4f}" if e in loss else "–"
        row[f"ep {common} (all ran)"] = f"{loss[common]:.4f}" if common in loss else "–"
        row["at best epoch"] = f"{loss[best]:.4f} (ep {best})" if best in loss else "–"
        rows.append(row)
    cols = ["variant", "ep 1", "ep 5", "ep 10", f"ep {common} (all ran)", "at best epoch"]
    return format_table(rows, cols)


def plot_group(group: dict, path) -> Path | None:
    """Figure 1: training loss (left) and validation NDCG@10 (right) of every variant."""
    from .plots import _pyplot

    plt = _pyplot()
    if plt is None:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(8.4, 3.2))
    for v, info in group["variants"].items():
        if not info["runs"]:
            continue
        hist = info["runs"][0]["history"]
        ep = [h["epoch"] for h in hist]
        axes[0].plot(ep, [h["train_loss"] for h in hist], label=VARIANT_LABELS[v], lw=1.3)
        metric = info["selection_metric"]
        pts = [(h["epoch"], h["valid"][metric]) for h in hist if metric in h.get("valid", {})]
        if pts:
            axes[1].plot(*zip(*pts), lw=1.3, label=VARIANT_LABELS[v])
    axes[0].set_title("training loss (CE per target)", fontsize=9)
    axes[1].set_title("validation NDCG@10", fontsize=9)
    for ax in axes:
        ax.set_xlabel("epoch", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{group['dataset']} / {group['backbone']} (seed "
                 f"{next(iter(group['variants'].values()))['runs'][0]['seed']})", fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def render_report(spec: StudySpec, summary: dict, root: Path) -> str:
    """Markdown: per dataset/backbone the results, the loss table and plot, the conditioning
    and the selection grid; then the timing of the runs."""
    lines = [f"# {spec.title}", ""]
    lines += ["Test metrics: mean ± sample std over seeds (one value when one seed); full "
              "ranking, leave-one-out; settings chosen on validation "
              f"{summary['groups'][0]['variants'][next(iter(summary['groups'][0]['variants']))]['selection_metric'] if summary['groups'] else 'ndcg@10'} only. "
              "Δ = relative change of the mean.", ""]
    for g in summary["groups"]:
        head = f"{g['dataset']} / {g['backbone']}"
        lines += [f"## {head}", "", results_table(g), ""]
        png = root / "plots" / f"loss-{g['dataset']}-{g['backbone']}.png"
        if plot_group(g, png) is not None:
            lines += [f"![training loss, {head}](plots/{png.name})", ""]
        lines += ["Training loss (first seed):", "", loss_table(g), ""]
        lines += ["Conditioning of the CE w.r.t. the sequence representations (fixed batch of "
                  "256 training windows, first seed):", "", conditioning_table(g), ""]
        sel = selection_table(g)
        lines += ["Selection grid (first seed, validation):", "",
                  sel or "(one setting per variant here: nothing was selected)", ""]
    lines += ["## Time", "", f"Sum of run wall times: {summary['sum_of_run_seconds'] / 60:.1f} min.",
              ""]
    inv = summary.get("invocations", [])
    if inv:
        import calendar

        starts = [calendar.timegm(time.strptime(i["started"], "%Y-%m-%dT%H:%M:%SZ")) for i in inv]
        ends = [s + i["wall_s"] for s, i in zip(starts, inv)]
        lines += [f"Span from the first start to the last end of the invocations: "
                  f"{(max(ends) - min(starts)) / 60:.1f} min (invocations may overlap: "
                  "parallel processes).", ""]
        rows = [{"started (UTC)": i["started"], "wall": f"{i['wall_s'] / 60:.1f} min",
                 "runs trained": str(i["runs_trained"]),
                 "filter": ", ".join(f"{k}={v}" for k, v in i["filter"].items() if v) or "–"}
                for i in inv]
        lines += [format_table(rows, ["started (UTC)", "wall", "runs trained", "filter"]), ""]
    dev = {r["device"] for g in summary["groups"] for v in g["variants"].values()
           for r in v["runs"]}
    lines += [f"Devices: {', '.join(sorted(d for d in dev if d))}.", ""]
    return "\n".join(lines)
