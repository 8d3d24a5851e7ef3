"""Rec-PCA vs the best numpy/scipy composition of the same math, and vs numpy's X.T @ X.

Default sizes are tiny (CI runs each body once); TFLLMER_BENCH_FULL=1 selects the reference
sizes. Timings: ``python -m pytest benchmarks/bench_recpca.py --benchmark-enable``.
Peak memory and the largest case: ``python benchmarks/scale_recpca.py``.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
import scipy.linalg
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from tfllmer_fast import RecPCA
from tfllmer_fast.graph.operators import degrees, inv_sqrt_degrees

FULL = os.environ.get("TFLLMER_BENCH_FULL") == "1"
CASES = [(12_000, 384, 64), (200_000, 1024, 64)] if FULL else [(2_000, 96, 8)]
LAM = 0.5
AVG_NEIGHBOURS = 28


def cooccurrence_like_graph(n: int, avg_neighbours: int = AVG_NEIGHBOURS, seed: int = 0) -> sp.csr_array:
    """Symmetric count graph with power-law degrees and no diagonal (Chung-Lu style).

    ``n * avg_neighbours / 2`` edge draws whose endpoints are chosen with probability
    proportional to ``rank^-0.8`` (the top 10% of items hold ~60% of the edge ends, like
    popular items in co-occurrence graphs); item ids are shuffled so popular items are
    scattered over X, as with real ids. Weights are the draw counts (float32).
    """
    rng = np.random.default_rng(seed)
    p = np.arange(1, n + 1, dtype=np.float64) ** -0.8
    p /= p.sum()
    m = n * avg_neighbours // 2
    perm = rng.permutation(n)
    r = perm[rng.choice(n, m, p=p)]
    c = perm[rng.choice(n, m, p=p)]
    A = sp.csr_array((np.ones(m, np.float32), (r, c)), shape=(n, n))
    A = sp.csr_array(A + A.T)
    A.setdiag(0)
    A.eliminate_zeros()
    A.sum_duplicates()
    return A


def make_problem(n: int, D: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, D), dtype=np.float32)
    X += np.linspace(1, 0, D, dtype=np.float32)  # a non-zero mean, like LLM embeddings
    return X, cooccurrence_like_graph(n, seed=seed)


def recpca_auto(X, A, d, lam=LAM):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        m = RecPCA(d, lam=lam).fit(X, graph=A)
    return m.components_, m.eigenvalues_


def _numpy_prologue(X, A, lam):
    """Normalise, centre and apply I - lam L with scipy (the same math, in numpy).
    One n x D copy: normalised and centred in place."""
    Xc = X / np.linalg.norm(X, axis=1, keepdims=True)
    Xc -= Xc.mean(axis=0)
    s = inv_sqrt_degrees(degrees(A))
    Ahat = sp.csr_array(sp.diags_array(s.astype(X.dtype)) @ A @ sp.diags_array(s.astype(X.dtype)))
    return Xc, Ahat


def numpy_gram_eigh(X, A, d, lam=LAM):
    """scipy sparse product + numpy GEMM + scipy.linalg.eigh(subset_by_index)."""
    Xc, Ahat = _numpy_prologue(X, A, lam)
    Y = (1 - lam) * Xc + lam * (Ahat @ Xc)
    M = Xc.T @ Y
    M = (M + M.T) / 2
    D = M.shape[0]
    w, V = scipy.linalg.eigh(M.astype(np.float64), subset_by_index=[D - d, D - 1])
    return V[:, ::-1], w[::-1]


def numpy_gram_blocked(X, A, d, lam=LAM, block_rows=16_384):
    """numpy_gram_eigh by row blocks: Y is never formed for all n rows (the memory-frugal
    composition, for the 1M case where the one-shot version needs ~4 extra copies of X)."""
    Xc, Ahat = _numpy_prologue(X, A, lam)
    D = Xc.shape[1]
    M = np.zeros((D, D))
    for r0 in range(0, Xc.shape[0], block_rows):
        XR = Xc[r0 : r0 + block_rows]
        YR = (1 - lam) * XR + lam * (Ahat[r0 : r0 + block_rows] @ Xc)
        M += XR.T @ YR
    M = (M + M.T) / 2
    w, V = scipy.linalg.eigh(M, subset_by_index=[D - d, D - 1])
    return V[:, ::-1], w[::-1]


def scipy_eigsh_operator(X, A, d, lam=LAM, tol=1e-10):
    """scipy.sparse.linalg.eigsh (ARPACK) on a LinearOperator v -> X_c^T (I - lam L) X_c v."""
    Xc, Ahat = _numpy_prologue(X, A, lam)
    Xc = Xc.astype(np.float64)  # ARPACK works in the operator's dtype; keep it double
    D = Xc.shape[1]

    def matvec(v):
        z = Xc @ v
        return Xc.T @ ((1 - lam) * z + lam * (Ahat @ z))

    op = spla.LinearOperator((D, D), matvec=matvec, dtype=np.float64)
    w, V = spla.eigsh(op, k=d, which="LA", tol=tol)
    order = np.argsort(w)[::-1]
    return V[:, order], w[order]


def floor_xtx(X, A, d, lam=LAM):
    """numpy's X.T @ X: the single Gram product any exact method must at least match."""
    return X.T @ X, None


