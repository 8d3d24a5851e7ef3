"""The device checks of issue #15 in one short run (about 5-8 minutes on one H100/H200).

    TFLLMER_DATA=/path/to/data python benchmarks/gpu_checks.py --json gpu_checks.json

1. A member of a group agrees with its lone run on this device (synthetic data, dropout 0:
   the GPU group draws dropout for the whole stack, see ``tfllmer_fast.train.group``).
2. The single run: Beauty SASRec prefix epochs, default vs ``compile=reduce-overhead`` +
   ``static_shapes`` (median of 2 epochs after a warm-up; the compile warm-up is reported).
3. Models x epochs per second for groups of K = 1, 8, 32, 64 on Beauty (one epoch each,
   after a warm-up epoch).

``--device cpu --small`` runs the same code on the synthetic catalogue in seconds (a smoke
test of the script, not a measurement). Every figure printed was measured by this run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--small", action="store_true")
    ap.add_argument("--ks", type=int, nargs="+", default=[1, 8, 32, 64])
    ap.add_argument("--json")
    a = ap.parse_args(argv)
    import torch

    import tfllmer_fast
    from tfllmer_fast.experiment.config import Config
    from tfllmer_fast.experiment.run import make_split
    from tfllmer_fast.train.group import GroupTrainer, build_member
    from tfllmer_fast.train.trainer import Trainer

    dev = torch.device(a.device)
    if dev.type == "cpu":
        torch.set_num_threads(1)
    sync = (lambda: torch.cuda.synchronize(dev)) if dev.type == "cuda" else (lambda: None)
    out: dict = {"device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
                 "torch": torch.__version__}
    tiny = make_split(tfllmer_fast.load_dataset("synthetic", embeddings=None, synthetic=dict(
        n_users=300, n_items=120, dim=16, seed=0)).sequences)
    base = dict(init="random", embeddings=None, progress=False, device=a.device, threads=1)

    # 1. group == alone on this device (dropout 0), three mixed members
    cfgs = [Config(**base, dataset="synthetic", hidden=16, epochs=3, dropout=0.0, seed=s,
                   temperature=t) for s, t in [(0, 1.0), (1, 0.5), (2, 1.0)]]
    alone = []
    for c in cfgs:
        t = Trainer(build_member(c, tiny.n_items)[0], tiny, c)
        t.fit()
        alone.append(t)
    built = [build_member(c, tiny.n_items) for c in cfgs]
    g = GroupTrainer([m for m, _ in built], tiny, cfgs, dropout_states=[s for _, s in built])
    g.fit()
    diffs = [max((pa - pg).abs().max().item() for pa, pg in
                 zip(ta.model.parameters(), tg.model.parameters()))
             for ta, tg in zip(alone, g.members)]
    same = [ta.result.best_epoch == tg.result.best_epoch for ta, tg in zip(alone, g.members)]
    out["group_vs_alone"] = {"max_param_diff": diffs, "same_best_epoch": same}
    print("group vs alone:", out["group_vs_alone"], flush=True)

    split = tiny if a.small else make_split(tfllmer_fast.load_dataset("beauty").sequences)
    ds = (dict(dataset="synthetic", hidden=16, max_len=10) if a.small
          else {"dataset": "beauty"})

    def epochs(trainer, n):
        times = []
        for _ in range(n):
            sync()
            t0 = time.perf_counter()
            trainer.train_epoch()
            sync()
            times.append(time.perf_counter() - t0)
        return times

    # 2. single run, default vs compiled + static shapes
    out["single"] = {}
    for name, kw in {"default": {}, "compiled": dict(compile="reduce-overhead",
                                                     static_shapes=True)}.items():
        c = Config(**base, **ds, seed=0, epochs=100, **kw)
        t = Trainer(build_member(c, split.n_items)[0], split, c)
        warm = epochs(t, 1)[0]
        times = epochs(t, 2)
        ndcg = t.evaluate("test")["ndcg@10"]
        out["single"][name] = {"warmup_s": warm, "epoch_s": statistics.median(times),
                               "test_ndcg@10_after_3_epochs": ndcg}
        print(f"single run {name}: warm-up {warm:.2f} s, epoch {statistics.median(times):.3f} s",
              flush=True)

    # 3. groups of K
    out["groups"] = {}
    for k in a.ks:
        cfgs = [Config(**base, **ds, seed=s, epochs=100) for s in range(k)]
        built = [build_member(c, split.n_items) for c in cfgs]
        g = GroupTrainer([m for m, _ in built], split, cfgs, dropout_states=[s for _, s in built])
        g._restack(list(range(k)))
        epochs(g, 1)
        s = epochs(g, 1)[0]
        out["groups"][k] = {"epoch_s": s, "models_epochs_per_s": k / s}
        print(f"K={k}: {s:.2f} s per group epoch, {k / s:.2f} models x epochs / s", flush=True)
        del g, built
        if dev.type == "cuda":
            torch.cuda.empty_cache()
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
