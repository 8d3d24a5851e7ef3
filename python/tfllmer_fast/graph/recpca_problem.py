"""The Rec-PCA eigenproblem between the estimator and the kernels.

What :class:`~tfllmer_fast.graph.recpca.RecPCA` and :func:`tfllmer_fast.dask.recpca_fit`
share: the parameter checks, M's description for the kernels, the solver cost model and
choice, and turning a solved eigenproblem into a fitted estimator (the sign rule, the
warning on eigenvalues at or below 0, the fitted attributes).

Null spaces. ``M = X_c^T (I - lam L) X_c`` has rank at most ``rank(X_c) <= n - 1`` (centred),
so a catalogue of ``n <= D`` items leaves ``M`` a null space of dimension ``>= D - n + 1``.
Its eigenvalues are 0 only up to rounding (about ``1e-8 ||M||`` for float32 X): a dense
cluster of tiny, nearly equal values. While the top ``n_components`` eigenvalues are positive
nothing reaches it; once ``lam > 1`` makes the graph penalty outweigh the variance (the
normalised ``I - lam L`` is negative on most of the graph's spectrum) the top eigenvalues
*are* that cluster. Spectra's stopping rule is relative to each Ritz value
(``tol * max(|theta|, eps^(2/3))``), which a Ritz value at rounding level never meets, and
Lanczos cannot split a cluster that tight in any number of restarts. A dense
eigendecomposition has no such limit, so rank-deficient problems always go to it.
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import numpy as np
import scipy.sparse as sp
from sklearn.exceptions import NotFittedError as SklearnNotFittedError

from .._validation import check_int
from .normalization import checked_row_norms, inverse_norms, warn_zero_rows
from .operators import check_kind, shifted_operator

SOLVERS = ("auto", "gram", "matrix_free")

# Cost model of solver="auto" (see RecPCA). FLOPS_PER_BYTE: how many flops a core does in
# GEMM in the time it streams one byte from memory (about 100 GFLOP/s vs 10 GB/s here):
# it converts the memory-bound parts (graph gathers, matrix-vector products) into GEMM flops.
FLOPS_PER_BYTE = 10.0
# Expected operator applications of Spectra's restarted Lanczos, in units of ncv.
MATVECS_PER_NCV = 3.0
# M takes 8 D^2 bytes: above this the matrix-free path is used whatever the flops say.
GRAM_MAX_BYTES = 2 << 30


class NotFittedError(SklearnNotFittedError):
    """An estimator was used before ``fit``: scikit-learn's ``NotFittedError`` (a ValueError
    and an AttributeError, so either ``except`` catches it)."""


class RecPCAConvergenceError(RuntimeError, ArithmeticError):
    """Spectra did not converge; the message says why and which knob to turn. An
    ArithmeticError too, as numerical failures are (the command line reports those in one line)."""


def default_ncv(n_components: int, dim: int) -> int:
    """Spectra's Krylov subspace size: ``min(D, max(2 d + 1, d + 20))``."""
    return int(min(dim, max(2 * n_components + 1, n_components + 20)))


def rank_deficient(n: int, dim: int, center: bool) -> bool:
    """Whether ``X_c`` (n x D) has rank below D for any data: then M has a null space."""
    return n - int(bool(center)) < dim


def use_dense_eig(n_components: int, dim: int, ncv: int, deficient: bool = False) -> bool:
    """Dense eigendecomposition of M when Spectra cannot run, would not pay off, or cannot
    resolve M's null space (``deficient``, see the module docstring)."""
    return deficient or n_components >= dim or ncv > dim // 2


def solver_costs(n: int, dim: int, n_components: int, nnz: int, itemsize: int, ncv: int | None = None) -> dict:
    """Estimated cost (in GEMM-flop units) of each solver path; what ``solver="auto"`` compares.

    - gram: the lower triangle of ``X^T (T X)`` (``n D^2`` flops), the graph gathers
      (``nnz D`` elements read from scattered rows) and the eigensolver on the D x D matrix
      (dense ``9 D^3`` flops when ``ncv > D / 2``, else Spectra: ``3 ncv`` symmetric
      products, each streaming the ``8 D^2`` bytes of M);
    - matrix_free: ``3 ncv`` products, each streaming X twice plus the graph once.
    """
    ncv = default_ncv(n_components, dim) if ncv is None else ncv
    matvecs = MATVECS_PER_NCV * ncv
    dense_eig = use_dense_eig(n_components, dim, ncv)
    eig = 9.0 * dim**3 if dense_eig else matvecs * 8.0 * dim * dim * FLOPS_PER_BYTE
    gram = float(n) * dim * dim + float(nnz) * dim * itemsize * FLOPS_PER_BYTE + eig
    mf = matvecs * (2.0 * n * dim * itemsize + 12.0 * nnz + 24.0 * n) * FLOPS_PER_BYTE
    return {"gram": gram, "matrix_free": mf, "dense_eig": dense_eig}


