"""The trivial baselines (:mod:`tfllmer_fast.train.baselines`) as runs: a results record of
the shape of a trained run's ``results.json`` (metrics for all targets and every target
group, ranked by the same :class:`~tfllmer_fast.train.Evaluator`), in seconds.

``llm-knn``'s one setting, the number of recent input items its query averages, is chosen
on the validation ``selection_metric`` among :data:`KNN_WINDOWS`, as a study chooses a
model's settings; test targets never choose anything.
"""

from __future__ import annotations

import time

from ..data import Dataset
from ..data.cold import repeat_shares
from ..train import BASELINES, Evaluator, cpu_threads, make_baseline, resolve_device
from .config import Config
from .results import versions
from .run import final_metrics, group_summary, load_run_data, make_run_split

#: The llm-knn windows tried on validation.
KNN_WINDOWS = (1, 3, 5, 10)


def run_baseline(config: Config, name: str, *, data: Dataset | None = None, split=None, rows=None) -> dict:
    """Evaluate the baseline ``name`` on the data, split and evaluation options of ``config``.

    Parameters
    ----------
    config : Config
        Its data fields (dataset, cold items, ``max_len``: the input width), evaluation
        fields (protocol, ``mask_history``, ``ks``, ``head_share``), ``selection_metric``,
        ``seed`` (the sampled protocol's negatives), ``device`` and ``threads``; the model
        and training fields do nothing here.
    name : {"popularity", "last-item", "llm-knn"}
    data, split : optional
        Preloaded data and split (as :func:`~tfllmer_fast.experiment.run.run_experiment`).
    rows : array (n_items, D), optional
        llm-knn's item rows (default: the dataset's LLM embeddings).

    Returns the results record (``label`` = ``baseline`` = ``name``, ``setting``, ``metrics``,
    ``groups``, ``dataset``, ``timings``, ...), ready for ``write_json_atomic``.
    """
    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r}; choose one of {', '.join(BASELINES)}")
    t0 = time.perf_counter()
    with cpu_threads(config.threads) as threads:
        if data is None:
            data = load_run_data(config, embeddings=name == "llm-knn")
        if split is None:
            split = make_run_split(config, data)
        if name == "llm-knn" and rows is None:
            if data.embeddings is None:
                raise ValueError("the llm-knn baseline needs item embeddings, and this dataset has none")
            rows = data.embeddings
        device = resolve_device(config.device)

        def evaluator(**setting) -> Evaluator:
            model = make_baseline(name, split, rows=rows, max_len=config.max_len, **setting)
            return Evaluator(model, split, config.eval_options, device=device, seed=config.seed)

        setting, selection = {}, {}
        if name == "llm-knn":
            metric = config.selection_metric
            protocol = "sampled" if config.protocol == "sampled" else "full"
            for w in KNN_WINDOWS:
                selection[str(w)] = evaluator(window=w).evaluate("valid", protocol=protocol)[metric]
            setting = {"window": max(KNN_WINDOWS, key=lambda w: (selection[str(w)], -w))}
        ev = evaluator(**setting)
        metrics = final_metrics(ev, config)
    total = time.perf_counter() - t0
    return {
        "label": name,
        "baseline": name,
        "setting": setting,
        **({"selection": {"metric": config.selection_metric, "valid": selection}} if selection else {}),
        "config": config.to_dict(),
        "dataset": {
            "name": data.name,
            "n_users": split.train.n_users,
            "n_items": split.n_items,
            "n_interactions": int(data.sequences.n_interactions),
            "repeat_share": repeat_shares(split),
        },
        "metrics": metrics,
        "groups": group_summary(ev, config),
        "best_epoch": None,
        "epochs_run": 0,
        "stopped_early": False,
        "capped_while_improving": False,
        "history": [],
        "timings": {"total_s": total, "session_s": total, "per_epoch_s": None},
        "threads": threads,
        "versions": versions(device),
    }
