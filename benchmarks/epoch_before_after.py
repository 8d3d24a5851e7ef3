"""Lone-trainer epoch time of this tree against another git revision, in one run.

    python benchmarks/epoch_before_after.py --base main --dataset scientific --rounds 4 --epochs 3

The base revision's ``python/`` is exported with ``git archive`` into a temporary folder
(the compiled ``_core`` of the installed package is copied next to it: the C++ is not what
is compared). Rounds alternate base / this tree, each a fresh process training ``--epochs``
epochs (the first is a warm-up and not counted); the figures are medians over all counted
epochs of wall and process CPU time, and the median over rounds of each round's ratio
(pairs that ran seconds apart share the machine's load). The losses of the two trees are printed side by side:
equal losses mean the change left the results alone.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, sys, time
tree = sys.argv[1]
if tree != "-":  # the base tree first, ahead of the editable install's finder
    sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in type(f).__name__.lower()
                        and "skbc" not in type(f).__module__.lower()]
    sys.path.insert(0, tree)
import torch
import tfllmer_fast
from tfllmer_fast.experiment.config import Config
from tfllmer_fast.experiment.run import make_split
from tfllmer_fast.train import build_model, seed_everything
from tfllmer_fast.train.trainer import Trainer
torch.set_num_threads(int(sys.argv[4]))
split = make_split(tfllmer_fast.load_dataset(sys.argv[3]).sequences)
c = Config(dataset=sys.argv[3], init="random", embeddings=None, seed=0, epochs=100,
           progress=False, threads=int(sys.argv[4]), model=sys.argv[5])
seed_everything(0)
t = Trainer(build_model(c, split.n_items), split, c)
out = {"file": tfllmer_fast.__file__, "wall": [], "cpu": [], "loss": []}
for e in range(int(sys.argv[2])):
    w, p = time.perf_counter(), time.process_time()
    loss = t.train_epoch()
    out["wall"].append(time.perf_counter() - w)
    out["cpu"].append(time.process_time() - p)
    out["loss"].append(loss)
print(json.dumps(out))
"""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", default="main")
    ap.add_argument("--dataset", default="scientific")
    ap.add_argument("--model", default="sasrec")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args(argv)
    import tfllmer_fast._core as core

    repo = Path(__file__).resolve().parent.parent
    tmp = Path(tempfile.mkdtemp(prefix="epoch-ab-"))
    try:
        archive = subprocess.run(["git", "-C", str(repo), "archive", a.base, "python"],
                                 check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(tmp)], input=archive, check=True)
        shutil.copy(core.__file__, tmp / "python" / "tfllmer_fast")
        trees = {"base": str(tmp / "python"), "this": "-"}
        res = {k: {"wall": [], "cpu": [], "loss": None} for k in trees}
        paired = []  # per round: this tree's median CPU epoch / the base's
        for _ in range(a.rounds):
            round_cpu = {}
            for name, tree in trees.items():
                out = subprocess.run([sys.executable, "-c", CHILD, tree, str(a.epochs),
                                      a.dataset, str(a.threads), a.model],
                                     check=True, capture_output=True, text=True).stdout
                r = json.loads(out.strip().splitlines()[-1])
                res[name]["wall"] += r["wall"][1:]
                res[name]["cpu"] += r["cpu"][1:]
                res[name]["loss"] = r["loss"]
                res[name]["file"] = r["file"]
                round_cpu[name] = statistics.median(r["cpu"][1:])
            paired.append(round_cpu["this"] / round_cpu["base"])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{a.model} on {a.dataset}, {a.threads} thread(s), {a.rounds} rounds x "
          f"{a.epochs - 1} counted epochs, load average {os.getloadavg()}")
    for name, r in res.items():
        print(f"{name:>5} ({a.base if name == 'base' else 'this tree'}): epoch median "
              f"{statistics.median(r['wall']):.3f} s wall, {statistics.median(r['cpu']):.3f} s "
              f"CPU; losses {r['loss']}")
    b, t = res["base"], res["this"]
    print(f"this / base: wall {statistics.median(t['wall']) / statistics.median(b['wall']):.3f}, "
          f"CPU {statistics.median(t['cpu']) / statistics.median(b['cpu']):.3f}; "
          f"same losses: {b['loss'] == t['loss']}")
    print(f"paired by round (CPU, this / base): median {statistics.median(paired):.3f}, "
          f"all {sorted(round(x, 3) for x in paired)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
