"""Models x epochs per second when K models train in one group, against K = 1.

    python benchmarks/group_throughput.py --dataset scientific --ks 1 4 16 --rounds 3 --threads 1

Every round trains one epoch of a group of each size, the sizes interleaved, so that the
load of a shared machine falls on all of them alike; the figures are medians over rounds.
Reported per K: wall seconds per group epoch, models x epochs per second (wall and per
CPU-second of this process, which a busy machine disturbs less), and the ratio to K = 1.
``--lone`` adds the plain :class:`Trainer` epoch (one model, no stacking) as a reference
(``--compile reduce-overhead --static-shapes`` for the fast single run on CUDA).
``--padded`` adds groups with ``exact=False`` (members of different widths share padded
forwards; rows ``<K>p``) to the same rounds. ``--json PATH`` writes the figures. On a GPU
(``--device cuda``) the issue asks for ``--ks 1 8 32 64``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time


def measure(dataset: str, ks, rounds: int, threads: int, model: str, lone: bool,
            device: str = "cpu", synthetic_users: int = 4000, padded: bool = False,
            **extra) -> dict:
    import torch

    import tfllmer_fast
    from tfllmer_fast.experiment.config import Config
    from tfllmer_fast.experiment.run import make_split
    from tfllmer_fast.train.group import GroupTrainer, build_member
    from tfllmer_fast.train.trainer import Trainer

    torch.set_num_threads(threads)
    synthetic = (dict(n_users=synthetic_users, n_items=synthetic_users // 3, dim=16, seed=0)
                 if dataset == "synthetic" else None)
    data = tfllmer_fast.load_dataset(dataset, embeddings=None, synthetic=synthetic)
    split = make_split(data.sequences)

    def config(seed):
        return Config(dataset=dataset, init="random", embeddings=None, model=model, seed=seed,
                      epochs=10**6, progress=False, threads=threads, device=device, **extra)

    groups = {}
    for k in ks:
        for exact in ((None, False) if padded else (None,)):
            cfgs = [config(s) for s in range(k)]
            built = [build_member(c, split.n_items) for c in cfgs]
            g = GroupTrainer([m for m, _ in built], split, cfgs,
                             dropout_states=[s for _, s in built], exact=exact)
            g._restack(list(range(k)))
            groups[k if exact is None else f"{k}p"] = g
    runs = {k: {"wall": [], "cpu": []} for k in groups}
    if lone:
        c = config(0)
        tr = Trainer(build_member(c, split.n_items)[0], split, c)
        runs["lone"] = {"wall": [], "cpu": []}

    def timed(fn):
        w, c0 = time.perf_counter(), time.process_time()
        fn()
        if device != "cpu":
            torch.cuda.synchronize()
        return time.perf_counter() - w, time.process_time() - c0

    for r in range(rounds + 1):  # round 0 warms up (allocator, first-touch pages)
        for k in groups:
            w, c = timed(groups[k].train_epoch)
            if r:
                runs[k]["wall"].append(w)
                runs[k]["cpu"].append(c)
        if lone:
            w, c = timed(tr.train_epoch)
            if r:
                runs["lone"]["wall"].append(w)
                runs["lone"]["cpu"].append(c)
    out = {"dataset": dataset, "model": model, "threads": threads, "rounds": rounds,
           "n_rows": int(groups[ks[0]].members[0].windows.shape[0]), "device": device,
           "load_avg": os.getloadavg(), "cpu_count": os.cpu_count(), "k": {}}
    base = None
    for k, v in runs.items():
        kk = 1 if k == "lone" else int(str(k).rstrip("p"))
        wall, cpu = statistics.median(v["wall"]), statistics.median(v["cpu"])
        row = {"epoch_wall_s": wall, "epoch_cpu_s": cpu, "models_epochs_per_s": kk / wall,
               "models_epochs_per_cpu_s": kk / cpu, "walls": v["wall"]}
        if k == ks[0]:
            base = row
        out["k"][str(k)] = row
    for row in out["k"].values():
        row["ratio_wall"] = row["models_epochs_per_s"] / base["models_epochs_per_s"]
        row["ratio_cpu"] = row["models_epochs_per_cpu_s"] / base["models_epochs_per_cpu_s"]
    return out


def main(argv=None):
    from tfllmer_fast.experiment.results import write_json_atomic

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="scientific")
    ap.add_argument("--model", default="sasrec")
    ap.add_argument("--ks", type=int, nargs="+", default=[1, 4, 16])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--lone", action="store_true")
    ap.add_argument("--compile", default="off", help="Config.compile of the lone reference")
    ap.add_argument("--static-shapes", action="store_true")
    ap.add_argument("--padded", action="store_true", help="also exact=False groups")
    ap.add_argument("--json")
    a = ap.parse_args(argv)
    out = measure(a.dataset, a.ks, a.rounds, a.threads, a.model, a.lone, a.device,
                  padded=a.padded, compile=a.compile, static_shapes=a.static_shapes)
    print(f"{a.model} on {a.dataset}, {out['n_rows']} rows, {a.threads} thread(s), "
          f"{a.rounds} rounds (medians), load average {out['load_avg']}")
    print(f"{'K':>5} {'epoch s':>9} {'models*ep/s':>12} {'ratio':>7} {'per CPU-s':>10} {'ratio':>7}")
    for k, r in out["k"].items():
        print(f"{k:>5} {r['epoch_wall_s']:9.2f} {r['models_epochs_per_s']:12.3f} "
              f"{r['ratio_wall']:7.2f} {r['models_epochs_per_cpu_s']:10.3f} {r['ratio_cpu']:7.2f}")
    if a.json:
        write_json_atomic(out, a.json)
    return out


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
