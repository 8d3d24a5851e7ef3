"""Rec-PCA: graph-regularised PCA of LLM item embeddings (DESIGN section 4).

With ``X_c = X - 1 mu^T`` (``X`` row-normalised by default, ``mu`` its column mean),
Rec-PCA keeps the ``d`` directions ``W`` that maximise

    tr(W^T X_c^T X_c W) - lam * tr(W^T X_c^T L X_c W) = tr(W^T M W),   M = X_c^T (I - lam L) X_c,

i.e. the top-``d`` eigenvectors of ``M`` by largest *algebraic* eigenvalue (``M`` is
indefinite once ``lam`` passes 1/2 with the normalised Laplacian). The work is done in C++
(``_core.recpca_fit``) on Spectra, Eigen and OpenMP, without the GIL.

:class:`RecPCA` is a scikit-learn transformer (``get_params``/``set_params``, ``clone``,
``Pipeline``, ``GridSearchCV``, ``set_output``). The graph is a fit parameter whose rows
follow the rows of X, so scikit-learn's splitters slice it as they slice X; its columns are
named by ``item_ids`` (see :meth:`RecPCA.fit`).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils.validation import validate_data

from .. import _core
from .._validation import check_n_threads
from .checks import integer_array
from .normalization import checked_row_norms, inverse_norms, row_norms, warn_zero_rows
from .operators import check_graph, csr_parts
from .recpca_problem import (
    NotFittedError,
    RecPCAConvergenceError,
    check_params,
    convergence_error,
    default_ncv,
    gram_problem,
    pick_solver,
    rounding_floor,
    set_fitted,
    solver_costs,
)

__all__ = ["NotFittedError", "RecPCA", "RecPCAConvergenceError", "default_ncv", "solver_costs"]

_DTYPES = [np.float64, np.float32]


def graph_for_rows(graph, item_ids, n: int, lam: float, n_threads: int) -> sp.csr_array:
    """The checked n x n graph of the n rows of X, from what ``fit`` was given."""
    if graph is None:
        if lam != 0:
            raise ValueError(f"lam = {lam:g} needs a graph: fit(X, graph=A); without one (graph=None) lam must be 0")
        return check_graph(sp.csr_array((n, n), dtype=np.float32), n)  # lam = 0 never reads it: plain PCA
    if item_ids is not None:
        ids = integer_array(item_ids, "item_ids")
        if ids.size != n:
            raise ValueError(f"item_ids has {ids.size} entries but X has {n} rows (one id per row)")
        if sp.issparse(graph):
            graph = sp.csr_array(graph)
        elif not hasattr(graph, "shape"):
            graph = np.asarray(graph)
        if len(graph.shape) != 2:
            raise ValueError(f"graph must be 2-D, got shape {graph.shape}")
        rows, cols = graph.shape
        if ids.size and (ids.min() < 0 or ids.max() >= cols):
            raise ValueError(f"item_ids must lie in [0, {cols}) (the graph's columns), found {ids.min()}..{ids.max()}")
        if np.unique(ids).size != ids.size:
            raise ValueError("item_ids must be distinct (each row of X is one item)")
        if rows == cols:  # the whole catalogue's graph: the rows' items on both axes
            graph = graph[ids][:, ids]
        elif rows == n:  # rows already follow X (scikit-learn's splitters slice them with X)
            graph = graph[:, ids]
        else:
            raise ValueError(
                f"graph has shape {graph.shape}: with item_ids it is either square (the whole catalogue) "
                f"or has one row per row of X ({n})"
            )
    return check_graph(graph, n, name="graph", n_threads=n_threads)


def _validated(estimator, X, reset: bool) -> np.ndarray:
    """X through scikit-learn's checks (its n_features_in_ and feature names conventions),
    float32 or float64, read in place when it can be; NaN/Inf are found by the row norms."""
    if getattr(X, "ndim", 2) != 2:
        raise ValueError(f"X must be 2-D (n_items, dim), got shape {X.shape}: Reshape your data (one item: X[None, :])")
    order = "C" if reset else None  # the kernels of fit read rows; transform's product takes any layout
    return validate_data(estimator, X, reset=reset, dtype=_DTYPES, order=order, ensure_all_finite=False)


def _reject_graph_as_y(y, n: int) -> None:
    if sp.issparse(y) or (getattr(y, "ndim", 1) == 2 and getattr(y, "shape", None) == (n, n)):
        raise TypeError(
            "RecPCA.fit takes the graph as a keyword, fit(X, graph=A): its second positional argument "
            "is scikit-learn's y, which RecPCA ignores"
        )


class RecPCA(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Graph-regularised PCA of item embeddings (the TF-LLMER item initialisation).

    A scikit-learn transformer: it clones, sits in a ``Pipeline``, searches in
    ``GridSearchCV`` (the graph is a fit parameter, see :meth:`fit`) and returns pandas
    frames after ``set_output(transform="pandas")``.

    Parameters
    ----------
    n_components : int or None, default None
        ``d``, the output dimension (``1 <= d <= D`` and ``d < n``); None: ``min(D, n - 1)``.
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
        (Spectra, or a dense eigensolver when ``d`` is a large fraction of D or when X has
        no more rows than columns: M then has a null space that Lanczos cannot resolve).
        ``matrix_free`` runs Spectra on the operator ``v -> X_c^T (I - lam L) X_c v``,
        streaming X twice per product. ``auto`` compares :func:`solver_costs`, uses the
        Gram path when X has no more rows than columns, and the matrix-free path when M
        would exceed 2 GiB.
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
        is issued when some are <= 0 or at rounding level (lam too large for this d)
    mean_ : ndarray (D,), the column mean subtracted (zeros when ``center=False``)
    n_iter_ : int, Spectra restarts (0 for the dense eigensolver)
    n_matvec_ : int, operator applications (of M, or of the implicit operator)
    solver_ : str, the path that ran, ``"gram"`` or ``"matrix_free"``
    eigensolver_ : str, ``"spectra"`` or ``"dense"``
    n_features_in_ : int, D
    feature_names_in_ : ndarray of str, the column names of X when it had them (a DataFrame)
    zero_rows_ : ndarray of int64, rows of the fitted X with zero norm

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((100, 16))
    >>> A = sp.random(100, 100, density=0.05, random_state=0); A = A + A.T
    >>> Z = RecPCA(4, lam=0.5).fit_transform(X, graph=A)
    >>> Z.shape
    (100, 4)
    """

    def __init__(
        self,
        n_components: int | None = None,
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

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags

    @property
    def _n_features_out(self) -> int:
        """Output width, for ``get_feature_names_out`` (``recpca0``, ``recpca1``, ...)."""
        return self.components_.shape[1]

    # --------------------------------------------------------------------- fit
    def fit(self, X, y=None, *, graph=None, item_ids=None) -> RecPCA:
        """Fit on embeddings ``X`` (n x D) and the co-occurrence graph of its rows.

        Parameters
        ----------
        X : array-like (n, D), float32 or float64 (others are converted to float64)
            Read in place when C-contiguous, read-only and memory-mapped arrays included
            (otherwise one contiguous copy is made). A DataFrame's column names are kept
            (``feature_names_in_``).
        y : ignored
            scikit-learn's convention.
        graph : sparse or dense matrix, or None
            Symmetric, non-negative item-item weights. Without ``item_ids``: n x n, item i =
            row i of X. ``None`` only with ``lam=0``: plain PCA (with this estimator's row
            normalisation, centring and sign rule).
        item_ids : array of int (n,), optional
            The graph's column of every row of X. The graph is then either the whole
            catalogue's square graph (both axes sliced to these items) or has one row per row
            of X (only its columns are sliced). Cross-validation needs the latter: pass the
            catalogue's graph with ``item_ids=np.arange(n)`` to ``GridSearchCV.fit``, which
            slices fit parameters' rows as it slices X (the ids along), never their columns.
        """
        _reject_graph_as_y(y, getattr(X, "shape", (0,))[0])
        Xa = _validated(self, X, reset=True)
        n, dim = Xa.shape
        d, lam, ncv = check_params(self, n, dim)
        n_threads = check_n_threads(self.n_threads)
        G = graph_for_rows(graph, item_ids, n, lam, n_threads)
        prob = gram_problem(Xa, G, lam, self.laplacian, self.normalize, self.center, n_threads)
        solver, dense = pick_solver(self.solver, n, dim, d, G.nnz, Xa.itemsize, ncv, self.center)
        init = None
        if self.random_state is not None:
            init = np.random.default_rng(self.random_state).standard_normal(dim)
        res = _core.recpca_fit(
            Xa,
            *csr_parts(G),
            prob.t,
            prob.s,
            lam,
            prob.wa,
            prob.wm,
            prob.c,
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
            raise convergence_error(res, solver, d, ncv, n, dim, self.center, self)
        mean = np.asarray(res["mean"]) if self.center else np.zeros(dim)
        floor = rounding_floor(prob.sq_norms, prob.t_norm, mean, n, dim, Xa.dtype)
        return set_fitted(
            self, res, lam=lam, zero_rows=prob.zero_rows, solver=solver, dense=dense, n=n, dim=dim, floor=floor
        )

    # --------------------------------------------------------------- transform
    def transform(self, X) -> np.ndarray:
        """Project items (training or cold-start): normalise rows, centre, multiply by W.

        Returns an (n, d) array in X's precision (a DataFrame after
        ``set_output(transform="pandas")``). Zero rows (no text) map to ``-mean_ W``, the
        image of the zero vector, with a warning.
        """
        return self._transform(X, warn=True)

    def _transform(self, X, warn: bool) -> np.ndarray:
        if not hasattr(self, "components_"):
            raise NotFittedError("this RecPCA instance is not fitted yet; call fit(X, graph=A) first")
        Xa = _validated(self, X, reset=False)
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

    def fit_transform(self, X, y=None, *, graph=None, item_ids=None) -> np.ndarray:
        """``fit(X, graph=graph, item_ids=item_ids)`` then ``transform(X)``."""
        # fit() has already reported the zero rows of X.
        return self.fit(X, y, graph=graph, item_ids=item_ids)._transform(X, warn=False)
