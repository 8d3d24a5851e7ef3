"""The same training run from Python (``run_experiment``) and from the CLI (``tfllmer-fast
run``), in one session: epoch times side by side, medians and their ratio.

Each round starts one fresh process per entry point (alternating which goes first), on the
built-in synthetic catalogue, and reads the per-epoch training times the run records. The
metrics of the two must be equal: the same configuration is trained.

    python benchmarks/python_vs_cli.py                       # 3 rounds, 3 epochs each
    python benchmarks/python_vs_cli.py --busy 2              # beside 2 busy-looping processes
    python benchmarks/python_vs_cli.py --python OTHER/bin/python   # another installation

``--busy N`` starts N processes that loop on the CPU for the duration (a shared machine, made
reproducible); ``--python`` runs the children with another environment's interpreter, e.g. a
venv holding an older version. Prints one JSON line per run, then a summary line.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

PY_CHILD = """
import json, sys
from tfllmer_fast.experiment.config import Config
from tfllmer_fast.experiment.run import run_experiment
cfg = Config(**json.loads(sys.argv[1]))
r = run_experiment(cfg, output_dir=sys.argv[2])
print(json.dumps({"epoch_s": [h["train_s"] for h in r.results["history"]], "test": r.metrics["test"]}))
"""


def config_fields(args) -> dict:
    return {
        "dataset": "synthetic",
        "synthetic_users": args.users,
        "synthetic_items": args.items,
        "epochs": args.epochs,
        "eval_every": args.epochs,
        "threads": args.threads,
        "progress": False,
    }


def cli_flags(fields: dict) -> list[str]:
    flags = []
    for k, v in fields.items():
        if k == "progress":
            flags.append("--no-progress")
        elif v is not None:
            flags += [f"--{k.replace('_', '-')}", str(v)]
    return flags


def run_once(entry: str, args, env: dict, workdir: Path) -> dict:
    out = workdir / f"{entry}-{len(list(workdir.iterdir()))}"
    fields = config_fields(args)
    if entry == "python":
        cmd = [args.python, "-c", PY_CHILD, json.dumps(fields), str(out)]
    else:  # what the tfllmer-fast script runs
        cmd = [args.python, "-m", "tfllmer_fast", "run", *cli_flags(fields), "--output", str(out)]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"{entry} run failed:\n{p.stderr[-3000:]}")
    if entry == "python":
        res = json.loads(p.stdout.strip().splitlines()[-1])
    else:
        saved = json.loads((out / "results.json").read_text())
        res = {"epoch_s": [h["train_s"] for h in saved["history"]], "test": saved["metrics"]["test"]}
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--users", type=int, default=4000, help="synthetic users (Config default 4000)")
    ap.add_argument("--items", type=int, default=1500, help="synthetic items (Config default 1500)")
    ap.add_argument("--threads", type=int, default=None, help="Config.threads (default: all cores)")
    ap.add_argument("--busy", type=int, default=0, help="busy-looping processes beside the runs")
    ap.add_argument("--python", default=sys.executable, help="interpreter of the children")
    ap.add_argument("--label", default="", help="a tag for the output lines (e.g. before/after)")
    args = ap.parse_args(argv)

    env = dict(os.environ)
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.busy)]
    times: dict[str, list[float]] = {"python": [], "cli": []}
    paired: list[float] = []  # per round: median python epoch / median cli epoch (same load)
    metrics: dict[str, list] = {"python": [], "cli": []}
    load0 = os.getloadavg()[0]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for r in range(args.rounds):
                order = ("python", "cli") if r % 2 == 0 else ("cli", "python")
                this_round = {}
                for entry in order:
                    res = run_once(entry, args, env, Path(tmp))
                    this_round[entry] = statistics.median(res["epoch_s"])
                    times[entry] += res["epoch_s"]
                    metrics[entry].append(res["test"])
                    row = {"label": args.label, "round": r, "entry": entry, "busy": args.busy}
                    row |= {"epoch_s": [round(t, 2) for t in res["epoch_s"]], "load1": os.getloadavg()[0]}
                    print(json.dumps(row), flush=True)
                paired.append(this_round["python"] / this_round["cli"])
    finally:
        for p in busy:
            p.kill()
            p.wait()
    med = {k: statistics.median(v) for k, v in times.items()}
    summary = {
        "label": args.label,
        "busy": args.busy,
        "median_epoch_s_python": round(med["python"], 2),
        "median_epoch_s_cli": round(med["cli"], 2),
        "ratio_python_over_cli": round(med["python"] / med["cli"], 3),
        "median_paired_ratio": round(statistics.median(paired), 3),
        "same_metrics": all(m == metrics["python"][0] for m in metrics["python"] + metrics["cli"]),
        "load1_start": load0,
        "load1_end": os.getloadavg()[0],
    }
    print(json.dumps(summary), flush=True)
    return 0 if summary["same_metrics"] else 1


if __name__ == "__main__":
    sys.exit(main())
