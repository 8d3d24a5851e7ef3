"""Torch ops per step of a group's whole-stack step (the GPU step), with the stacked
parameters as the optimizer's leaves against the members' own leaves stacked every step.

    python benchmarks/group_ops.py --dataset scientific --ks 4 16 64

On a GPU a small model's step waits on kernel launches, and every aten op the step runs is
at least one launch, so ops per step stand in for launches; they are counted on whatever
device runs this (the CPU by default: no GPU needed). Each K trains ``--steps`` steps (after
one warm-up epoch of as many steps) under torch's profiler; top-level and nested ops are
both counted, alike for the two settings. Timings are not reported: on the CPU this step
pads every member to the widest batch, which is the GPU's trade, not the CPU's.
"""

from __future__ import annotations

import argparse
import sys


def count_ops(dataset: str, k: int, steps: int, stacked_leaves: bool, device: str) -> dict:
    from torch.profiler import ProfilerActivity, profile

    import tfllmer_fast
    from tfllmer_fast.experiment.config import Config
    from tfllmer_fast.experiment.run import make_split
    from tfllmer_fast.train.group import GroupTrainer, build_member

    split = make_split(tfllmer_fast.load_dataset(dataset, embeddings=None).sequences)
    cfgs = [Config(dataset=dataset, init="random", embeddings=None, seed=s, epochs=10**6,
                   progress=False, threads=1, device=device) for s in range(k)]
    built = [build_member(c, split.n_items) for c in cfgs]
    g = GroupTrainer([m for m, _ in built], split, cfgs, dropout_states=[s for _, s in built],
                     replay_dropout=False, batched_loss=True, exact=False, split_widths=False)
    if not stacked_leaves:  # the members' own leaves, stacked every step
        g.stacked_leaves = False
    rows = steps * cfgs[0].batch_size
    for t in g.members:
        t.windows = t.windows[:rows]
    g._restack(list(range(k)))
    g.train_epoch()  # warm-up; Adam states exist from here on
    g._restack(list(range(k)))  # as a later epoch's stack: built with the states
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        g.train_epoch()
    ev = prof.key_averages()
    ops = sum(e.count for e in ev if e.key.startswith("aten::"))
    grads = sum(e.count for e in ev if e.key == "torch::autograd::AccumulateGrad")
    return {"k": k, "stacked_leaves": stacked_leaves, "leaves": g.leaves is not None,
            "ops_per_step": ops / steps, "grad_accumulations_per_step": grads / steps}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="scientific")
    ap.add_argument("--ks", type=int, nargs="+", default=[4, 16])
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json")
    a = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    out = [count_ops(a.dataset, k, a.steps, leaves, a.device)
           for k in a.ks for leaves in (False, True)]
    print(f"{'K':>4} {'leaves':>16} {'aten ops/step':>14} {'grad accumulations/step':>24}")
    for r in out:
        kind = "stacked (K, ...)" if r["leaves"] else "members' own"
        print(f"{r['k']:4d} {kind:>16} {r['ops_per_step']:14.0f} "
              f"{r['grad_accumulations_per_step']:24.0f}")
    if a.json:
        from tfllmer_fast.experiment.results import write_json_atomic

        write_json_atomic({"dataset": a.dataset, "steps": a.steps, "rows": out}, a.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
