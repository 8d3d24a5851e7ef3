"""Rec-PCA: graph-regularised PCA of LLM item embeddings (DESIGN section 4).

With ``X_c = X - 1 mu^T`` (``X`` row-normalised by default, ``mu`` its column mean),
Rec-PCA keeps the ``d`` directions ``W`` that maximise

    tr(W^T X_c^T X_c W) - lam * tr(W^T X_c^T L X_c W) = tr(W^T M W),   M = X_c^T (I - lam L) X_c,

i.e. the top-``d`` eigenvectors of ``M`` by largest *algebraic* eigenvalue (``M`` is
indefinite once ``lam`` passes 1/2 with the normalised Laplacian). The work is done in C++
(``_core.recpca_fit``) on Spectra, Eigen and OpenMP, without the GIL.
"""

from __future__ import annotations

import numbers
import warnings

import numpy as np
import scipy.sparse as sp

from .. import _core
from .._validation import check_float_matrix, check_n_threads
from .laplacian import check_graph, check_kind, csr_parts, shifted_operator
from .normalization import checked_row_norms, inverse_norms, row_norms, warn_zero_rows

SOLVERS = ("auto", "gram", "matrix_free")

# Cost model of solver="auto" (see RecPCA). FLOPS_PER_BYTE: how many flops a core does in
# GEMM in the time it streams one byte from memory (about 100 GFLOP/s vs 10 GB/s here):
# it converts the memory-bound parts (graph gathers, matrix-vector products) into GEMM flops.
FLOPS_PER_BYTE = 10.0
# Expected operator applications of Spectra's restarted Lanczos, in units of ncv.
MATVECS_PER_NCV = 3.0
# M takes 8 D^2 bytes: above this the matrix-free path is used whatever the flops say.
GRAM_MAX_BYTES = 2 << 30


class NotFittedError(ValueError, AttributeError):
    """An estimator was used before ``fit`` (scikit-learn's convention: a ValueError and an
    AttributeError, so either ``except`` catches it)."""


class RecPCAConvergenceError(RuntimeError):
    """Spectra did not converge; the message says which knob to turn."""


def default_ncv(n_components: int, dim: int) -> int:
    """Spectra's Krylov subspace size: ``min(D, max(2 d + 1, d + 20))``."""
    return int(min(dim, max(2 * n_components + 1, n_components + 20)))


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


def use_dense_eig(n_components: int, dim: int, ncv: int) -> bool:
    """Dense eigendecomposition of M when Spectra cannot run or would not pay off."""
    return n_components >= dim or ncv > dim // 2


def gram_problem(
    Xa: np.ndarray, G: sp.csr_array, lam: float, laplacian_kind: str, normalize: bool, center: bool, n_threads: int
):
    """The kernels' description of M (see recpca.hpp): ``(t, s, wa, wm, c, zero_rows)`` with
    ``T' = diag(t) + lam diag(s) A diag(s)`` and the centring weights."""
    n = Xa.shape[0]
    t0, s0 = shifted_operator(G, laplacian_kind, lam)
    norms = checked_row_norms(Xa, "X", n_threads)  # also the NaN/Inf check of X
    if normalize:
        r = inverse_norms(norms)
        zero_rows = np.flatnonzero(norms == 0)
        warn_zero_rows(zero_rows, n)
    else:
        r = np.ones(n)
        zero_rows = np.zeros(0, dtype=np.int64)
    t, s = t0 * r * r, s0 * r
    if center:
        u = t0 + lam * s0 * (G @ s0)  # T 1, with T = I - lam L on the raw graph
        wa, wm, c = r * u, r / n, float(u.sum())
    else:
        wa = wm = None
        c = 0.0
    return t, s, wa, wm, c, zero_rows


