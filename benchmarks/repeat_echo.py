"""Temperature and the repeat echo: does the scoring temperature, ``normalize_hidden``,
history masking or excluding the input items from the training softmax change what the
normalised variants score on targets new to the user (``explore``), and at what cost on
``repeat`` targets? On demand, not in CI (minutes on one CPU thread per process).

    python benchmarks/repeat_echo.py --output runs/repeat-echo --data scientific --seeds 0 1 2
    python benchmarks/repeat_echo.py --output runs/repeat-echo --data repeat0 repeat5 repeat20 --seeds 0
    python benchmarks/repeat_echo.py --output runs/repeat-echo --report      # the Markdown tables

Data: ``scientific`` (the shared dataset, ``$TFLLMER_DATA``) or ``repeat<P>``, a generated log
with a controlled share of repeats: the synthetic catalogue's sequences with every repeat
removed (first occurrences, in order), then at each step after the first, with probability
P %, a repeat of an earlier item (the last one with probability 1/3, else one drawn
uniformly from the history so far) instead of the next new item, for as many steps as the
user has distinct items. Every dataset runs the
cold-start protocol of ``studies/cold.toml`` (20 % cold items).

Settings (``--settings``, default all; the variant's other fields are ``studies/cold.toml``'s):

* ``default``: TF-LLMER as shipped (unit item rows, h not normalised, tau 1);
* ``tau<T>`` / ``nh-tau<T>``: temperature T without / with ``normalize_hidden``;
* ``mask``: ``mask_history`` in validation (model selection) and test;
* ``exclude``: ``exclude_input_items`` (the training softmax without the row's own inputs);
* ``exclude+mask``: both.

Every run is read twice on test: as run, and with the history masked at evaluation only
(``*_masked``): masking keeps the target's own score, so it can never lose a repeat target
there, but a deployed system that hid the history could never recommend a repeat at all.
Each run writes ``<output>/<data>/<setting>-seed<k>.json``; finished runs are skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

GROUPS = ("test", "test_repeat", "test_explore", "test_cold_explore", "test_warm_explore")
SETTINGS = {
    "default": {},
    "tau0.2": {"temperature": 0.2},
    "tau0.1": {"temperature": 0.1},
    "tau0.05": {"temperature": 0.05},
    "nh-tau1": {"normalize_hidden": True, "temperature": 1.0},
    "nh-tau0.2": {"normalize_hidden": True, "temperature": 0.2},
    "nh-tau0.1": {"normalize_hidden": True, "temperature": 0.1},
    "nh-tau0.05": {"normalize_hidden": True, "temperature": 0.05},
    "mask": {"mask_history": True},
    "exclude": {"exclude_input_items": True},
    "exclude+mask": {"exclude_input_items": True, "mask_history": True},
}
BASE = dict(
    init="recpca", normalize_items=True, lam=0.5, graph_window=None, cold_items=0.2, cold_seed=0,
    threads=1, progress=False, epochs=60, patience=8,
)  # fmt: skip


def repeat_log(share: float, n_users: int = 2000, n_items: int = 800, seed: int = 0):
    """A Dataset whose steps after the first are repeats with probability ``share``."""
    from tfllmer_fast.data import Dataset
    from tfllmer_fast.data.sequences import Sequences
    from tfllmer_fast.data.synthetic import make_synthetic_catalogue

    cat = make_synthetic_catalogue(n_users=n_users, n_items=n_items, dim=64, seed=seed)
    rng = np.random.default_rng(seed + 1)
    lists = []
    for seq in cat.sequences.to_lists():
        fresh = list(dict.fromkeys(seq))
        out, k = [fresh[0]], 1
        while len(out) < len(fresh):  # as long as the user's distinct items: the last step is a repeat with p = share
            if rng.random() < share:
                out.append(out[-1] if rng.random() < 1 / 3 else out[int(rng.integers(len(out)))])
            else:
                out.append(fresh[k])
                k += 1
        lists.append(out)
    seqs = Sequences.from_lists(lists, n_items=n_items)
    return Dataset(f"repeat{round(100 * share)}", seqs, cat.embeddings, None)


def load(name: str):
    from tfllmer_fast.experiment.config import Config
    from tfllmer_fast.experiment.run import load_run_data

    if name.startswith("repeat"):
        return repeat_log(int(name[len("repeat") :]) / 100.0), {"max_len": 50, "epochs": 40, "patience": 6}
    return load_run_data(Config(dataset=name, **BASE)), {}


def run_one(data, extra: dict, setting: str, seed: int) -> dict:
    import warnings

    from tfllmer_fast.experiment.config import Config
    from tfllmer_fast.experiment.run import make_run_split, run_experiment
    from tfllmer_fast.train import Evaluator

    cfg = Config(dataset=data.name, **{**BASE, **extra, **SETTINGS[setting], "seed": seed})
    split = make_run_split(cfg, data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = run_experiment(cfg, data=data, split=split)
    ev = Evaluator(res.model, split, cfg.eval_options.replace(mask_history=True), seed=seed, threads=1)
    masked = ev.evaluate_groups("test")
    m = res.results["metrics"]
    return {
        "setting": setting,
        "seed": seed,
        "config": SETTINGS[setting],
        "metrics": {g: m[g] for g in GROUPS},
        "metrics_masked": {g: masked[g] for g in GROUPS},
        "valid_ndcg@10": m["valid"]["ndcg@10"],
        "best_epoch": res.results["best_epoch"],
        "epochs_run": res.results["epochs_run"],
        "capped_while_improving": res.results["capped_while_improving"],
        "repeat_share": res.results["dataset"]["repeat_share"],
        "total_s": res.results["timings"]["total_s"],
        "load": os.getloadavg(),
        "machine": platform.processor() or platform.machine(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def fmt(values) -> str:
    v = np.asarray([x for x in values if x is not None], float)
    if v.size == 0:
        return "–"
    return f"{v.mean():.4f}" if v.size == 1 else f"{v.mean():.4f} ± {v.std(ddof=1):.4f}"


def report(root: Path) -> str:
    out = []

    def order(p):  # repeat0, repeat5, repeat20, then the real data
        tail = p.name[len("repeat") :]
        return (0, int(tail), "") if p.name.startswith("repeat") and tail.isdigit() else (1, 0, p.name)

    for folder in sorted((p for p in root.iterdir() if p.is_dir()), key=order):
        runs = [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]
        if not runs:
            continue
        share = runs[0]["repeat_share"]["test"]
        out += [
            f"### {folder.name} (test targets: {100 * share['repeat']:.2f} % repeat, "
            f"{100 * share['last_item']:.2f} % equal to the last input item)",
            "",
            "| setting | seeds | valid N@10 | all N@10 | repeat N@10 | explore N@10 | warm explore N@10 "
            "| cold explore N@10 | explore N@10, masked eval | best epoch / run |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for setting in SETTINGS:
            rs = [r for r in runs if r["setting"] == setting]
            if not rs:
                continue

            def col(key, group, rs=rs):
                return fmt([r[key][group].get("ndcg@10") for r in rs])

            epochs = ", ".join(
                f"{r['best_epoch']}/{r['epochs_run']}{'†' if r['capped_while_improving'] else ''}" for r in rs
            )
            out.append(
                f"| {setting} | {len(rs)} | {fmt([r['valid_ndcg@10'] for r in rs])} | {col('metrics', 'test')} "
                f"| {col('metrics', 'test_repeat')} | {col('metrics', 'test_explore')} "
                f"| {col('metrics', 'test_warm_explore')} | {col('metrics', 'test_cold_explore')} "
                f"| {col('metrics_masked', 'test_explore')} | {epochs} |"
            )
        out.append("")
    return "\n".join(out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--output", required=True)
    p.add_argument("--data", nargs="+", default=["scientific"])
    p.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--report", action="store_true", help="print the tables of the finished runs")
    args = p.parse_args(argv)
    root = Path(args.output)
    if args.report:
        print(report(root))
        return 0
    import torch

    torch.set_num_threads(1)
    for name in args.data:
        data, extra = load(name)
        for setting in args.settings:
            for seed in args.seeds:
                path = root / name / f"{setting}-seed{seed}.json"
                if path.exists():
                    continue
                t = time.perf_counter()
                rec = run_one(data, extra, setting, seed)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps(rec, indent=1))
                m = rec["metrics"]
                print(
                    f"{name} {setting} seed {seed}: explore {m['test_explore']['ndcg@10']:.4f} repeat "
                    f"{m['test_repeat'].get('ndcg@10', float('nan')):.4f} ({time.perf_counter() - t:.0f} s, "
                    f"load {os.getloadavg()[0]:.1f})",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
