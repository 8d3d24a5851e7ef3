"""The co-occurrence graph on a 2-worker Dask LocalCluster of this machine, beside the
single-process streaming counter; peak RSS per worker for several row-block counts.

    python benchmarks/scale_dask.py                                   # the full run: 1e9 interactions
    python benchmarks/scale_dask.py --interactions 3e7 --n-items 4000000 --memory-limit 1GiB

Interactions are generated on the workers, shard by shard (users with geometric lengths of
mean --mean-length, Zipf(--zipf) popularity with rank = item id, so popular items have small
ids as in real logs); counted with window 5 and max_history 200. The catalogue must be large
enough that the unpruned graph exceeds one worker's --memory-limit: then the tree reduction
and a single row block are refused by the plan (the error names the block count to use),
and the shuffle runs with the block counts given. Every configuration starts from freshly
restarted workers, so each worker's peak RSS (ru_maxrss) belongs to that configuration.
Results go to stdout as JSON lines.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time

import numpy as np


def parse_bytes(s: str) -> int:
    units = {"kib": 2**10, "mib": 2**20, "gib": 2**30, "kb": 10**3, "mb": 10**6, "gb": 10**9}
    low = s.strip().lower()
    for u, f in units.items():
        if low.endswith(u):
            return int(float(low[: -len(u)]) * f)
    return int(float(low))


def make_shard(seed: int, n_interactions: int, n_items: int, mean_length: float, zipf: float):
    """(offsets, items) of whole users with about n_interactions interactions."""
    rng = np.random.default_rng(seed)
    n_users = max(1, int(n_interactions / mean_length))
    lengths = rng.geometric(1.0 / mean_length, size=n_users).astype(np.int64)
    offsets = np.zeros(n_users + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    # Zipf by inverse CDF on a coarse grid of ranks: cheap for millions of items.
    ranks = np.arange(1, n_items + 1, dtype=np.float64)
    cdf = np.cumsum(ranks**-zipf)
    cdf /= cdf[-1]
    items = np.searchsorted(cdf, rng.random(int(offsets[-1])), side="right")
    np.minimum(items, n_items - 1, out=items)
    return offsets, items.astype(np.int32)


def worker_peak_rss() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024.0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--interactions", type=float, default=1e9)
    p.add_argument("--n-items", type=int, default=20_000_000)
    p.add_argument("--shards", type=int, default=0, help="default: one per 2e7 interactions (at least 8)")
    p.add_argument("--mean-length", type=float, default=20.0)
    p.add_argument("--zipf", type=float, default=0.8)
    p.add_argument("--window", type=int, default=5)
    p.add_argument("--max-history", type=int, default=200)
    p.add_argument("--memory-limit", default="4GiB", help="per worker")
    p.add_argument("--blocks", default="1,4,16")
    p.add_argument("--single", action="store_true", help="also time the single-process streaming counter")
    args = p.parse_args(argv)

    import distributed

    import tfllmer_fast.dask as tdask
    from tfllmer_fast import CooccurrenceCounter
    from tfllmer_fast.graph.partial import BYTES_PER_ENTRY

    limit = parse_bytes(args.memory_limit)
    n = int(args.interactions)
    shards = args.shards or max(8, round(n / 2e7))
    per_shard = n // shards
    opts = dict(window=args.window, max_history=args.max_history)
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, memory_limit=limit, dashboard_address=":0"
    )
    client = distributed.Client(cluster)
    base = {
        "interactions": per_shard * shards,
        "n_items": args.n_items,
        "shards": shards,
        "memory_limit": limit,
        **opts,
    }

    def shard_futures():
        return [
            client.submit(make_shard, s, per_shard, args.n_items, args.mean_length, args.zipf, pure=False)
            for s in range(shards)
        ]

    for blocks in [int(b) for b in args.blocks.split(",")]:
        client.restart()
        t0 = time.perf_counter()
        row = {**base, "reduce": "shuffle", "n_row_blocks": blocks}
        try:
            g = tdask.cooccurrence(
                shard_futures(),
                args.n_items,
                reduce="shuffle",
                n_row_blocks=blocks,
                client=client,
                return_blocks=True,
                **opts,
            )
            row["nnz"] = g.nnz()
            row["wall_s"] = round(time.perf_counter() - t0, 2)
            row["bytes_per_entry_exact"] = BYTES_PER_ENTRY["count"]
        except MemoryError as e:
            row["refused"] = str(e)
        rss = client.run(worker_peak_rss)
        row["worker_peak_rss_gib"] = sorted(round(v / 2**30, 3) for v in rss.values())
        row["max_worker_rss_over_limit"] = max(rss.values()) > limit
        print(json.dumps(row), flush=True)
        g = None

    client.close()
    cluster.close()
    if args.single:
        t0 = time.perf_counter()
        counter = CooccurrenceCounter(args.n_items, n_threads=2, **opts)
        for s in range(shards):
            counter.update(*make_shard(s, per_shard, args.n_items, args.mean_length, args.zipf))
        graph = counter.result()
        row = {
            **base,
            "reduce": "single-process CooccurrenceCounter",
            "n_threads": 2,
            "nnz": int(graph.nnz),
            "wall_s": round(time.perf_counter() - t0, 2),
            "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3),
        }
        print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