def graph_product_only(X, A, d, lam=LAM):
    """Only the sparse part of the Gram pass, (I - lam L) X on the raw rows, with the same
    OpenMP kernel, as a separate pass (it also writes an n x D output, which the fused Gram
    pass does not): what the graph product costs on its own. It is memory-bound: every
    edge reads a whole D-wide row of X."""
    from tfllmer_fast import _core
    from tfllmer_fast.graph.operators import csr_parts

    s = inv_sqrt_degrees(degrees(A))
    return _core.shifted_graph_matmat(X, *csr_parts(A), np.full(X.shape[0], 1 - lam), s, lam, os.cpu_count() or 1), None


def ids(case):
    return "n{}-D{}-d{}".format(*case)


@pytest.fixture(scope="module", params=CASES, ids=ids)
def problem(request):
    n, D, d = request.param
    X, A = make_problem(n, D)
    return X, A, d


@pytest.mark.parametrize(
    "method", [recpca_auto, numpy_gram_eigh, numpy_gram_blocked, floor_xtx], ids=lambda f: f.__name__
)
def test_recpca_vs_numpy(benchmark, problem, method):
    X, A, d = problem
    benchmark.group = f"recpca n={X.shape[0]} D={X.shape[1]} d={d}"
    W, w = benchmark(method, X, A, d)
    if method in (numpy_gram_eigh, numpy_gram_blocked):
        Wr, wr = recpca_auto(X, A, d)
        assert np.max(scipy.linalg.subspace_angles(W, Wr)) < 1e-2
        np.testing.assert_allclose(w, wr, rtol=1e-3, atol=1e-3 * abs(wr).max())


def test_scipy_eigsh_operator(benchmark, problem):
    X, A, d = problem
    if X.shape[0] > 50_000:
        pytest.skip("ARPACK on the implicit operator takes over a minute at 200k (71 s; see scale_recpca.py)")
    benchmark.group = f"recpca n={X.shape[0]} D={X.shape[1]} d={d}"
    W, w = benchmark.pedantic(scipy_eigsh_operator, args=(X, A, d), rounds=1, iterations=1)
    Wr, wr = recpca_auto(X, A, d)
    np.testing.assert_allclose(w, wr, rtol=1e-3, atol=1e-3 * abs(wr).max())


def test_graph_product_only(benchmark, problem):
    """The memory-bound sparse part alone, checked against scipy's (I - lam L) X."""
    X, A, d = problem
    benchmark.group = f"recpca n={X.shape[0]} D={X.shape[1]} d={d}"
    Y, _ = benchmark(graph_product_only, X, A, d)
    s = inv_sqrt_degrees(degrees(A))
    Ahat = sp.diags_array(s) @ A @ sp.diags_array(s)
    expected = (1 - LAM) * X.astype(np.float64) + LAM * (Ahat @ X.astype(np.float64))
    np.testing.assert_allclose(Y, expected, rtol=1e-4, atol=1e-4 * abs(expected).max())
