"""A torch-free check of an installed tfllmer_fast (run by wheel_smoke.sh in a clean venv):
co-occurrence counts and Rec-PCA against numpy, for every build of the core the CPU runs.

    python benchmarks/wheel_check.py            # every installed build, each in a child
    python benchmarks/wheel_check.py --one      # the build the loader picks, in this process
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np


def dense_cooccurrence(offsets, items, n_items):
    """Oracle: for every user, every ordered pair of distinct positions adds 1 to (i, j)."""
    C = np.zeros((n_items, n_items))
    for u in range(len(offsets) - 1):
        seq = items[offsets[u] : offsets[u + 1]]
        for p in range(len(seq)):
            for q in range(len(seq)):
                if p != q and seq[p] != seq[q]:
                    C[seq[p], seq[q]] += 1
    return C


def check_one() -> dict:
    import tfllmer_fast as tf

    rng = np.random.default_rng(0)
    n_items, n_users = 60, 80
    lengths = np.r_[n_items, rng.integers(2, 9, n_users - 1)]  # user 0 has every item: no isolated one
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    items = np.r_[rng.permutation(n_items), rng.integers(0, n_items, offsets[-1] - n_items)].astype(np.int32)
    A = tf.cooccurrence(offsets, items, n_items=n_items)
    expected = dense_cooccurrence(offsets, items, n_items)
    assert np.array_equal(A.toarray(), expected), "co-occurrence differs from the dense count"

    # Rec-PCA (Gram path): top eigenpairs of Xc^T (I - lam L) Xc, L the normalised Laplacian
    # of A, Xc the centred L2-normalised rows; numpy's eigh of the dense matrix is the oracle.
    lam, d = 0.5, 5
    X = rng.standard_normal((n_items, 24)) * np.linspace(3, 0.5, 24) + 1.0
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    Xc = Xn - Xn.mean(axis=0)
    s = 1 / np.sqrt(expected.sum(axis=1))
    L = np.eye(n_items) - s[:, None] * expected * s[None, :]
    w, V = np.linalg.eigh(Xc.T @ (np.eye(n_items) - lam * L) @ Xc)
    w, V = w[::-1][:d], V[:, ::-1][:, :d]
    pca = tf.RecPCA(n_components=d, lam=lam, solver="gram").fit(X, A)
    assert np.allclose(pca.eigenvalues_, w, rtol=1e-9), (pca.eigenvalues_, w)
    # same subspace: the singular values of V^T W are the cosines of the principal angles
    cosines = np.linalg.svd(V.T @ pca.components_, compute_uv=False)
    assert np.allclose(cosines, 1, atol=1e-9), f"Rec-PCA directions differ from numpy's: {cosines}"
    assert "torch" not in sys.modules, "the torch-free path imported torch"
    info = tf.build_info()
    return {"target": info["target"], "simd": info["simd"], "openmp_library": info["openmp_library"], "ok": True}


def main() -> int:
    if "--one" in sys.argv:
        print(json.dumps(check_one()))
        return 0
    from tfllmer_fast import _cpu

    flags = _cpu.cpu_flags()
    targets = [t for t in _cpu.available_targets() if _cpu.runs_on(t, flags)]
    print(json.dumps({"installed": _cpu.available_targets(), "runs_here": targets}))
    for t in targets:
        env = {**os.environ, _cpu.ENV_VAR: t}
        out = subprocess.run([sys.executable, __file__, "--one"], env=env, capture_output=True, text=True)
        if out.returncode != 0:
            print(out.stderr, file=sys.stderr)
            return 1
        print(out.stdout.strip())
    print(json.dumps({"picked_by_default": json.loads(subprocess.check_output([sys.executable, __file__, "--one"]))}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
