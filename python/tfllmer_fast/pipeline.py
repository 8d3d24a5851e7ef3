"""The whole run: data -> split -> item table -> model -> training -> evaluation -> outputs."""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .config import Config
from .item_init import check_embeddings, initial_item_table
from .results import metrics_table, versions, write_json_atomic
from .sequences import LeaveOneOutSplit, Sequences, leave_one_out
from .trainer import (Trainer, build_model, resolve_device, seed_everything, set_cpu_threads)


@dataclass
class RunData:
    """What a run needs from a dataset."""

    name: str
    sequences: Sequences
    embeddings: np.ndarray | None = None


def load_run_data(config: Config) -> RunData:
    """Load ``config.dataset`` (the synthetic catalogue is generated with ``seed=0``: the data
    stay fixed when only the training seed changes)."""
    want_emb = config.init != "random" and config.embeddings is not None
    if config.dataset == "synthetic":
        from .synthetic import make_synthetic_catalogue

        cat = make_synthetic_catalogue(n_users=config.synthetic_users,
                                       n_items=config.synthetic_items,
                                       dim=config.synthetic_dim, seed=0)
        return RunData("synthetic", cat.sequences, cat.embeddings if want_emb else None)
    from .data import load_dataset

    ds = load_dataset(config.dataset, embeddings=config.embeddings if want_emb else None,
                      kcore=config.kcore)
    return RunData(ds.name, ds.sequences, ds.embeddings)


def make_split(seqs: Sequences) -> LeaveOneOutSplit:
    """Leave-one-out with a warning for the users it drops (< 3 interactions)."""
    n_short = int((seqs.lengths < 3).sum())
    if seqs.n_users == 0 or seqs.n_interactions == 0:
        raise ValueError("the dataset has no interactions")
    split = leave_one_out(seqs)
    if n_short:
        empty = int((seqs.lengths == 0).sum())
        warnings.warn(f"{n_short} user(s) with fewer than 3 interactions ({empty} empty) are "
                      "left out (leave-one-out needs train, validation and test items)",
                      stacklevel=2)
    return split


def run_experiment(config: Config, *, data: RunData | None = None, split=None,
                   output_dir=None, item_table=None, graph=None, resume: bool = True,
                   callbacks=(), write_plot: bool = True, verbose: bool = True,
                   return_trainer: bool = False):
    """Train and evaluate one configuration; return (and write) the results dict.

    Parameters
    ----------
    config : Config
    data : RunData, optional
        Preloaded data (otherwise loaded from ``config``); reuse across runs of a study.
    split : LeaveOneOutSplit, optional
        Precomputed split of ``data.sequences``.
    output_dir : path, optional
        Where ``results.json``, ``curves.png`` and ``checkpoint.pt`` go (checkpoint each
        epoch; an existing one is resumed when ``resume``).
    item_table : array (n_items, hidden), optional
        Precomputed initial item table (skips the graph and the reduction).
    graph : scipy sparse, optional
        Precomputed training co-occurrence graph for ``init="recpca"``.
    return_trainer : bool
        Also return the :class:`Trainer` (its ``model`` holds the best state).

    Returns
    -------
    dict, the content of ``results.json`` (or ``(dict, Trainer)``).
    """
    t_start = time.perf_counter()
    timings: dict[str, float] = {}
    device = resolve_device(config.device)
    threads = set_cpu_threads(config.threads)
    t = time.perf_counter()
    if data is None:
        data = load_run_data(config)
    if split is None:
        split = make_split(data.sequences)
    timings["data_s"] = time.perf_counter() - t
    n_items = split.n_items
    if data.embeddings is not None:
        check_embeddings(data.embeddings, n_items)

    seed_everything(config.seed)
    t = time.perf_counter()
    if item_table is None:
        item_table = initial_item_table(
            config.init, data.embeddings, split, config.hidden, lam=config.lam,
            window=config.graph_window, weighting=config.graph_weighting, graph=graph,
            normalize_llm=config.normalize_llm, scale=config.init_scale,
            init_std=config.init_std, timings=timings)
    timings["init_s"] = time.perf_counter() - t
    model = build_model(config, n_items)
    if item_table is not None:
        model.set_item_table(item_table)

    out = Path(output_dir) if output_dir is not None else None
    trainer = Trainer(model, split, config, device=device,
                      checkpoint_path=out / "checkpoint.pt" if out else None, resume=resume,
                      callbacks=callbacks)
    fit = trainer.fit()
    t = time.perf_counter()
    protocols = ["full", "sampled"] if config.protocol == "both" else [config.protocol]
    metrics = {}
    for p in protocols:
        suffix = "" if p == "full" else "_sampled"
        metrics["valid" + suffix] = trainer.evaluate("valid", protocol=p)
        metrics["test" + suffix] = trainer.evaluate("test", protocol=p)
    timings["final_eval_s"] = time.perf_counter() - t
    epoch_s = [h["train_s"] for h in fit.history]
    eval_s = [h["eval_s"] for h in fit.history if "eval_s" in h]
    session_s = time.perf_counter() - t_start
    # Epochs trained by earlier invocations (resume) count in total_s too.
    earlier_s = sum(h["train_s"] + h.get("eval_s", 0.0)
                    for h in fit.history[:trainer.resumed_from_epoch])
    timings.update(train_s=fit.train_time_s, valid_eval_s=fit.eval_time_s,
                   per_epoch_s=float(np.median(epoch_s)) if epoch_s else None,
                   per_eval_s=float(np.median(eval_s)) if eval_s else None,
                   session_s=session_s, total_s=session_s + earlier_s)
    results = {
        "label": config.label,
        "config": config.to_dict(),
        "dataset": {"name": data.name, "n_users": split.train.n_users, "n_items": n_items,
                    "n_interactions": int(data.sequences.n_interactions),
                    "n_train_windows": int(trainer.windows.shape[0]),
                    "n_train_targets": trainer.n_targets},
        "metrics": metrics,
        "best_epoch": fit.best_epoch,
        "epochs_run": fit.epochs_run,
        "stopped_early": fit.stopped_early,
        "resumed_from_epoch": trainer.resumed_from_epoch,
        "history": fit.history,
        "timings": timings,
        "threads": threads,
        "versions": versions(device),
    }
    if out is not None:
        write_json_atomic(results, out / "results.json")
        if write_plot:
            from .plots import plot_curves

            plot_curves({config.label: fit.history}, out / "curves.png",
                        metrics=(config.selection_metric, f"recall@{config.selection_metric.split('@')[1]}"),
                        title=f"{config.label} on {data.name}")
    if verbose:
        print(f"\n{config.label} on {data.name}: best epoch {fit.best_epoch} of "
              f"{fit.epochs_run}, {timings['total_s']:.1f} s on {results['versions']['device']}"
              + (f" (resumed after epoch {trainer.resumed_from_epoch}; this session "
                 f"{session_s:.1f} s)" if trainer.resumed_from_epoch else ""))
        print(metrics_table(metrics, tuple(config.ks)))
    return (results, trainer) if return_trainer else results
