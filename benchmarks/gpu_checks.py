"""Device checks of the training path in one process (about 8 minutes on one H100/H200).

    TFLLMER_DATA=/path/to/data python benchmarks/gpu_checks.py --json gpu_checks.json

1. ``epoch``: a Beauty SASRec prefix epoch at RecBole's settings (batch 256), default against
   ``compile="reduce-overhead"`` + ``static_shapes`` (median of 2 epochs after a warm-up;
   the compile warm-up is reported) and the test NDCG@10 after those three epochs.
2. ``large_batch``: Beauty at batch 4096 with bf16: training targets per second, beside the
   limit from the FLOPs of one target and the card's bf16 peak (``--peak-tflops``, default
   from the card's name).
3. ``scale``: a synthetic log of ``--interactions`` (1e8) over ``--items`` (1M) with
   sampled softmax (1024 negatives), window rows, batch 4096, bf16: steps per second, the
   epoch time when ``--scale-steps 0`` (a whole epoch) and the peak GPU memory.

``--device cpu --small`` runs every part on small synthetic data in seconds (a smoke test of
the script, run by ``benchmarks/bench_gpu_checks.py``; its figures are not measurements).
Every figure printed was measured by this run; the limits are estimates and say so.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

#: Dense bf16 tensor-core peak (TFLOP/s) by card name: NVIDIA's data sheets (SXM parts).
PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0}


def flops_per_target(hidden: int, inner: int, n_layers: int, width: int, n_scored: int) -> float:
    """Training FLOPs of one SASRec prefix row of ``width`` items scored against ``n_scored``
    items: 3x the forward's multiply-adds (forward + backward), 2 FLOPs each. The last layer
    computes one position (its keys and values all)."""
    per_token_full = 4 * hidden * hidden + 2 * hidden * inner + 2 * width * hidden  # qkv+proj, ffn, attention
    full_layers = (n_layers - 1) * width * per_token_full
    last = width * 2 * hidden * hidden + (2 * hidden * hidden + 2 * hidden * inner + 2 * width * hidden)
    scoring = n_scored * hidden
    return 3 * 2 * float(full_layers + last + scoring)


def synthetic_log(n_interactions: int, n_items: int, mean_length: int = 50, seed: int = 0):
    """Sequences of about ``n_interactions`` over ``n_items`` (Zipf-like popularity, users
    walking near their previous item), built in numpy in seconds even at 1e8."""
    import numpy as np

    from tfllmer_fast.data import Sequences

    rng = np.random.default_rng(seed)
    n_users = max(3, n_interactions // mean_length)
    lengths = np.clip(rng.geometric(1.0 / mean_length, n_users), 3, 4 * mean_length)
    offsets = np.zeros(n_users + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    start = (rng.pareto(1.2, n_users) * n_items / 50).astype(np.int64) % n_items
    steps = rng.integers(-3, 4, offsets[-1])
    steps[offsets[:-1]] = 0
    walk = np.cumsum(steps)
    walk -= np.repeat(walk[offsets[:-1]], lengths)
    items = ((np.repeat(start, lengths) + walk) % n_items).astype(np.int32)
    return Sequences(offsets, items, n_items)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--small", action="store_true")
    ap.add_argument("--parts", nargs="+", default=["epoch", "large_batch", "scale"])
    ap.add_argument("--interactions", type=float, default=1e8)
    ap.add_argument("--items", type=int, default=1_000_000)
    ap.add_argument("--scale-steps", type=int, default=0, help="steps of the scale part (0: one whole epoch)")
    ap.add_argument("--peak-tflops", type=float)
    ap.add_argument("--json")
    a = ap.parse_args(argv)
    import torch

    import tfllmer_fast
    from tfllmer_fast.experiment.config import Config
    from tfllmer_fast.experiment.run import build_run_model, make_split, make_trainer

    dev = torch.device(a.device)
    cuda = dev.type == "cuda"
    if not cuda:
        torch.set_num_threads(1)
    sync = (lambda: torch.cuda.synchronize(dev)) if cuda else (lambda: None)
    name = torch.cuda.get_device_name(dev) if cuda else "cpu"
    out: dict = {"device": name, "torch": torch.__version__}
    base = dict(init="random", embeddings=None, progress=False, device=a.device, threads=None if cuda else 1)
    if a.small:
        split = make_split(
            tfllmer_fast.load_dataset(
                "synthetic", embeddings=None, synthetic=dict(n_users=300, n_items=120, dim=16, seed=0)
            ).sequences
        )
        ds = dict(dataset="synthetic", hidden=16, max_len=10)
    else:
        split = make_split(tfllmer_fast.load_dataset("beauty", embeddings=None).sequences)
        ds = {"dataset": "beauty"}

    def epochs(trainer, n, steps=None):
        times = []
        for _ in range(n):
            sync()
            t0 = time.perf_counter()
            trainer.train_epoch(max_steps=steps) if steps else trainer.train_epoch()
            sync()
            times.append(time.perf_counter() - t0)
        return times

    def report(part, text):
        print(f"[{part}] {text}", flush=True)

    if "epoch" in a.parts:
        out["epoch"] = {}
        for label, kw in {"default": {}, "compiled": dict(compile="reduce-overhead", static_shapes=True)}.items():
            c = Config(**base, **ds, seed=0, epochs=100, **kw)
            t = make_trainer(c, build_run_model(c, split.n_items), split)
            warm = epochs(t, 1)[0]
            times = epochs(t, 2)
            ndcg = t.evaluate("test")["ndcg@10"]
            out["epoch"][label] = {"warmup_s": warm, "epoch_s": statistics.median(times), "test_ndcg@10_3_epochs": ndcg}
            report(
                "epoch", f"{label}: warm-up {warm:.2f} s, epoch {statistics.median(times):.3f} s, NDCG@10 {ndcg:.4f}"
            )

    if "large_batch" in a.parts:
        c = Config(**base, **ds, seed=0, epochs=100, batch_size=4096, lr=4e-3, amp="bf16" if cuda else "off")
        t = make_trainer(c, build_run_model(c, split.n_items), split)
        epochs(t, 1)
        s = statistics.median(epochs(t, 2))
        rate = t.n_targets / s
        width = float(t.window_len.float().mean())
        f = flops_per_target(c.hidden, c.inner_size, c.model_options.n_layers, int(round(width)), split.n_items)
        peak = a.peak_tflops or next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)
        limit = peak * 1e12 / f if peak else None
        out["large_batch"] = {
            "epoch_s": s,
            "targets_per_s": rate,
            "flops_per_target_estimate": f,
            "peak_tflops": peak,
            "limit_targets_per_s_estimate": limit,
            "fraction_of_limit": rate / limit if limit else None,
            "test_ndcg@10_3_epochs": t.evaluate("test")["ndcg@10"],
        }
        report("large_batch", json.dumps(out["large_batch"]))

    if "scale" in a.parts:
        n_int = int(2e5 if a.small else a.interactions)
        n_items = 5000 if a.small else a.items
        t0 = time.perf_counter()
        seqs = synthetic_log(n_int, n_items)
        sp = make_split(seqs)
        gen_s = time.perf_counter() - t0
        c = Config(
            **base, dataset="synthetic", seed=0, epochs=1, batch_size=4096, loss="sampled_softmax",
            n_negatives=1024, train_samples="windows", amp="bf16" if cuda else "off",
            **({"hidden": 16, "max_len": 10} if a.small else {}),
        )  # fmt: skip
        if cuda:
            torch.cuda.reset_peak_memory_stats(dev)
        t = make_trainer(c, build_run_model(c, sp.n_items), sp)
        n_batches = -(-t.windows.shape[0] // c.batch_size)
        steps = a.scale_steps or None
        s = epochs(t, 1, steps)[0]
        done = min(steps or n_batches, n_batches)
        out["scale"] = {
            "interactions": int(seqs.n_interactions),
            "items": n_items,
            "users": int(seqs.n_users),
            "generate_s": gen_s,
            "steps": done,
            "steps_per_epoch": n_batches,
            "seconds": s,
            "steps_per_s": done / s,
            "epoch_s": s if done == n_batches else None,
            "peak_gpu_gib": torch.cuda.max_memory_allocated(dev) / 2**30 if cuda else None,
        }
        report("scale", json.dumps(out["scale"]))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
