"""The builds of the compiled core side by side: a source build (``-march=native``) against
each x86-64 level of the portable wheel, on the Rec-PCA Gram path and on co-occurrence.

Each build runs in its own child process (``TFLLMER_CORE_TARGET`` picks a level of a wheel);
rounds alternate over the builds, and the summary gives each build's median and its ratio to
the first one named. One thread by default: the vector width is what differs, and a single
thread is less disturbed by a shared machine.

    python benchmarks/portable_vs_native.py \\
        --build native=.venv/bin/python \\
        --build wheel-v4=WHEEL_VENV/bin/python:x86-64-v4 \\
        --build wheel-v3=WHEEL_VENV/bin/python:x86-64-v3 \\
        --build wheel-base=WHEEL_VENV/bin/python:x86-64

``WHEEL_VENV`` is a virtual environment with the portable wheel installed (see
``benchmarks/wheel_smoke.sh``). Prints one JSON line per measurement, then one summary line
per build.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

CHILD = r"""
import json, sys, time
import numpy as np
import scipy.sparse as sp
import tfllmer_fast as tf

n, D, d, users, inter, n_items, threads, reps = map(int, sys.argv[1:9])
rng = np.random.default_rng(0)
X = rng.standard_normal((n, D), dtype=np.float32) + np.linspace(1, 0, D, dtype=np.float32)
m = n * 14
r, c = rng.integers(0, n, m), rng.integers(0, n, m)
A = sp.csr_array((np.ones(m, np.float32), (r, c)), shape=(n, n))
A = sp.csr_array(A + A.T)
A.setdiag(0)
A.eliminate_zeros()
lengths = rng.geometric(users / inter, size=users)
offsets = np.r_[0, np.cumsum(lengths)].astype(np.int64)
p = 1.0 / np.arange(1, n_items + 1)
items = rng.choice(n_items, int(offsets[-1]), p=p / p.sum()).astype(np.int32)

def best(f):
    f()  # warm-up
    out = []
    for _ in range(reps):
        t = time.perf_counter()
        f()
        out.append(time.perf_counter() - t)
    return min(out)

res = {
    "target": tf.build_info()["target"],
    "recpca_gram_s": best(lambda: tf.RecPCA(d, lam=0.5, solver="gram", n_threads=threads).fit(X, A)),
    "cooccurrence_s": best(lambda: tf.cooccurrence(offsets, items, n_items=n_items, window=10, n_threads=threads)),
}
print(json.dumps(res))
"""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", action="append", required=True, help="NAME=PYTHON[:TARGET]")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--reps", type=int, default=2, help="timed repetitions per child (the best is kept)")
    ap.add_argument("--n", type=int, default=50_000, help="items of the Rec-PCA problem")
    ap.add_argument("--dim", type=int, default=768, help="embedding width D")
    ap.add_argument("--components", type=int, default=64)
    ap.add_argument("--users", type=int, default=500_000)
    ap.add_argument("--interactions", type=int, default=10_000_000)
    ap.add_argument("--n-items", type=int, default=100_000)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)

    builds = []
    for spec in args.build:
        name, _, rest = spec.partition("=")
        python, _, target = rest.partition(":")
        builds.append((name, python, target))
    sizes = [args.n, args.dim, args.components, args.users, args.interactions, args.n_items, args.threads, args.reps]
    times: dict[str, dict[str, list[float]]] = {b[0]: {"recpca_gram_s": [], "cooccurrence_s": []} for b in builds}
    loaded = {}
    for r in range(args.rounds):
        order = builds if r % 2 == 0 else builds[::-1]
        for name, python, target in order:
            env = dict(os.environ)
            env.pop("TFLLMER_CORE_TARGET", None)
            if target:
                env["TFLLMER_CORE_TARGET"] = target
            p = subprocess.run([python, "-c", CHILD, *map(str, sizes)], env=env, capture_output=True, text=True)
            if p.returncode != 0:
                print(p.stderr, file=sys.stderr)
                return 1
            res = json.loads(p.stdout.strip().splitlines()[-1])
            loaded[name] = res["target"]
            for k in times[name]:
                times[name][k].append(res[k])
            print(json.dumps({"round": r, "build": name, **res, "load1": os.getloadavg()[0]}), flush=True)
    base = builds[0][0]
    med = {name: {k: statistics.median(v) for k, v in t.items()} for name, t in times.items()}
    for name in med:
        row = {"build": name, "target": loaded[name], "threads": args.threads}
        for k, v in med[name].items():
            row[f"median_{k}"] = round(v, 4)
            row[f"ratio_to_{base}_{k.removesuffix('_s')}"] = round(v / med[base][k], 3)
        print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
