"""Models x epochs per second on two cores: a group on 1 and 2 threads against one lone run
on 1 and 2 threads and against two lone processes on 1 thread each.

    python benchmarks/two_cores.py --dataset scientific --ks 4 16 --rounds 3

Every round runs one epoch of each setting, in turn, so that the load of a shared machine
falls on all of them alike; the figures are medians over rounds (round 0 warms up). The
pair: two processes, each with its own lone trainer (seeds 0 and 1), start an epoch at
once; its time is the slower one's. Prints models x epochs per second per setting.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import sys
import time


def _setup(dataset: str, model: str):
    import tfllmer_fast
    from tfllmer_fast.experiment.config import Config
    from tfllmer_fast.experiment.run import make_split

    split = make_split(tfllmer_fast.load_dataset(dataset, embeddings=None).sequences)

    def config(seed, threads):
        return Config(dataset=dataset, init="random", embeddings=None, model=model, seed=seed,
                      epochs=10**6, progress=False, threads=threads)
    return split, config


def _lone(split, config, seed, threads):
    from tfllmer_fast.train.group import build_member
    from tfllmer_fast.train.trainer import Trainer

    c = config(seed, threads)
    return Trainer(build_member(c, split.n_items)[0], split, c)


def _pair_worker(conn, dataset, model, seed):
    import torch

    torch.set_num_threads(1)
    split, config = _setup(dataset, model)
    t = _lone(split, config, seed, 1)
    conn.send("ready")
    while conn.recv() == "epoch":
        t.train_epoch()
        conn.send("done")


def measure(dataset: str, ks, rounds: int, model: str) -> dict:
    import torch

    from tfllmer_fast.train.group import GroupTrainer, build_member

    split, config = _setup(dataset, model)
    settings = {}
    for k in ks:
        cfgs = [config(s, 1) for s in range(k)]
        built = [build_member(c, split.n_items) for c in cfgs]
        g = GroupTrainer([m for m, _ in built], split, cfgs, dropout_states=[s for _, s in built])
        g._restack(list(range(k)))
        for threads in (1, 2):
            settings[f"group K={k}, {threads} thread(s)"] = (k, threads, g.train_epoch)
    for threads in (1, 2):
        settings[f"lone, {threads} thread(s)"] = (1, threads, _lone(split, config, 0, 1).train_epoch)
    ctx = mp.get_context("spawn")
    pipes = []
    for seed in (0, 1):
        a, b = ctx.Pipe()
        ctx.Process(target=_pair_worker, args=(b, dataset, model, seed), daemon=True).start()
        pipes.append(a)
    for a in pipes:
        a.recv()

    def pair():
        for a in pipes:
            a.send("epoch")
        for a in pipes:
            a.recv()
    settings["two lone processes, 1 thread each"] = (2, 1, pair)
    walls = {name: [] for name in settings}
    for r in range(rounds + 1):
        for name, (_, threads, fn) in settings.items():
            torch.set_num_threads(threads)
            w = time.perf_counter()
            fn()
            if r:
                walls[name].append(time.perf_counter() - w)
    for a in pipes:
        a.send("stop")
    out = {"dataset": dataset, "model": model, "rounds": rounds, "load_avg": os.getloadavg(),
           "settings": {}}
    for name, (models, threads, _) in settings.items():
        wall = statistics.median(walls[name])
        out["settings"][name] = {"models": models, "threads": threads, "epoch_wall_s": wall,
                                 "models_epochs_per_s": models / wall, "walls": walls[name]}
    return out


def main(argv=None):
    from tfllmer_fast.experiment.results import write_json_atomic

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="scientific")
    ap.add_argument("--model", default="sasrec")
    ap.add_argument("--ks", type=int, nargs="+", default=[4, 16])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json")
    a = ap.parse_args(argv)
    out = measure(a.dataset, a.ks, a.rounds, a.model)
    print(f"{a.model} on {a.dataset}, {a.rounds} rounds (medians), load average after "
          f"{tuple(round(x, 2) for x in out['load_avg'])}")
    print(f"{'setting':40s} {'epoch s':>9} {'models*ep/s':>12}")
    for name, r in out["settings"].items():
        print(f"{name:40s} {r['epoch_wall_s']:9.2f} {r['models_epochs_per_s']:12.3f}")
    if a.json:
        write_json_atomic(out, a.json)
    return out


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