def check_lam(lam) -> float:
    """The graph weight: a finite number >= 0 (not a bool), as a float."""
    if isinstance(lam, (bool, np.bool_)) or not isinstance(lam, (int, float, np.integer, np.floating)):
        raise ValueError(f"lam must be a finite number, got {lam!r}")
    if not np.isfinite(lam):
        raise ValueError(f"lam must be a finite number, got {lam!r}")
    if lam < 0:
        raise ValueError(f"lam must be >= 0, got {lam}")
    return float(lam)


def check_params(estimator, n: int, dim: int) -> tuple[int, float, int]:
    """``(n_components, lam, ncv)`` of a RecPCA checked against X's shape ``(n, D)``;
    ``n_components=None`` is ``min(D, n - 1)``."""
    d = estimator.n_components
    if d is None:
        if n < 2:
            raise ValueError(f"RecPCA needs at least 2 items (rows of X), got n_samples = {n}")
        d = min(dim, n - 1)
    d = check_int(d, "n_components", allow_none=True)
    if not 1 <= d <= dim:
        raise ValueError(f"n_components must lie in 1..D = 1..{dim} (n_features = {dim}), got {d}")
    if d >= n:
        raise ValueError(f"n_components must be smaller than the number of items (rows of X, n_samples = {n}), got {d}")
    lam = check_lam(estimator.lam)
    check_kind(estimator.laplacian)
    if estimator.solver not in SOLVERS:
        raise ValueError(f"solver must be one of {SOLVERS}, got {estimator.solver!r}")
    tol = estimator.tol
    if isinstance(tol, (bool, np.bool_)) or not isinstance(tol, (int, float, np.integer, np.floating)) or not tol > 0:
        raise ValueError(f"tol must be a positive number, got {tol!r}")
    check_int(estimator.max_iter, "max_iter", minimum=1)
    if estimator.ncv is None:
        return int(d), float(lam), default_ncv(d, dim)
    ncv = check_int(estimator.ncv, "ncv")
    if not d < ncv <= dim:
        raise ValueError(f"ncv must be an int with n_components < ncv <= D ({d} < ncv <= {dim}), got {ncv!r}")
    return int(d), float(lam), ncv


def pick_solver(
    solver: str, n: int, dim: int, d: int, nnz: int, itemsize: int, ncv: int, center: bool
) -> tuple[str, bool]:
    """``(solver path, dense eigensolver?)`` for ``solver`` in :data:`SOLVERS`."""
    costs = solver_costs(n, dim, d, nnz, itemsize, ncv)
    deficient = rank_deficient(n, dim, center)
    mf_possible = d < dim and ncv > d
    too_big = 8 * dim * dim > GRAM_MAX_BYTES
    if solver == "auto":
        if too_big and mf_possible:
            solver = "matrix_free"
        elif deficient:
            solver = "gram"  # only a dense eigensolver resolves M's null space
        else:
            solver = "matrix_free" if mf_possible and costs["matrix_free"] < costs["gram"] else "gram"
    if solver == "matrix_free" and not mf_possible:
        raise ValueError(f"solver='matrix_free' needs n_components < D (got {d} of {dim}); use solver='gram'")
    return solver, solver == "gram" and (costs["dense_eig"] or deficient)


class GramProblem(NamedTuple):
    """M for the kernels (see recpca.hpp): ``T' = diag(t) + lam diag(s) A diag(s)``, the
    centring weights ``wa, wm, c``, the zero rows, and the scale of M's rounding errors
    (``sq_norms``: the sum of squared row norms of the normalised X; ``t_norm``: a bound on
    ``||I - lam L||_2``)."""

    t: np.ndarray
    s: np.ndarray
    wa: np.ndarray | None
    wm: np.ndarray | None
    c: float
    zero_rows: np.ndarray
    sq_norms: float
    t_norm: float


def operator_norm_bound(kind: str, lam: float, max_degree: float) -> float:
    """A bound on ``||I - lam L||_2``: L's spectrum lies in [0, 2] (normalised) or in
    [0, 2 max degree] (combinatorial)."""
    top = 2.0 if kind == "normalized" else 2.0 * float(max_degree)
    return max(1.0, lam * top - 1.0)


def row_scaling(norms: np.ndarray, normalize: bool) -> tuple[np.ndarray, np.ndarray]:
    """The factor of every row of X (``1 / ||x_i||`` with ``normalize``, zero rows staying
    zero and reported; else 1) and the zero rows."""
    n = norms.shape[0]
    if not normalize:
        return np.ones(n), np.zeros(0, dtype=np.int64)
    zero_rows = np.flatnonzero(norms == 0)
    warn_zero_rows(zero_rows, n)
    return inverse_norms(norms), zero_rows


