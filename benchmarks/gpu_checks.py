"""Device checks of the training path in one short run (a few minutes on one GPU).

    TFLLMER_DATA=/path/to/data python benchmarks/gpu_checks.py --json gpu_checks.json

Beauty SASRec prefix epochs, default vs ``compile=reduce-overhead`` + ``static_shapes``
(median of 2 epochs after a warm-up; the compile warm-up is reported), and the test
NDCG@10 after those three epochs.

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
    ap.add_argument("--json")
    a = ap.parse_args(argv)
    import torch

    import tfllmer_fast
    from tfllmer_fast.experiment.config import Config
    from tfllmer_fast.experiment.run import build_run_model, make_split, make_trainer

    dev = torch.device(a.device)
    if dev.type == "cpu":
        torch.set_num_threads(1)
    sync = (lambda: torch.cuda.synchronize(dev)) if dev.type == "cuda" else (lambda: None)
    out: dict = {"device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu", "torch": torch.__version__}
    tiny = make_split(
        tfllmer_fast.load_dataset(
            "synthetic", embeddings=None, synthetic=dict(n_users=300, n_items=120, dim=16, seed=0)
        ).sequences
    )
    base = dict(init="random", embeddings=None, progress=False, device=a.device, threads=1)

    split = tiny if a.small else make_split(tfllmer_fast.load_dataset("beauty").sequences)
    ds = dict(dataset="synthetic", hidden=16, max_len=10) if a.small else {"dataset": "beauty"}

    def epochs(trainer, n):
        times = []
        for _ in range(n):
            sync()
            t0 = time.perf_counter()
            trainer.train_epoch()
            sync()
            times.append(time.perf_counter() - t0)
        return times

    # default vs compiled + static shapes
    out["single"] = {}
    for name, kw in {"default": {}, "compiled": dict(compile="reduce-overhead", static_shapes=True)}.items():
        c = Config(**base, **ds, seed=0, epochs=100, **kw)
        t = make_trainer(c, build_run_model(c, split.n_items), split)
        warm = epochs(t, 1)[0]
        times = epochs(t, 2)
        ndcg = t.evaluate("test")["ndcg@10"]
        out["single"][name] = {
            "warmup_s": warm,
            "epoch_s": statistics.median(times),
            "test_ndcg@10_after_3_epochs": ndcg,
        }
        print(f"single run {name}: warm-up {warm:.2f} s, epoch {statistics.median(times):.3f} s", flush=True)

    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
