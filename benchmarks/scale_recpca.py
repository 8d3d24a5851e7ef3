"""Rec-PCA at scale: wall time (median of rounds) and peak RSS, one process per method.

    python benchmarks/scale_recpca.py                      # (12k,384,64) and (200k,1024,64)
    python benchmarks/scale_recpca.py --case 1000000 1024 128 --rounds 1 --methods recpca_auto floor_xtx
    python benchmarks/scale_recpca.py --case 200000 1024 64 --methods recpca_auto floor_xtx graph_product_only

Data (float32 X, co-occurrence-like graph from bench_recpca.cooccurrence_like_graph) are
generated once into --workdir and loaded by every child; a child's peak memory is reported
as ru_maxrss minus its RSS right after loading, i.e. what the method itself added.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).parent))
import bench_recpca as B  # noqa: E402

METHODS = {
    "recpca_auto": B.recpca_auto,
    "numpy_gram_eigh": B.numpy_gram_eigh,
    "numpy_gram_blocked": B.numpy_gram_blocked,
    "scipy_eigsh_operator": B.scipy_eigsh_operator,
    "floor_xtx": B.floor_xtx,
    "graph_product_only": B.graph_product_only,
}


def data_paths(workdir: Path, n: int, D: int):
    return workdir / f"X_{n}_{D}.npy", workdir / f"A_{n}.npz"


def ensure_data(workdir: Path, n: int, D: int):
    xp, ap = data_paths(workdir, n, D)
    workdir.mkdir(parents=True, exist_ok=True)
    if not xp.exists() or not ap.exists():
        X, A = B.make_problem(n, D)
        np.save(xp, X)
        sp.save_npz(ap, A)
    return xp, ap


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def child(method: str, n: int, D: int, d: int, rounds: int, workdir: Path):
    xp, ap = data_paths(workdir, n, D)
    X = np.load(xp)
    A = sp.csr_array(sp.load_npz(ap))
    base = rss_mib()
    fn = METHODS[method]
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn(X, A, d)
        times.append(time.perf_counter() - t)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"method": method, "times": times, "base_mib": base, "peak_mib": peak}))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--case", nargs=3, type=int, action="append", metavar=("N", "D", "d"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--methods", nargs="+", default=["recpca_auto", "numpy_gram_eigh", "floor_xtx"])
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "tfllmer_scale_recpca")
    ap.add_argument("--child", nargs=5, metavar=("METHOD", "N", "D", "d", "ROUNDS"))
    args = ap.parse_args()
    if args.child:
        m, n, D, d, r = args.child
        child(m, int(n), int(D), int(d), int(r), args.workdir)
        return
    from threadpoolctl import threadpool_info

    import tfllmer_fast

    blas = [(i["internal_api"], i.get("architecture"), i["num_threads"]) for i in threadpool_info()]
    print(f"BLAS {blas}; OPENBLAS env: { {k: v for k, v in os.environ.items() if k.startswith('OPENBLAS')} }")
    print(f"tfllmer_fast {tfllmer_fast.build_info()}")
    cases = args.case or [(12_000, 384, 64), (200_000, 1024, 64)]
    for n, D, d in cases:
        ensure_data(args.workdir, n, D)
        A = sp.load_npz(data_paths(args.workdir, n, D)[1])
        print(f"\ncase n={n} D={D} d={d}: graph nnz={A.nnz} ({A.nnz / n:.1f} neighbours/item), lam={B.LAM}")
        results = {}
        for m in args.methods:
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--workdir",
                    str(args.workdir),
                    "--child",
                    m,
                    str(n),
                    str(D),
                    str(d),
                    str(args.rounds),
                ],
                capture_output=True,
                text=True,
            )
            if out.returncode != 0:
                print(f"  {m}: FAILED\n{out.stderr[-2000:]}")
                continue
            res = json.loads(out.stdout.strip().splitlines()[-1])
            results[m] = res
            med = statistics.median(res["times"])
            print(
                f"  {m:22s} median {med:8.2f} s  rounds {[round(t, 2) for t in res['times']]}  "
                f"peak +{res['peak_mib'] - res['base_mib']:.0f} MiB over the loaded data ({res['base_mib']:.0f} MiB)",
                flush=True,
            )
        if "recpca_auto" in results:
            ref = statistics.median(results["recpca_auto"]["times"])
            for m, res in results.items():
                if m != "recpca_auto":
                    print(f"  time {m} / recpca_auto = {statistics.median(res['times']) / ref:.2f}")


if __name__ == "__main__":
    main()
