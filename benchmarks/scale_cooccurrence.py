"""Stream many synthetic interactions through CooccurrenceCounter; report throughput and peak RSS.

    python benchmarks/scale_cooccurrence.py                       # 1e9 interactions (minutes)
    python benchmarks/scale_cooccurrence.py --interactions 1e8    # a smaller run

Interactions are generated chunk by chunk (never stored): users with geometric lengths (mean
--mean-length), Zipf(--zipf) item popularity over --n-items permuted ids; counted with
window 5 and max_history 200 by default.

Why 10,000 items by default: the *output* must fit in memory, and with 1e9 interactions and a
window of 5 almost every pair of a small catalogue is seen. The counter stores the upper
triangle (12 bytes per pair), at most n_items^2 / 2 pairs: 0.6 GB for 10k items, twice that
while a chunk is merged; the final float32 graph (both triangles, int64 indices) takes 12
bytes per entry more. So peak RSS stays far below 8 GiB whatever the distribution. Larger
catalogues work the same way as long as the graph fits.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time

import numpy as np

from tfllmer_fast import CooccurrenceCounter


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # ru_maxrss is KiB on Linux


def current_rss_gib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**30


class ChunkGenerator:
    """Chunks of whole users, about `chunk` interactions each, `total` in all."""

    def __init__(self, total: int, chunk: int, n_items: int, mean_length: float, zipf: float, seed: int):
        self.total, self.chunk, self.n_items = total, chunk, n_items
        self.mean_length, self.zipf = mean_length, zipf
        self.rng = np.random.default_rng(seed)
        self.permutation = self.rng.permutation(n_items).astype(np.int32)
        self.done = 0

    def _ranks(self, size: int) -> np.ndarray:
        # Inverse CDF of the continuous power law on [1, n + 1): fast, close to discrete Zipf.
        u = self.rng.random(size)
        n1 = self.n_items + 1.0
        if abs(self.zipf - 1.0) < 1e-9:
            x = np.exp(u * np.log(n1))
        else:
            e = 1.0 - self.zipf
            x = (1.0 + u * (n1**e - 1.0)) ** (1.0 / e)
        ranks = x.astype(np.int64) - 1
        np.clip(ranks, 0, self.n_items - 1, out=ranks)
        return ranks

    def __iter__(self):
        while self.done < self.total:
            want = min(self.chunk, self.total - self.done)
            n_users = max(1, int(want / self.mean_length * 1.1) + 16)
            lengths = self.rng.geometric(1.0 / self.mean_length, size=n_users)
            ends = np.cumsum(lengths)
            n_users = int(np.searchsorted(ends, want)) + 1  # whole users, the last one cut to fit
            lengths = lengths[:n_users]
            lengths[-1] -= max(0, int(ends[n_users - 1]) - want)
            offsets = np.zeros(n_users + 1, dtype=np.int64)
            np.cumsum(lengths, out=offsets[1:])
            items = self.permutation[self._ranks(int(offsets[-1]))]
            self.done += int(offsets[-1])
            yield offsets, items


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--interactions", type=float, default=1e9)
    ap.add_argument("--chunk", type=float, default=1e7, help="interactions per update (whole users)")
    ap.add_argument("--n-items", type=int, default=10_000)
    ap.add_argument("--mean-length", type=float, default=50.0)
    ap.add_argument("--zipf", type=float, default=1.0)
    ap.add_argument("--window", type=int, default=5)
    ap.add_argument("--max-history", type=int, default=200)
    ap.add_argument("--weighting", default="count")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="write the figures to this file too")
    args = ap.parse_args(argv)

    total = int(args.interactions)
    gen = ChunkGenerator(total, int(args.chunk), args.n_items, args.mean_length, args.zipf, args.seed)
    counter = CooccurrenceCounter(
        args.n_items, window=args.window, weighting=args.weighting, max_history=args.max_history, n_threads=args.threads
    )
    t_start = time.perf_counter()
    t_count = t_gen = 0.0
    last_report = t_start
    it = iter(gen)
    while True:
        t0 = time.perf_counter()
        chunk = next(it, None)
        t_gen += time.perf_counter() - t0
        if chunk is None:
            break
        t0 = time.perf_counter()
        counter.update(*chunk)
        t_count += time.perf_counter() - t0
        del chunk
        if time.perf_counter() - last_report > 30:
            last_report = time.perf_counter()
            seen = counter.n_interactions_seen
            print(
                f"{seen:.3e} interactions, {seen / t_count:.3e}/s counting, nnz {counter.nnz:.3e}, "
                f"rss {current_rss_gib():.2f} GiB, peak {peak_rss_gib():.2f} GiB, "
                f"elapsed {last_report - t_start:.0f} s",
                flush=True,
            )
    t0 = time.perf_counter()
    graph = counter.result(min_count=1)
    t_result = time.perf_counter() - t0
    wall = time.perf_counter() - t_start
    seen = counter.n_interactions_seen
    report = dict(
        interactions=seen,
        n_items=args.n_items,
        window=args.window,
        max_history=args.max_history,
        weighting=args.weighting,
        chunk=int(args.chunk),
        threads=counter.n_threads,
        nnz=int(graph.nnz),
        count_s=round(t_count, 2),
        result_s=round(t_result, 2),
        generate_s=round(t_gen, 2),
        wall_s=round(wall, 2),
        interactions_per_s_counting=seen / (t_count + t_result),
        interactions_per_s_wall=seen / wall,
        peak_rss_gib=round(peak_rss_gib(), 3),
        cpu_count=os.cpu_count(),
        load_avg_1min_at_end=os.getloadavg()[0],
    )
    print(json.dumps(report, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
