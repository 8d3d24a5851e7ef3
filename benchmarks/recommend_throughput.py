"""Recommendations per second for every user of a dataset, against a plain per-user torch
loop, the floor and RecBole 1.2.1's ``full_sort_topk``, in one run; and the peak memory of
many users over a large synthetic catalogue.

    python benchmarks/recommend_throughput.py --threads 2 --out recommend.json
    python benchmarks/recommend_throughput.py --device cuda --skip-recbole   # on a GPU

What is timed (median of ``--repeats``), every user of the dataset (Beauty: 22,363 users,
12,101 items), each ranked from their history up to the test item (what RecBole's test
split holds), k = 10, the whole catalogue scored:

* ``ours``: :meth:`Recommender.recommend` over the histories as a ``Sequences`` with the
  dataset's keys (key mapping, encoder, scores, top-k with the tie rule, keys out), with
  ``exclude_seen`` off (as RecBole's sequential ``full_sort_topk``) and on; and from Python
  lists of raw keys;
* ``loop``: the plain per-user loop (``model(ids)`` then ``torch.topk``) on the first
  ``--loop-users`` users, as a rate;
* ``floor``: the bare score product (users x hidden x items) on random user vectors plus
  ``torch.topk``, in blocks (the best of a few block sizes), on the same device; the
  repeats of ours and of the floor alternate, and their ratio is the median of the
  per-repeat ratios;
* ``recbole``: ``benchmarks/recbole/recbole_topk.py`` in RecBole's own venv
  (``--recbole-python``), SASRec at the same size;
* ``memory``: a fresh process loads a checkpoint of a ``--memory-items``-item SASRec and
  recommends for ``--memory-users`` random histories on the CPU; its peak RSS.

The model is SASRec at RecBole's size (hidden 64, 2 layers, 2 heads, max length 50) with
TF-LLMER's normalised item scoring, untrained unless ``--checkpoint`` names one: the cost
does not depend on the weights.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="beauty", help="a dataset name or folder (default beauty)")
    p.add_argument("--checkpoint", help="serve this checkpoint instead of an untrained SASRec")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--loop-users", type=int, default=500)
    p.add_argument("--recbole-python", default=str(ROOT / ".venv-recbole" / "bin" / "python"))
    p.add_argument("--skip-recbole", action="store_true")
    p.add_argument("--skip-memory", action="store_true")
    p.add_argument("--memory-users", type=int, default=10_000)
    p.add_argument("--memory-items", type=int, default=1_000_000)
    p.add_argument("--memory-child", help=argparse.SUPPRESS)
    p.add_argument("--out", type=Path)
    return p.parse_args(argv)


def timed(fn, repeats: int, device) -> list[float]:
    out = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        out.append(time.perf_counter() - t)
    return out


def histories_before_test(seqs):
    """Every user's history without its last item (the test input), keys kept."""
    from tfllmer_fast.data import Sequences
    from tfllmer_fast.data.sequences import gather_segments

    keep = seqs.lengths >= 2
    s = seqs.subset_users(np.flatnonzero(keep))
    lengths = s.lengths - 1
    offsets = np.zeros(lengths.size + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    items = gather_segments(s.items, s.offsets[:-1], lengths)
    return Sequences(offsets, items, s.n_items, user_ids=s.user_ids, item_ids=s.item_ids)


def sasrec(n_items: int):
    from tfllmer_fast.train import SASRec

    torch.manual_seed(0)
    return SASRec(n_items, 64, 50, normalize_items=True).eval()


def throughput(args, device) -> dict:
    from tfllmer_fast import load_dataset
    from tfllmer_fast.serving import SCORE_BUDGET, Recommender

    seqs = histories_before_test(load_dataset(args.dataset, embeddings=None).sequences)
    n_users, n_items = seqs.n_users, seqs.n_items
    if args.checkpoint:
        rec = Recommender.from_checkpoint(args.checkpoint, device=device)
    else:
        keys = seqs.item_ids if seqs.item_ids is not None else range(n_items)
        rec = Recommender(sasrec(n_items), keys, device=device)
    model, k, r = rec.model, args.k, args.repeats
    res = {"n_users": n_users, "n_items": n_items, "k": k}
    key_lists = [rec.item_keys[seqs.user(u)].tolist() for u in range(n_users)]
    rec.recommend(seqs.subset_users(np.arange(min(n_users, 512))), k=k)  # warm-up

    # the floor: bare score GEMM + topk over random user vectors; its best block size first
    g = torch.Generator(device=device).manual_seed(0)
    H = torch.randn(n_users, model.hidden, device=device, generator=g)
    with torch.no_grad():
        E = model.item_table().detach().float()

    def floor(block):
        with torch.no_grad():
            for a in range(0, n_users, block):
                torch.topk(H[a : a + block] @ E.t(), k).indices.cpu()

    blocks = sorted({256, 1024, 4096, max(1, SCORE_BUDGET // n_items)})
    res["floor_s_by_block"] = {b: timed(lambda b=b: floor(b), 1, device)[0] for b in blocks}
    block = min(res["floor_s_by_block"], key=res["floor_s_by_block"].get)
    res["floor_block"] = block

    # interleaved repeats, so that each ratio compares runs made under the same load
    runs = {
        "ours_s": lambda: rec.recommend(seqs, k=k, exclude_seen=False),
        "ours_exclude_seen_s": lambda: rec.recommend(seqs, k=k),
        "ours_key_lists_s": lambda: rec.recommend(key_lists, k=k, exclude_seen=False),
        "encoder_only_s": lambda: rec.user_vectors(seqs),  # the same blocks, no scores
        "floor_s_all": lambda: floor(block),
    }
    for name in runs:
        res[name] = []
    for _ in range(r):
        for name, fn in runs.items():
            res[name] += timed(fn, 1, device)
    res["floor_s"] = float(np.median(res["floor_s_all"]))
    res["ours_over_floor"] = [a / b for a, b in zip(res["ours_s"], res["floor_s_all"])]

    # a plain per-user loop: what the model's forward gives without the serving layer
    m = min(args.loop_users, n_users)

    def loop():
        with torch.no_grad():
            for u in range(m):
                hist = seqs.user(u)[-model.max_len :]
                x = torch.as_tensor(hist.astype(np.int64) + 1, device=device).unsqueeze(0)
                torch.topk(model(x), k)

    t = timed(loop, 1, device)[0]
    res["loop_users"] = m
    res["loop_s_per_user"] = t / m
    return res


def recbole(args) -> dict | None:
    py = Path(args.recbole_python)
    if args.skip_recbole or not py.exists():
        return {
            "skipped": "--skip-recbole" if args.skip_recbole else f"{py} not found (benchmarks/recbole/setup_venv.sh)"
        }
    from tfllmer_fast.data.paths import shared_data_dir

    folder = Path(args.dataset)
    if not folder.is_dir():
        folder = shared_data_dir() / args.dataset
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "recbole.json"
        cmd = [
            str(py),
            str(ROOT / "benchmarks" / "recbole" / "recbole_topk.py"),
            "--data-dir",
            str(folder),
            "--k",
            str(args.k),
            "--threads",
            str(args.threads),
            "--repeats",
            str(args.repeats),
            "--out",
            str(out),
            "--device",
            "cuda" if args.device.startswith("cuda") else "cpu",
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode:
            return {"failed": proc.stderr.strip().splitlines()[-1:] or ["exit code %d" % proc.returncode]}
        return json.loads(out.read_text())


def memory(args) -> dict:
    """Peak RSS of a fresh process: load a large checkpoint, recommend for many users."""
    from tfllmer_fast.experiment.config import Config
    from tfllmer_fast.train import save_checkpoint

    n = args.memory_items
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.pt"
        model = sasrec(n)
        cfg = Config(dataset="synthetic", init="random", hidden=64, max_len=50).to_dict()
        save_checkpoint(
            {
                "epoch": 0,
                "config": cfg,
                "model": model.state_dict(),
                "best_state": None,
                "items": {"n_items": n, "known_ids": [f"item-{i}" for i in range(n)]},
            },
            path,
        )
        del model
        cmd = [
            sys.executable,
            __file__,
            "--memory-child",
            str(path),
            "--memory-users",
            str(args.memory_users),
            "--threads",
            str(args.threads),
            "--k",
            str(args.k),
        ]
        proc = subprocess.run(
            cmd, capture_output=True, text=True, env=os.environ | {"OMP_NUM_THREADS": str(args.threads)}
        )
        if proc.returncode:
            raise SystemExit(proc.stderr)
        return json.loads(proc.stdout.strip().splitlines()[-1])


def memory_child(args) -> None:
    from tfllmer_fast.serving import Recommender

    torch.set_num_threads(args.threads)
    t = time.perf_counter()
    rec = Recommender.from_checkpoint(args.memory_child, device="cpu")
    load_s = time.perf_counter() - t
    rss_loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rng = np.random.default_rng(0)
    n = rec.n_items
    hist = [[f"item-{i}" for i in rng.integers(0, n, rng.integers(1, 51))] for _ in range(args.memory_users)]
    t = time.perf_counter()
    recs = rec.recommend(hist, k=args.k)
    rec_s = time.perf_counter() - t
    print(
        json.dumps(
            {
                "n_items": n,
                "n_users": len(recs),
                "k": args.k,
                "load_s": load_s,
                "recommend_s": rec_s,
                "peak_rss_after_load_mib": rss_loaded,
                "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            }
        )
    )


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.memory_child:
        memory_child(args)
        return {}
    torch.set_num_threads(args.threads)
    from tfllmer_fast.train import resolve_device

    device = resolve_device(args.device)
    res = {
        "load_before": os.getloadavg(),
        "threads": torch.get_num_threads(),
        "device": str(device),
        "machine": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "cuda": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
    }
    res["ours"] = throughput(args, device)
    res["recbole"] = recbole(args)
    if not args.skip_memory:
        res["memory"] = memory(args)
    res["load_after"] = os.getloadavg()
    report(res)
    if args.out:
        args.out.write_text(json.dumps(res, indent=2))
    return res


def report(res: dict) -> None:
    o = res["ours"]
    n = o["n_users"]
    med = lambda xs: float(np.median(xs))  # noqa: E731
    rows = [
        ("ours, exclude_seen off", med(o["ours_s"])),
        ("ours, exclude_seen on", med(o["ours_exclude_seen_s"])),
        ("ours, from lists of keys", med(o["ours_key_lists_s"])),
        ("  of which the encoder", med(o["encoder_only_s"])),
        ("per-user torch loop (rate of %d users)" % o["loop_users"], o["loop_s_per_user"] * n),
        ("floor: GEMM + topk (blocks of %d)" % o["floor_block"], o["floor_s"]),
    ]
    rb = res.get("recbole") or {}
    if "median_s" in rb:
        rows.append(("RecBole full_sort_topk", rb["median_s"]))
    print(
        f"{n} users x {o['n_items']} items, k={o['k']}, {res['threads']} threads on {res['device']}, "
        f"load {res['load_before'][0]:.2f} -> {res['load_after'][0]:.2f}"
    )
    for name, s in rows:
        print(f"  {name:42s} {s:8.3f} s  {n / s:10.0f} users/s")
    base = med(o["ours_s"])
    print(
        f"  ours / floor: {med(o['ours_over_floor']):.2f}x (median of the per-repeat ratios)"
        + (f"; RecBole / ours: {rb['median_s'] / base:.1f}x" if "median_s" in rb else f"; RecBole: {rb}")
    )
    if "memory" in res:
        m = res["memory"]
        print(
            f"  memory: {m['n_users']} users over {m['n_items']} items: peak RSS {m['peak_rss_mib']:.0f} MiB "
            f"(after load {m['peak_rss_after_load_mib']:.0f}), load {m['load_s']:.1f} s, "
            f"recommend {m['recommend_s']:.1f} s"
        )


if __name__ == "__main__":
    main()