def gram_problem(
    Xa: np.ndarray, G: sp.csr_array, lam: float, laplacian_kind: str, normalize: bool, center: bool, n_threads: int
) -> GramProblem:
    """The kernels' description of M for a checked X and graph (one pass over X)."""
    n = Xa.shape[0]
    t0, s0 = shifted_operator(G, laplacian_kind, lam)
    norms = checked_row_norms(Xa, "X", n_threads)  # also the NaN/Inf check of X
    r, zero_rows = row_scaling(norms, normalize)
    t, s = t0 * r * r, s0 * r
    if center:
        u = t0 + lam * s0 * (G @ s0)  # T 1, with T = I - lam L on the raw graph
        wa, wm, c = r * u, r / n, float(u.sum())
    else:
        wa = wm = None
        c = 0.0
    max_degree = (1.0 - t0.min()) / lam if (laplacian_kind == "combinatorial" and lam > 0 and n) else 0.0
    sq = float(np.sum((norms * r) ** 2))
    return GramProblem(t, s, wa, wm, c, zero_rows, sq, operator_norm_bound(laplacian_kind, lam, max_degree))


def rounding_floor(sq_norms: float, t_norm: float, mean: np.ndarray, n: int, dim: int, dtype) -> float:
    """Eigenvalues of M at or below this are 0 up to rounding: ``sqrt(D) eps`` times the bound
    ``||X_c||_F^2 ||I - lam L||_2`` on ``||M||_2`` (eps of X's precision)."""
    total = max(sq_norms - n * float(np.dot(mean, mean)), 0.0)
    return float(np.sqrt(dim) * np.finfo(np.dtype(dtype)).eps * total * t_norm)


def convergence_error(res: dict, solver: str, d: int, ncv: int, n: int, dim: int, center: bool, est) -> Exception:
    """The error for a Spectra run that did not converge, naming the likely cause."""
    head = (
        f"RecPCA ({solver} solver) found only {res['nconv']} of {d} eigenvectors after "
        f"{res['n_iter']} restarts ({res['n_matvec']} operator products)"
    )
    if rank_deficient(n, dim, center):
        return RecPCAConvergenceError(
            f"{head}: with n = {n} items for D = {dim} dimensions M has a null space, whose eigenvalues "
            "(0 up to rounding) Lanczos cannot resolve; use solver='gram' (it solves such problems densely)"
        )
    return RecPCAConvergenceError(
        f"{head}. Raise max_iter (now {est.max_iter}), loosen tol (now {est.tol:g}) or enlarge ncv (now {ncv}; "
        f"n_components < ncv <= D = {dim}, larger converges in fewer restarts); or pass solver='gram', ncv={dim} "
        "for the dense eigensolver, which does not iterate (X of rank below D, e.g. duplicate rows, gives M a null "
        "space that Lanczos cannot resolve)."
    )


def set_fitted(
    estimator,
    res: dict,
    *,
    lam: float,
    zero_rows: np.ndarray,
    solver: str,
    dense: bool,
    n: int,
    dim: int,
    floor: float,
):
    """Installs a solved eigenproblem (``res``: eigenvalues, eigenvectors, mean, n_iter,
    n_matvec) as the fitted state of ``estimator`` and returns it. Fitted attributes are set
    only here: a failed fit leaves the estimator as it was."""
    eig = np.asarray(res["eigenvalues"], dtype=np.float64)
    d = eig.size
    n_low = int(np.count_nonzero(eig <= max(floor, 1e-10 * np.abs(eig).max(initial=0.0), 1e-300)))
    if n_low:
        why = "the graph penalty outweighs the variance in those directions"
        if rank_deficient(n, dim, estimator.center):
            rank = n - int(bool(estimator.center))
            why += (
                f"; with n = {n} items for D = {dim} dimensions M has rank <= {rank} and its other eigenvalues are 0: "
                "those components are directions in which X does not vary (Z is 0 there for these items)"
            )
        else:
            why += "; eigenvalue-0 directions may be null directions of X (zero variance, Z ~ 0 there)"
        way = "a smaller lam" + (f" or n_components <= {d - n_low}" if d > n_low else "")
        warnings.warn(
            f"{n_low} of the {d} selected eigenvalues of M are <= 0 or at rounding level (lam = {lam:g}): {why}. "
            f"Use {way}.",
            RuntimeWarning,
            stacklevel=3,
        )
    W = np.asarray(res["eigenvectors"], dtype=np.float64)
    # Deterministic signs: the largest-magnitude entry of every component is positive.
    lead = W[np.argmax(np.abs(W), axis=0), np.arange(W.shape[1])]
    W *= np.where(lead < 0, -1.0, 1.0)
    estimator.zero_rows_ = zero_rows
    estimator.components_ = W
    estimator.eigenvalues_ = eig
    estimator.mean_ = np.asarray(res["mean"], dtype=np.float64) if estimator.center else np.zeros(dim)
    estimator.n_iter_ = int(res["n_iter"])
    estimator.n_matvec_ = int(res["n_matvec"])
    estimator.solver_ = solver
    estimator.eigensolver_ = "dense" if (solver == "gram" and dense) else "spectra"
    estimator.n_features_in_ = dim
    return estimator
