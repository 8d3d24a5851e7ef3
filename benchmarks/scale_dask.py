"""The co-occurrence graph on a 2-worker Dask LocalCluster of this machine, beside the
single-process streaming counter; peak RSS per worker for several row-block counts.

    python benchmarks/scale_dask.py --workdir DIR --single              # the full run: 1e9 interactions
    python benchmarks/scale_dask.py --workdir DIR --interactions 1e8 --memory-limit 1GiB

Interactions are generated once into ``.npy`` shard files under ``--workdir`` (users with
geometric lengths of mean --mean-length, Zipf(--zipf) popularity with rank = item id, so
popular items have small ids as in real logs) and reused when present; the workers read them
as users' shard files would be read. Counted with window 5 and max_history 200. The catalogue
must be large enough that the unpruned graph exceeds one worker's --memory-limit: then the
tree reduction and a single row block are refused by the plan (the error names the block
count to use), and the shuffle runs with the block counts given. Every configuration starts
from freshly restarted workers, so each worker's peak RSS (VmHWM) belongs to that
configuration; Dask spills to ``--workdir``/dask-spill. Each run prints an order-free
checksum of its graph, so runs can be compared without gathering the graph anywhere.
Results go to stdout as JSON lines.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np


def make_shard(seed: int, n_interactions: int, n_items: int, mean_length: float, zipf: float):
    """(offsets, items) of whole users with about n_interactions interactions."""
    rng = np.random.default_rng(seed)
    n_users = max(1, int(n_interactions / mean_length))
    lengths = rng.geometric(1.0 / mean_length, size=n_users).astype(np.int64)
    offsets = np.zeros(n_users + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    # Zipf by inverse CDF: cheap for millions of items.
    ranks = np.arange(1, n_items + 1, dtype=np.float64)
    cdf = np.cumsum(ranks**-zipf)
    cdf /= cdf[-1]
    items = np.searchsorted(cdf, rng.random(int(offsets[-1])), side="right")
    np.minimum(items, n_items - 1, out=items)
    return offsets, items.astype(np.int32)


def write_shards(folder: Path, shards: int, per_shard: int, args) -> list[str]:
    """Shard files ``<folder>/shard-K`` (an .npy pair each), written once and atomically."""
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for s in range(shards):
        name = folder / f"shard-{s:05d}"
        done = Path(f"{name}.items.npy")
        if not done.exists():
            offsets, items = make_shard(s, per_shard, args.n_items, args.mean_length, args.zipf)
            for suffix, arr in ((".offsets.npy", offsets), (".items.npy", items)):
                tmp = Path(f"{name}{suffix}.tmp.npy")
                np.save(tmp, arr)
                tmp.replace(f"{name}{suffix}")
        names.append(str(name))
    return names


def checksum(row_begin: int, indptr, indices, data) -> int:
    """Sum mod 2**64 of a mixed hash of (row, column, weight bits) per entry: independent of
    how the rows are split into blocks, so blocks' checksums add up to the graph's."""
    rows = np.repeat(np.arange(row_begin, row_begin + len(indptr) - 1, dtype=np.uint64), np.diff(indptr))
    h = (rows << np.uint64(32)) | np.asarray(indices, dtype=np.uint64)
    h ^= np.asarray(data, dtype=np.float32).view(np.uint32).astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    h ^= h >> np.uint64(31)
    h *= np.uint64(0xBF58476D1CE4E5B9)
    h ^= h >> np.uint64(29)
    return int(np.sum(h, dtype=np.uint64))


def block_checksum(block) -> int:
    return checksum(block.row_begin, block.indptr, block.indices, block.data)


def task_seconds(records) -> dict:
    """Compute seconds summed per kind of task (count, split, merge, finish, ...)."""
    out: dict[str, float] = {}
    for r in records:
        name = r["key"][0] if isinstance(r["key"], tuple) else r["key"]
        kind = name.rsplit("-", 5)[0] if "tfllmer-count" not in name else "count"
        kind = kind.replace("tfllmer-", "").lstrip("_")
        spent = sum(s["stop"] - s["start"] for s in r.get("startstops", ()) if s["action"] == "compute")
        out[kind] = round(out.get(kind, 0.0) + spent, 1)
    return out


def peak_rss() -> float:
    """Bytes: this process's peak resident memory since it started its program. ru_maxrss
    would not do for workers: Linux carries it across exec, so a worker spawned by a large
    process would start at that process's size."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return float(line.split()[1]) * 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024.0


