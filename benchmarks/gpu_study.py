"""The whole TF-LLMER study grid on one GPU, in one process, under hard time caps.

    TFLLMER_DATA=/path/to/data python benchmarks/gpu_study.py --output runs/study-gpu

Runs ``studies/gpu.toml`` (4 dataset rows x SASRec, GRU4Rec x 5 variants x 3 seeds with the
selection grid: 256 runs) with the runs of each dataset and backbone trained in groups on
stacked parameters (``tfllmer_fast.train.group``): the selection-grid runs of every variant
in one group, then the seed runs. Writes ``STUDY.md``, ``study.json`` and
``gpu_study.json`` (wall times, runs finished/total, device, settings) into the output
folder.

Time caps: no group or epoch starts after ``--budget-s`` (default 780 s of training); at
``--hard-s`` (default 870 s) the process stops whatever runs (SIGALRM), and the report is
written from the finished runs either way. Checkpoints are written after every epoch, so
calling the script again resumes the unfinished runs and skips the finished ones.

Expected timings: ESTIMATED, NOT MEASURED (written without a GPU). The grid per dataset and
backbone is one group of 22 selection runs, then one of 10 seed runs; a group trains until
its last member stops (~40-60 epochs at epochs 200 / patience 10). Per stacked step on an
H100/H200: the lone step's ~4.6 ms of launches (issue #15: Beauty SASRec, 4.6 ms per step)
plus the arithmetic of K models at the stack's width (the widest of K batches: ~45 columns
on Beauty, ~200 on ml-100k) -> Beauty SASRec ~9 ms/step x 514 steps + 22 evaluations of
0.03 s ~ 5 s per group epoch, ~460 s for both groups; ml-100k SASRec ~18 ms/step x 380 ->
~540 s; Scientific (43 steps) ~40 s per backbone and embedding row. GRU4Rec runs its
recurrence model by model (no batched-weights GRU kernel): about Beauty ~400 s, ml-100k
(200 steps of recurrence) the slowest shard, 10-25 min. Whole grid: ~35-60 min of GPU
time, i.e. NOT within one 15-minute call by this estimate; each call stays within its caps
and the next resumes (call it until ``runs_finished == runs_total`` in gpu_study.json).
Options that should shorten it, untested: ``--set static_shapes=true`` (fewer shapes),
``--datasets`` to shard across calls.

``--device cpu`` with a tiny study file is what CI runs (tests/test_gpu_study_script.py).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path


class _HardStop(BaseException):
    """Raised by SIGALRM at the hard cap (a BaseException: no handler swallows it)."""


def main(argv=None) -> int:
    root = Path(__file__).resolve().parent.parent
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(root / "studies" / "gpu.toml"))
    ap.add_argument("--output", default="runs/study-gpu")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--budget-s", type=float, default=780.0)
    ap.add_argument("--hard-s", type=float, default=870.0)
    ap.add_argument("--group-size", type=int, default=64)
    ap.add_argument("--datasets", nargs="+")
    ap.add_argument("--backbones", nargs="+")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                    help="extra Config fields for every run (e.g. static_shapes=true)")
    a = ap.parse_args(argv)

    t0 = time.monotonic()
    import torch

    from tfllmer_fast.experiment.config import _flatten
    from tfllmer_fast.experiment.study import StudySpec, run_study

    if a.device.startswith("cuda") and not torch.cuda.is_available():
        print("no CUDA device visible to torch: use --device cpu for a CPU run", file=sys.stderr)
        return 2
    spec = StudySpec.from_file(a.config)
    extra = {}
    for kv in a.set:
        k, _, v = kv.partition("=")
        extra[k] = json.loads(v) if v not in ("none", "None") else None
    spec.base = {**spec.base, **_flatten(extra), "device": a.device}
    out = Path(a.output)
    out.mkdir(parents=True, exist_ok=True)
    device_name = (torch.cuda.get_device_name(0) if a.device.startswith("cuda")
                   else f"CPU ({os.cpu_count()} cores)")
    print(f"[gpu_study] {device_name}, torch {torch.__version__}, budget {a.budget_s:.0f} s, "
          f"hard cap {a.hard_s:.0f} s", flush=True)

    def alarm(signum, frame):
        raise _HardStop()

    old = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, max(1.0, a.hard_s - (time.monotonic() - t0)))
    stopped = None
    try:
        run_study(spec, out, datasets=a.datasets, backbones=a.backbones, verbose=True,
                  write_report=False, group_size=a.group_size, deadline=t0 + a.budget_s)
    except _HardStop:
        stopped = "hard cap"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    train_s = time.monotonic() - t0
    run_study(spec, out, train=False)  # the report from whatever finished
    finished = sum(1 for _ in out.glob("runs/**/results.json"))
    total = _count_jobs(spec, a.datasets, a.backbones)
    record = {"device": device_name, "torch": torch.__version__, "config": a.config,
              "settings": extra, "group_size": a.group_size, "budget_s": a.budget_s,
              "hard_s": a.hard_s, "train_wall_s": train_s,
              "total_wall_s": time.monotonic() - t0, "stopped_by": stopped or (
                  "budget" if finished < total else None),
              "runs_finished": finished, "runs_total": total}
    (out / "gpu_study.json").write_text(json.dumps(record, indent=1))
    print(f"[gpu_study] {finished}/{total} runs finished, training {train_s:.0f} s, total "
          f"{record['total_wall_s']:.0f} s; report {out / 'STUDY.md'}", flush=True)
    return 0


def _count_jobs(spec, datasets, backbones) -> int:
    """Runs of the whole grid: grid points of every variant + the extra seeds of each."""
    from tfllmer_fast.experiment.study import grid_points

    n = 0
    for ds in spec.datasets:
        if datasets and ds.name not in datasets:
            continue
        for b in spec.backbones:
            if backbones and b not in backbones:
                continue
            for v in spec.variants:
                n += len(grid_points(ds, v)) + len(ds.seeds) - 1
    return n


if __name__ == "__main__":
    sys.exit(main())