class RecPCA:
    """Graph-regularised PCA of item embeddings (the TF-LLMER item initialisation).

    Parameters
    ----------
    n_components : int
        ``d``, the output dimension (``1 <= d <= D`` and ``d < n``).
    lam : float, default 0.5
        Weight ``lam >= 0`` of the graph smoothness term. ``0`` is plain PCA. With the
        normalised Laplacian ``I - lam L = (1 - lam) I + lam Â``; the default 0.5 gives
        ``(I + Â) / 2``, the lazy random-walk smoother: the strongest smoothing for which M
        stays positive semi-definite (a covariance of graph-filtered embeddings), weighing
        semantic and collaborative covariance equally. ``lam = 1`` keeps only the
        collaborative covariance ``X_c^T Â X_c``; past 1 plain variance is penalised.
        With ``laplacian="combinatorial"`` the scale of ``lam`` is that of the degrees:
        choose it about ``1 / max degree`` or smaller.
    laplacian : {"normalized", "combinatorial"}, default "normalized"
    normalize : bool, default True
        L2-normalise the rows of X first (on the fly: no normalised copy is made). Zero rows
        stay zero and are reported with a ``RuntimeWarning``.
    center : bool, default True
        Subtract the column mean of the (normalised) X. Implemented as a rank-2 correction
        of M, never by forming ``X_c``.
    solver : {"auto", "gram", "matrix_free"}, default "auto"
        ``gram`` forms M (D x D) in one blocked pass over X, then solves the small problem
        (Spectra, or a dense eigensolver when ``d`` is a large fraction of D).
        ``matrix_free`` runs Spectra on the operator ``v -> X_c^T (I - lam L) X_c v``,
        streaming X twice per product. ``auto`` compares :func:`solver_costs` and uses the
        matrix-free path when M would exceed 2 GiB.
    tol : float, default 1e-10
        Spectra's relative tolerance on the Ritz residuals.
    max_iter : int, default 1000
        Maximum number of Lanczos restarts.
    ncv : int or None, default None
        Krylov subspace size (``d < ncv <= D``); default :func:`default_ncv`.
    n_threads : int or None, default None
        OpenMP threads (None: all cores).
    random_state : int, Generator or None, default None
        Seed of the Lanczos start vector (None: Spectra's fixed default vector). Results are
        deterministic either way, and the sign of every component is fixed (its entry of
        largest magnitude is positive). The Gram path gives the same bits for any
        ``n_threads``; the matrix-free path sums per-thread partial products, so its results
        can differ in the last bits between thread counts.
    normalize_output : bool, default False
        L2-normalise the rows of the transformed embeddings Z.

    Attributes
    ----------
    components_ : ndarray (D, d), float64, orthonormal columns
    eigenvalues_ : ndarray (d,), descending eigenvalues of M (not divided by n). A warning
        is issued when some are <= 0 (lam too large for this d; see the README)
    mean_ : ndarray (D,), the column mean subtracted (zeros when ``center=False``)
    n_iter_ : int, Spectra restarts (0 for the dense eigensolver)
    n_matvec_ : int, operator applications (of M, or of the implicit operator)
    solver_ : str, the path that ran, ``"gram"`` or ``"matrix_free"``
    eigensolver_ : str, ``"spectra"`` or ``"dense"``
    n_features_in_ : int, D
    zero_rows_ : ndarray of int64, rows of the fitted X with zero norm

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((100, 16))
    >>> A = sp.random(100, 100, density=0.05, random_state=0); A = A + A.T
    >>> Z = RecPCA(4, lam=0.5).fit_transform(X, A)
    >>> Z.shape
    (100, 4)
    """

    def __init__(
        self,
        n_components: int,
        *,
        lam: float = 0.5,
        laplacian: str = "normalized",
        normalize: bool = True,
        center: bool = True,
        solver: str = "auto",
        tol: float = 1e-10,
        max_iter: int = 1000,
        ncv: int | None = None,
        n_threads: int | None = None,
        random_state=None,
        normalize_output: bool = False,
    ):
        self.n_components = n_components
        self.lam = lam
        self.laplacian = laplacian
        self.normalize = normalize
        self.center = center
        self.solver = solver
        self.tol = tol
        self.max_iter = max_iter
        self.ncv = ncv
        self.n_threads = n_threads
        self.random_state = random_state
        self.normalize_output = normalize_output

    def __repr__(self) -> str:
        return (
            f"RecPCA(n_components={self.n_components!r}, lam={self.lam!r}, "
            f"laplacian={self.laplacian!r}, solver={self.solver!r})"
        )

    # ------------------------------------------------------------------ checks
    def _check_params(self, n: int, dim: int) -> tuple[int, float, int]:
        d = self.n_components
        if isinstance(d, bool) or not isinstance(d, (int, np.integer)):
            raise TypeError(f"n_components must be an int, got {type(d).__name__}")
        if not 1 <= d <= dim:
            raise ValueError(f"n_components must lie in 1..D = 1..{dim}, got {d}")
        if d >= n:
            raise ValueError(f"n_components must be smaller than the number of items n = {n}, got {d}")
        lam = self.lam
        if isinstance(lam, bool) or not isinstance(lam, (int, float, np.integer, np.floating)) or not np.isfinite(lam):
            raise ValueError(f"lam must be a finite number, got {lam!r}")
        if lam < 0:
            raise ValueError(f"lam must be >= 0, got {lam}")
        check_kind(self.laplacian)
        if self.solver not in SOLVERS:
            raise ValueError(f"solver must be one of {SOLVERS}, got {self.solver!r}")
        if isinstance(self.tol, bool) or not (isinstance(self.tol, numbers.Real) and self.tol > 0):
            raise ValueError(f"tol must be a positive number, got {self.tol!r}")
        if isinstance(self.max_iter, bool) or not isinstance(self.max_iter, (int, np.integer)) or self.max_iter < 1:
            raise ValueError(f"max_iter must be a positive int, got {self.max_iter!r}")
        ncv = default_ncv(d, dim) if self.ncv is None else self.ncv
        if self.ncv is not None:
            if isinstance(ncv, bool) or not isinstance(ncv, (int, np.integer)) or not d < ncv <= dim:
                raise ValueError(f"ncv must be an int with n_components < ncv <= D ({d} < ncv <= {dim}), got {ncv!r}")
        return int(d), float(lam), int(ncv)

    def _pick_solver(self, n, dim, d, nnz, itemsize, ncv) -> tuple[str, bool]:
        costs = solver_costs(n, dim, d, nnz, itemsize, ncv)
        mf_possible = d < dim and ncv > d
        solver = self.solver
        if solver == "auto":
            if 8 * dim * dim > GRAM_MAX_BYTES and mf_possible:
                solver = "matrix_free"
            else:
                solver = "matrix_free" if mf_possible and costs["matrix_free"] < costs["gram"] else "gram"
        if solver == "matrix_free" and not mf_possible:
            raise ValueError(f"solver='matrix_free' needs n_components < D (got {d} of {dim}); use solver='gram'")
        return solver, (solver == "gram" and costs["dense_eig"])

    # --------------------------------------------------------------------- fit
    def fit(self, X, graph) -> RecPCA:
        """Fit on embeddings ``X`` (n x D) and the co-occurrence graph (n x n, item i = row i).

        ``graph=None`` is allowed with ``lam=0``: plain PCA (with this estimator's row
        normalisation, centring and sign rule).

        ``X`` may be float32 or float64, read-only or memory-mapped: it is read in place
        when C-contiguous (otherwise one contiguous copy is made).
        """
        Xa = check_float_matrix(X, "X", finite=False)
        if not Xa.flags.c_contiguous:
            Xa = np.ascontiguousarray(Xa)
        n, dim = Xa.shape
        d, lam, ncv = self._check_params(n, dim)
        n_threads = check_n_threads(self.n_threads)
        if graph is None:
            if lam != 0:
                raise ValueError(f"graph=None (no graph) needs lam=0, got lam={lam:g}")
            graph = sp.csr_array((n, n), dtype=np.float32)  # lam = 0 never reads it: plain PCA
        G = check_graph(graph, n, name="graph", n_threads=n_threads)

        t, s, wa, wm, c, zero_rows = gram_problem(Xa, G, lam, self.laplacian, self.normalize, self.center, n_threads)
        solver, dense = self._pick_solver(n, dim, d, G.nnz, Xa.itemsize, ncv)
        init = None
        if self.random_state is not None:
            init = np.random.default_rng(self.random_state).standard_normal(dim)
        res = _core.recpca_fit(
            Xa,
            *csr_parts(G),
            t,
            s,
            lam,
            wa,
            wm,
            c,
            d,
            ncv,
            int(self.max_iter),
            float(self.tol),
            init,
            solver,
            bool(dense),
            n_threads,
        )
        if not res["converged"]:
            raise RecPCAConvergenceError(
                f"RecPCA ({solver} solver) found only {res['nconv']} of {d} eigenvectors after "
                f"{res['n_iter']} restarts ({res['n_matvec']} operator products). Raise max_iter "
                f"(now {self.max_iter}), loosen tol (now {self.tol:g}) or enlarge ncv (now {ncv}; "
                f"n_components < ncv <= D = {dim}, larger converges in fewer restarts)."
            )
        return self._set_fitted(res, d, lam, zero_rows, solver, dense, dim)

    def _set_fitted(self, res: dict, d: int, lam: float, zero_rows, solver: str, dense: bool, dim: int) -> RecPCA:
        """Fitted attributes from an eigensolver result (also used by tfllmer_fast.dask)."""
        # Fitted attributes are set only now: a failed fit leaves the estimator as it was.
        self.zero_rows_ = zero_rows
        eig = np.asarray(res["eigenvalues"], dtype=np.float64)
        n_nonpos = int(np.count_nonzero(eig <= 1e-10 * max(abs(eig).max(), 1e-300)))
        if n_nonpos:
            warnings.warn(
                f"{n_nonpos} of the {d} selected eigenvalues of M are <= 0 (lam = {lam:g}): the graph "
                "penalty outweighs the variance in those directions, and eigenvalue-0 directions may "
                "be null directions of X (zero variance, Z ~ 0 there). Use a smaller lam or n_components.",
                RuntimeWarning,
                stacklevel=3,
            )
        W = np.asarray(res["eigenvectors"], dtype=np.float64)
        # Deterministic signs: the largest-magnitude entry of every component is positive.
        lead = W[np.argmax(np.abs(W), axis=0), np.arange(W.shape[1])]
        W *= np.where(lead < 0, -1.0, 1.0)
        self.components_ = W
        self.eigenvalues_ = eig
        self.mean_ = np.asarray(res["mean"], dtype=np.float64) if self.center else np.zeros(dim)
        self.n_iter_ = int(res["n_iter"])
        self.n_matvec_ = int(res["n_matvec"])
        self.solver_ = solver
        self.eigensolver_ = "dense" if (solver == "gram" and dense) else "spectra"
        self.n_features_in_ = dim
        return self

    # --------------------------------------------------------------- transform
    def transform(self, X) -> np.ndarray:
        """Project items (training or cold-start): normalise rows, centre, multiply by W.

        Returns an (n, d) array in X's precision. Zero rows (no text) map to ``-mean_ W``,
        the image of the zero vector, with a warning.
        """
        return self._transform(X, warn=True)

    def _transform(self, X, warn: bool) -> np.ndarray:
        if not hasattr(self, "components_"):
            raise NotFittedError("this RecPCA instance is not fitted yet; call fit(X, graph) first")
        Xa = check_float_matrix(X, "X", finite=False)
        if Xa.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {Xa.shape[1]} columns but RecPCA was fitted with D = {self.n_features_in_}")
        norms = checked_row_norms(Xa, "X", self.n_threads)  # also the NaN/Inf check of X
        W = self.components_.astype(Xa.dtype)
        # (r_i x_i - mu) W = r_i (x_i W) - mu W: no normalised copy of X.
        Z = Xa @ W
        if self.normalize:
            if warn:
                warn_zero_rows(np.flatnonzero(norms == 0), Xa.shape[0])
            Z *= inverse_norms(norms)[:, None].astype(Z.dtype)
        Z -= (self.mean_ @ self.components_).astype(Z.dtype)
        if self.normalize_output:
            Z *= inverse_norms(row_norms(Z))[:, None].astype(Z.dtype)
        return Z

    def fit_transform(self, X, graph) -> np.ndarray:
        """``fit(X, graph)`` then ``transform(X)``."""
        # fit() has already reported the zero rows of X.
        return self.fit(X, graph)._transform(X, warn=False)