def run_dask(paths, block_counts, limit, base, opts, args, work: Path) -> None:
    """One JSON line per block count, each on freshly restarted workers."""
    import distributed

    import tfllmer_fast.dask as tdask

    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        memory_limit=limit,
        dashboard_address=":0",
        local_directory=str(work / "dask-spill"),
    )
    client = distributed.Client(cluster)
    for blocks in block_counts:
        client.restart()
        workers = set(client.scheduler_info()["workers"])
        t0 = time.perf_counter()
        row = {**base, "reduce": "shuffle", "n_row_blocks": blocks}
        try:
            with distributed.get_task_stream(client=client) as stream:
                g = tdask.cooccurrence(
                    paths,
                    args.n_items,
                    reduce="shuffle",
                    n_row_blocks=blocks,
                    client=client,
                    return_blocks=True,
                    **opts,
                )
            row["task_seconds"] = task_seconds(stream.data)
            row["wall_s"] = round(time.perf_counter() - t0, 2)
            row["nnz"] = g.nnz()
            sums = client.gather(client.map(block_checksum, g.blocks, pure=False))
            row["checksum"] = hex(sum(sums) % 2**64)
        except MemoryError as e:
            row["refused"] = str(e)
            row["until_refused_s"] = round(time.perf_counter() - t0, 2)
        # A worker killed for memory is replaced: its peak is lost, so deaths are reported.
        row["workers_replaced"] = len(workers - set(client.scheduler_info()["workers"]))
        rss = client.run(peak_rss)
        row["worker_peak_rss_gib"] = sorted(round(v / 2**30, 3) for v in rss.values())
        row["max_worker_rss_over_limit"] = max(rss.values()) > limit
        print(json.dumps(row), flush=True)
        g = None

    client.close()
    cluster.close()


def run_single(paths, base, opts, args) -> None:
    """The single-process streaming counter over the same shard files, 2 threads."""
    from tfllmer_fast import CooccurrenceCounter
    from tfllmer_fast.graph.shards import iter_shard

    t0 = time.perf_counter()
    counter = CooccurrenceCounter(args.n_items, n_threads=2, **opts)
    for path in paths:
        for offsets, items in iter_shard(path):
            counter.update(offsets, items)
    graph = counter.result()
    row = {
        **base,
        "reduce": "single-process CooccurrenceCounter",
        "n_threads": 2,
        "nnz": int(graph.nnz),
        "wall_s": round(time.perf_counter() - t0, 2),
        "peak_rss_gib": round(peak_rss() / 2**30, 3),
        "checksum": hex(checksum(0, graph.indptr, graph.indices, graph.data)),
    }
    print(json.dumps(row), flush=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", required=True, help="shard files and Dask's spill directory (needs disk)")
    p.add_argument("--interactions", type=float, default=1e9)
    p.add_argument("--n-items", type=int, default=30_000)
    p.add_argument("--shards", type=int, default=0, help="default: one per 1e7 interactions (at least 8)")
    p.add_argument("--mean-length", type=float, default=20.0)
    p.add_argument("--zipf", type=float, default=0.8)
    p.add_argument("--window", type=int, default=5)
    p.add_argument("--max-history", type=int, default=200)
    p.add_argument("--memory-limit", default="4GiB", help="per worker")
    p.add_argument("--blocks", default="1,4,16,32,128", help="comma-separated; empty: no Dask runs")
    p.add_argument("--single", action="store_true", help="also time the single-process streaming counter")
    args = p.parse_args(argv)

    from dask.utils import parse_bytes

    limit = parse_bytes(args.memory_limit)
    n = int(args.interactions)
    shards = args.shards or max(8, round(n / 1e7))
    per_shard = n // shards
    opts = dict(window=args.window, max_history=args.max_history)
    work = Path(args.workdir)
    t0 = time.perf_counter()
    paths = write_shards(work / f"shards-{n}-{args.n_items}-{shards}", shards, per_shard, args)
    base = {
        "interactions": per_shard * shards,
        "n_items": args.n_items,
        "shards": shards,
        "memory_limit": limit,
        **opts,
    }
    print(json.dumps({**base, "shard_files_s": round(time.perf_counter() - t0, 1)}), flush=True)

    block_counts = [int(b) for b in args.blocks.split(",") if b.strip()]
    if block_counts:
        run_dask(paths, block_counts, limit, base, opts, args, work)
    if args.single:
        run_single(paths, base, opts, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
