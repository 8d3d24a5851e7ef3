"""Running a study: one dataset cache (data, split, graphs, item tables), the jobs of every
grid point and seed, each run resumed or skipped when finished, and the conditioning
figures of every run."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

from ..._atomic import atomic_open
from ...graph.item_table import initial_item_table, training_graph
from ...train import cpu_threads, load_checkpoint, seed_everything
from ...train.conditioning import model_conditioning
from ...train.rows import build_windows
from ..config import Config
from ..results import load_results, write_json_atomic
from ..run import build_run_model, load_run_data, make_run_split, run_experiment, run_summary, save_run
from .report import collect, render_report
from .spec import Job, StudySpec, baseline_folder, dataset_config, jobs_for, select_setting, setting_tag


class DatasetCache:
    """Data, split, graphs (per window) and initial item tables of one dataset, built once."""

    def __init__(self, config: Config):
        t = time.perf_counter()
        # The dataset's own embeddings, whatever the first variant: others reuse the cache.
        self.data = load_run_data(config, embeddings=config.embeddings is not None)
        # The cold-start protocol (when on) is a dataset setting: every variant sees it.
        self.split = make_run_split(config, self.data)
        self.load_s = time.perf_counter() - t
        self.threads = config.threads
        self.graphs: dict = {}
        self.tables: dict = {}

    def graph(self, window, weighting):
        key = (window, weighting)
        if key not in self.graphs:
            self.graphs[key] = training_graph(self.split, window=window, weighting=weighting, n_threads=self.threads)
        return self.graphs[key]

    def item_table_and_projection(self, c: Config):
        """The initial table of ``c`` and the projection that built it (None, None: ID)."""
        if c.init == "random":
            return None, None
        key = (
            c.init,
            c.embeddings,
            c.hidden,
            c.normalize_llm,
            c.init_scale,
            c.init_std,
            c.lam if c.init == "recpca" else None,
            (c.graph_window, c.graph_weighting) if c.init == "recpca" else None,
        )
        if key not in self.tables:
            graph = self.graph(c.graph_window, c.graph_weighting) if c.init == "recpca" else None
            # Warnings (zero rows, eigenvalues <= 0 at a large lam) reach the user: they
            # are what a lambda sweep is meant to show.
            projection = {}
            table = initial_item_table(
                c.init,
                self.data.embeddings,
                self.split,
                c.hidden,
                lam=c.lam,
                graph=graph,
                normalize_llm=c.normalize_llm,
                scale=c.init_scale,
                init_std=c.init_std,
                n_threads=c.threads,
                projection=projection,
            )
            self.tables[key] = (table, projection)
        return self.tables[key]


def fixed_batch(split, config: Config, causal: bool, size: int = 256, seed: int = 12345):
    """A fixed batch of training windows (shifted ids, trimmed): the same for every variant."""
    import torch

    windows, wlen = build_windows(split.train, config.max_len, causal)
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(windows.shape[0], size=min(size, windows.shape[0]), replace=False))
    width = int(wlen[idx].max())
    return torch.as_tensor(windows[idx][:, -width:])


def run_job(job: Job, cache: DatasetCache, *, verbose: bool = True) -> dict:
    """Train one run (or resume it) and write results.json + conditioning.json."""
    c = job.config
    with cpu_threads(c.threads):
        return _run_job(job, cache, verbose)


def _run_job(job: Job, cache: DatasetCache, verbose: bool) -> dict:
    c = job.config
    out = job.folder
    out.mkdir(parents=True, exist_ok=True)
    table, projection = cache.item_table_and_projection(c)
    cond_path = out / "conditioning.json"
    cond = json.loads(cond_path.read_text()) if cond_path.exists() else {}
    if "init" not in cond:
        # The same initial model as run_experiment builds (same seed, same table).
        seed_everything(c.seed)
        m0 = build_run_model(c, cache.split.n_items, table)
        cond["init"] = model_conditioning(m0, fixed_batch(cache.split, c, m0.causal))
        write_json_atomic(cond, cond_path)
        del m0
    res_path = out / "results.json"
    if res_path.exists():
        results = load_results(res_path)
        model = None
    else:
        run = run_experiment(
            c, data=cache.data, split=cache.split, item_table=table, output_dir=out, resume=True, projection=projection
        )
        # The dataset's study name (its label in the report), and where the data came from.
        run.results["dataset"] = study_dataset_block(job.dataset, run.results["dataset"])
        save_run(run, out, plot=False)
        if verbose:
            print(run_summary(run))
        results, model = run.results, run.model
    if "trained" not in cond:
        if model is None:  # results exist but the figure is missing: reload the best state
            st = load_checkpoint(out / "checkpoint.pt")
            model = build_run_model(c, cache.split.n_items)
            model.load_state_dict(st["best_state"] or st["model"])
        cond["trained"] = model_conditioning(model, fixed_batch(cache.split, c, model.causal))
        write_json_atomic(cond, cond_path)
    return results


def study_dataset_block(ds, block: dict) -> dict:
    """A results record's ``dataset`` block under the study's name for the dataset
    (``source``: the name the data loader gave it, e.g. a folder's name)."""
    return {"name": ds.name, "source": block.get("name"), **{k: v for k, v in block.items() if k != "name"}}


def run_baselines(spec: StudySpec, ds, cache, root: Path, names, verbose: bool) -> int:
    """Evaluate the dataset's baselines that have no results yet; returns how many ran."""
    from ..baselines import run_baseline

    done = 0
    for name in names:
        path = baseline_folder(root, ds, name) / "results.json"
        if path.exists():
            continue
        if name == "llm-knn" and cache.data.embeddings is None:
            if verbose:
                print(f"[study] {ds.name}: no item embeddings, so no llm-knn baseline", flush=True)
            continue
        if verbose:
            print(f"[study] {ds.name} baseline {name}", flush=True)
        res = run_baseline(dataset_config(spec, ds), name, data=cache.data, split=cache.split)
        res["dataset"] = study_dataset_block(ds, res["dataset"])
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(res, path)
        done += 1
    return done


def _check_filter(kind: str, given, known) -> None:
    unknown = [x for x in given or () if x not in known]
    if unknown:
        raise ValueError(f"unknown {kind} {', '.join(map(str, unknown))}: this study has {', '.join(map(str, known))}")


def _finished(job: Job) -> bool:
    cond = job.folder / "conditioning.json"
    return (job.folder / "results.json").exists() and cond.exists() and "trained" in json.loads(cond.read_text())


def run_study(
    spec: StudySpec,
    output_dir,
    *,
    datasets=None,
    backbones=None,
    variants=None,
    seeds=None,
    verbose: bool = True,
    write_report: bool = True,
    train: bool = True,
    deadline: float | None = None,
) -> dict:
    """Run (or resume) the study; return the collected summary and write the report.

    ``datasets`` / ``backbones`` / ``variants`` restrict this invocation to a subset (e.g. to
    run two processes side by side; ``variants`` may name baselines too); the report covers
    every run found finished. ``seeds``: the seeds of the chosen settings this invocation
    trains, instead of the study's (new seeds allowed); the selection grid always uses the
    dataset's first seed in the file and runs (with the baselines) only when ``seeds``
    holds it, so ``seeds=[1, 2]`` after a finished grid adds those two seeds.
    ``train=False`` only collects finished runs and writes the report.
    ``deadline`` (``time.monotonic()``): no run starts after it; unfinished runs resume
    from their checkpoints on the next call.
    """
    _check_filter("dataset(s)", datasets, [d.name for d in spec.datasets])
    _check_filter("backbone(s)", backbones, spec.backbones)
    _check_filter("variant(s)", variants, [*spec.variants, *spec.baselines])
    seeds = None if seeds is None else [int(x) for x in seeds]
    root = Path(output_dir)
    root.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    n_trained = n_baselines = 0
    for ds in spec.datasets:
        if datasets and ds.name not in datasets:
            continue
        cache = None
        grid_seed_here = seeds is None or ds.seeds[0] in seeds
        wanted = [b for b in spec.baselines if not variants or b in variants]
        if train and grid_seed_here and wanted:
            if not all((baseline_folder(root, ds, b) / "results.json").exists() for b in wanted):
                cache = DatasetCache(dataset_config(spec, ds))
                n_baselines += run_baselines(spec, ds, cache, root, wanted, verbose)
        for backbone in spec.backbones:
            if backbones and backbone not in backbones:
                continue
            chosen_variants = [v for v in spec.variants if not variants or v in variants]
            for stage in ("grid", "seeds"):
                pending = []
                for variant in chosen_variants:
                    grid_jobs = jobs_for(spec, ds, backbone, variant, root, False, None)
                    grid_done = all((j.folder / "results.json").exists() for j in grid_jobs)
                    if stage == "seeds":
                        if not grid_done:
                            if verbose and train and not grid_seed_here:
                                print(
                                    f"[study] {ds.name} {backbone} {variant}: its selection grid (seed "
                                    f"{ds.seeds[0]}) is not finished, so no other seed can run: run the grid "
                                    f"first (without --seeds, or with seed {ds.seeds[0]} among them)",
                                    flush=True,
                                )
                            continue
                        chosen, _ = select_setting(grid_jobs, grid_jobs[0].config.selection_metric)
                        jobs = jobs_for(spec, ds, backbone, variant, root, True, chosen, seeds)
                    elif not grid_seed_here:
                        continue
                    else:
                        jobs = grid_jobs
                    pending += [j for j in jobs if not _finished(j)]
                if not pending or not train:
                    continue
                if cache is None:  # the dataset's own embeddings, not the variant's
                    cache = DatasetCache(dataset_config(spec, ds))
                for job in pending:
                    if deadline is not None and time.monotonic() > deadline:
                        break
                    if verbose:
                        print(
                            f"[study] {ds.name} {backbone} {job.variant} {setting_tag(job.setting)} seed {job.seed}",
                            flush=True,
                        )
                    run_job(job, cache, verbose=verbose)
                    n_trained += 1
    elapsed = time.time() - t0
    if train:  # one file per invocation: parallel processes never overwrite each other's
        inv_dir = root / "invocations"
        inv_dir.mkdir(exist_ok=True)
        write_json_atomic(
            {
                "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t0)),
                "wall_s": elapsed,
                "runs_trained": n_trained,
                "baselines_evaluated": n_baselines,
                "filter": {"datasets": datasets, "backbones": backbones, "variants": variants, "seeds": seeds},
            },
            inv_dir / f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime(t0))}-{time.time_ns()}-{os.getpid()}.json",
        )
    if not write_report:
        return {}
    log = [json.loads(p.read_text()) for p in sorted((root / "invocations").glob("*.json"))]
    summary = collect(spec, root)
    summary["invocations"] = log
    write_json_atomic(summary, root / "study.json")
    with atomic_open(root / "STUDY.md", "w") as f:
        f.write(render_report(spec, summary, root))
    return summary
