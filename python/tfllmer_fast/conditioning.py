"""Conditioning diagnostic: the Hessian spectrum of a batch loss w.r.t. sequence representations.

TF-LLMER's argument is that LLM item embeddings make training ill-conditioned (item-norm
disparity, clusters that do not follow co-consumption). We measure it directly: for a batch
of sequence representations ``H`` (B x d) and the full-softmax cross-entropy of the scoring
path ``logits_i = <h, e_i> / tau`` (optionally with ``e_i`` and/or ``h`` L2-normalised), we
estimate the largest and smallest eigenvalues of the Hessian of the mean batch loss with
respect to ``H`` (flattened, dimension B*d) and its condition number.

Two ways to get the spectrum:

* :func:`hessian_spectrum` is model-agnostic: any scalar ``loss_fn(H)``; Hessian-vector
  products by double backward (the first backward graph is kept and reused, so one product
  costs one extra backward pass) and Lanczos (ARPACK ``eigsh``) on a ``LinearOperator``.
* :func:`exact_ce_hessian_blocks` uses the structure of the CE loss: each sample's loss only
  depends on its own ``h_b``, so the Hessian is block-diagonal with d x d blocks that we form
  densely; their eigenvalues are the whole spectrum. This is the oracle for the tests and the
  fast path of :func:`conditioning_report`.

Condition number (documented choice). The Hessian of softmax CE w.r.t. un-normalised ``h`` is
positive semi-definite and may have an exact null space (e.g. when the item table has rank
< d); with ``normalize_h`` it is in general *indefinite* (curvature of the normalisation
map). Dividing by an eigenvalue that is zero up to rounding is meaningless, so we report

* ``smallest``: the smallest algebraic eigenvalue(s) as they are (may be ~0 or negative), and
* ``smallest_above_threshold``: the smallest eigenvalue strictly above
  ``rel_threshold * lambda_max`` (default ``1e-6``), and define
  ``condition_number = lambda_max / smallest_above_threshold``: the conditioning of the loss
  on the subspace where it actually curves upwards.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from scipy.sparse.linalg import ArpackNoConvergence, LinearOperator, eigsh

__all__ = [
    "HessianSpectrum",
    "hessian_spectrum",
    "softmax_ce_loss_fn",
    "softmax_ce_representation_hessian",
    "exact_ce_hessian_blocks",
    "conditioning_report",
]

_METHODS = ("lanczos", "dense")


@dataclass(frozen=True)
class HessianSpectrum:
    """Extreme eigenvalues of a Hessian and the derived condition number.

    Attributes
    ----------
    largest : ndarray
        The ``k`` largest algebraic eigenvalues, descending (empty if not requested).
    smallest : ndarray
        The smallest algebraic eigenvalues, ascending (empty if not requested). With Lanczos
        this holds ``k + n_null_probe`` values when the first ``k`` were all null.
    smallest_above_threshold : float
        Smallest eigenvalue found that exceeds ``threshold``; NaN when none was found among
        the computed ones (a null space larger than the probe) or not requested.
    threshold : float
        ``rel_threshold * largest[0]``.
    condition_number : float
        ``largest[0] / smallest_above_threshold`` (NaN when either is unknown).
    n_hvp : int
        Hessian-vector products used (``dim`` for the dense method, 0 for exact blocks).
    method : str
        ``"lanczos"``, ``"dense"`` or ``"exact_blocks"``.
    dim : int
        Dimension of the Hessian (number of elements of ``H``).
    converged : bool
        False when ARPACK stopped before all requested eigenvalues converged (the values
        then come from the converged subset and may be missing).
    n_below_threshold, n_negative : int or None
        Counts over the whole spectrum, known only when it was computed in full.
    """

    largest: np.ndarray
    smallest: np.ndarray
    smallest_above_threshold: float
    threshold: float
    condition_number: float
    n_hvp: int
    method: str
    dim: int
    converged: bool = True
    n_below_threshold: int | None = None
    n_negative: int | None = None
    extra: dict = field(default_factory=dict, repr=False)

    @property
    def lambda_max(self) -> float:
        return float(self.largest[0]) if self.largest.size else float("nan")

    @property
    def lambda_min(self) -> float:
        return float(self.smallest[0]) if self.smallest.size else float("nan")


# ---------------------------------------------------------------------------------------------
# Model-agnostic path: Hessian-vector products + Lanczos
# ---------------------------------------------------------------------------------------------


class _HVP:
    """v -> (d^2 loss / dH^2) v by double backward, reusing the gradient graph."""

    def __init__(self, loss_fn: Callable[[torch.Tensor], torch.Tensor], H: torch.Tensor):
        self.H = H.detach().clone().requires_grad_(True)
        loss = loss_fn(self.H)
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
            raise ValueError("loss_fn(H) must return a scalar torch tensor")
        (self.grad,) = torch.autograd.grad(loss, self.H, create_graph=True)
        if not self.grad.requires_grad:
            # Loss is (at most) linear in H: the Hessian is zero.
            self.grad = None
        self.loss = float(loss.detach())
        self.count = 0

    def __call__(self, v: torch.Tensor) -> torch.Tensor:
        self.count += 1
        if self.grad is None:
            return torch.zeros_like(self.H)
        (hv,) = torch.autograd.grad(
            self.grad, self.H, grad_outputs=v, retain_graph=True, allow_unused=True
        )
        return torch.zeros_like(self.H) if hv is None else hv.detach()


def _summarise(largest, smallest, rel_threshold, smallest_above=None, **kw) -> HessianSpectrum:
    """Build the result; ``smallest_above`` given when known beyond ``smallest`` (full spectra)."""
    largest = np.sort(np.asarray(largest, dtype=np.float64))[::-1].copy()
    smallest = np.sort(np.asarray(smallest, dtype=np.float64))
    lam_max = largest[0] if largest.size else np.nan
    threshold = rel_threshold * lam_max if np.isfinite(lam_max) else np.nan
    if smallest_above is None:
        above = smallest[smallest > threshold] if np.isfinite(threshold) else smallest[:0]
        s_above = float(above[0]) if above.size else float("nan")
    else:
        s_above = float(smallest_above)
    cond = float(lam_max / s_above) if np.isfinite(s_above) and np.isfinite(lam_max) else np.nan
    return HessianSpectrum(
        largest=largest,
        smallest=smallest,
        smallest_above_threshold=s_above,
        threshold=float(threshold),
        condition_number=cond,
        **kw,
    )


def _arpack(op: LinearOperator, k: int, which: str, v0, tol: float, max_iter: int | None,
            ncv: int | None = None):
    dim = op.shape[0]
    # A wider Krylov basis than ARPACK's default (20) pays off: the B per-sample blocks give
    # near-degenerate clusters (measured: 30-50% fewer products at ncv=40..80).
    ncv = min(dim, max(2 * k + 1, 40)) if ncv is None else ncv
    try:
        vals = eigsh(op, k=k, which=which, v0=v0, tol=tol, maxiter=max_iter, ncv=ncv,
                     return_eigenvectors=False)
        return vals, True
    except ArpackNoConvergence as exc:  # keep what did converge, and say so
        return np.asarray(exc.eigenvalues), False


def hessian_spectrum(
    loss_fn: Callable[[torch.Tensor], torch.Tensor],
    H: torch.Tensor,
    *,
    k: int = 1,
    which: str = "both",
    method: str = "lanczos",
    tol: float | None = None,
    max_iter: int | None = None,
    seed: int = 0,
    rel_threshold: float = 1e-6,
    n_null_probe: int = 4,
    null_projector: Callable[[torch.Tensor], torch.Tensor] | None = None,
    max_dense_dim: int = 4096,
) -> HessianSpectrum:
    """Extreme eigenvalues of the Hessian of a scalar ``loss_fn(H)`` w.r.t. ``H`` (flattened).

    Parameters
    ----------
    loss_fn : callable
        ``loss_fn(H) -> scalar tensor``, twice differentiable by torch autograd. Everything it
        captures must live on ``H``'s device and dtype; products run in ``H.dtype`` (use
        float64 for eigenvalues far below ``lambda_max``: float32 products carry relative
        noise of about 1e-7 of ``lambda_max``).
    H : torch.Tensor
        Point at which the Hessian is taken (any shape; CPU or CUDA; float32/float64).
    k : int
        Number of eigenvalues wanted at each end.
    which : {"both", "largest", "smallest"}
        ``"smallest"`` still computes ``lambda_max`` (needed for the threshold).
    method : {"lanczos", "dense"}
        ``"lanczos"``: ARPACK ``eigsh`` (implicitly restarted Lanczos) on a LinearOperator of
        Hessian-vector products, largest algebraic (``"LA"``) and smallest algebraic (``"SA"``).
        ``"dense"``: build the full Hessian from ``dim`` products and call ``numpy.linalg.eigh``
        (reference for small problems, ``dim <= max_dense_dim``).
    tol : float, optional
        ARPACK relative tolerance of the eigenvalues; default 1e-6 for float64, 1e-4 for
        float32 (ample for a condition number; tighter costs many more products).
    max_iter : int, optional
        ARPACK restarts; default 1000.
    seed : int
        Seed of ARPACK's start vector (results are then deterministic).
    rel_threshold : float
        Eigenvalues ``<= rel_threshold * lambda_max`` count as null (see module docstring).
    n_null_probe : int
        When the ``k`` smallest eigenvalues are all below the threshold, Lanczos is rerun for
        ``k + n_null_probe`` of them, so that the first one above the threshold is found past a
        null space (or negative part) of up to ``n_null_probe`` dimensions. A larger
        known null space should be passed as ``null_projector`` instead.
    null_projector : callable, optional
        ``P(v)``: the orthogonal projection of ``v`` (shaped like ``H``) onto a subspace known
        to be in the Hessian's null space. The operator ``Hess + lambda_max * P`` is then used
        for the smallest end, which lifts those directions to ``lambda_max`` and leaves the
        rest of the spectrum unchanged; they are excluded from ``smallest``.
    max_dense_dim : int
        Guard for ``method="dense"``.

    Returns
    -------
    HessianSpectrum
    """
    if which not in ("both", "largest", "smallest"):
        raise ValueError(f"which must be 'both', 'largest' or 'smallest', got {which!r}")
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    if not isinstance(H, torch.Tensor):
        raise TypeError(f"H must be a torch.Tensor, got {type(H).__name__}")
    if H.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"H must be float32 or float64, got {H.dtype}")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")
    dim = H.numel()
    if dim < 2:
        raise ValueError("H must have at least 2 elements")

    hvp = _HVP(loss_fn, H)
    shape, dev, dt = H.shape, H.device, H.dtype

    def as_tensor(x: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.ascontiguousarray(x).reshape(shape), dtype=dt, device=dev)

    def as_numpy(t: torch.Tensor) -> np.ndarray:
        return t.detach().reshape(-1).to("cpu", torch.float64).numpy()

    if method == "dense":
        if dim > max_dense_dim:
            raise ValueError(f"method='dense' needs dim <= max_dense_dim ({dim} > {max_dense_dim})")
        eye = torch.eye(dim, dtype=dt, device=dev)
        M = np.stack([as_numpy(hvp(eye[i].reshape(shape))) for i in range(dim)], axis=1)
        vals = np.linalg.eigvalsh(0.5 * (M + M.T))
        kk = min(k, dim)
        thr = rel_threshold * vals[-1]
        above = vals[vals > thr]
        return _summarise(
            vals[-kk:] if which != "smallest" else vals[-1:],
            vals[:kk] if which != "largest" else [], rel_threshold,
            smallest_above=(above[0] if above.size else np.nan) if which != "largest" else np.nan,
            n_hvp=hvp.count, method="dense", dim=dim,
            n_below_threshold=int(np.sum(vals <= thr)), n_negative=int(np.sum(vals < 0)),
            extra={"loss": hvp.loss},
        )

    if tol is None:
        tol = 1e-6 if dt == torch.float64 else 1e-4
    if max_iter is None:
        max_iter = 1000
    rng = np.random.default_rng(seed)
    v0 = rng.standard_normal(dim)

    def mv(x):
        return as_numpy(hvp(as_tensor(x)))

    op = LinearOperator((dim, dim), matvec=mv, dtype=np.float64)
    k_large = min(k if which != "smallest" else 1, dim - 1)
    largest, ok_l = _arpack(op, k_large, "LA", v0, tol, max_iter)
    if largest.size == 0:
        raise RuntimeError("Lanczos found no converged largest eigenvalue; raise max_iter/tol")
    lam_max = float(np.max(largest))

    smallest, ok_s = np.empty(0), True
    if which != "largest":
        k_small = min(k + max(int(n_null_probe), 0), dim - 1)
        if null_projector is None:
            op_s = op
        else:
            shift = lam_max

            def mv_s(x):
                t = as_tensor(x)
                return as_numpy(hvp(t) + shift * null_projector(t))

            op_s = LinearOperator((dim, dim), matvec=mv_s, dtype=np.float64)
        # Ask for k first (resolving several values inside a near-degenerate cluster costs
        # many more products); look past a null space only when the k found are all null.
        k_first = min(k, dim - 1)
        smallest, ok_s = _arpack(op_s, k_first, "SA", v0, tol, max_iter)
        if k_small > k_first and not np.any(smallest > rel_threshold * lam_max):
            smallest, ok_s = _arpack(op_s, k_small, "SA", v0, tol, max_iter)

    spec = _summarise(
        largest, smallest, rel_threshold, n_hvp=hvp.count, method="lanczos", dim=dim,
        converged=bool(ok_l and ok_s), extra={"loss": hvp.loss},
    )
    if which != "largest" and not np.isfinite(spec.smallest_above_threshold):
        warnings.warn(
            f"all {spec.smallest.size} smallest eigenvalues found are <= {rel_threshold:g} *"
            " lambda_max (null or negative): the smallest one above the threshold is an interior"
            " eigenvalue Lanczos did not reach; condition_number is NaN. Raise n_null_probe, pass"
            " null_projector, or use the exact blocks for the CE loss",
            RuntimeWarning, stacklevel=2,
        )
    return spec


# ---------------------------------------------------------------------------------------------
# The CE scoring path of the recommenders
# ---------------------------------------------------------------------------------------------


def _to_tensor(x, name, dtype, device) -> torch.Tensor:
    t = torch.as_tensor(x)
    if t.is_complex() or not (t.is_floating_point()):
        raise TypeError(f"{name} must be a real float array/tensor, got dtype {t.dtype}")
    return t.detach().to(device=device, dtype=dtype)


def _prepare(E, H, targets, dtype, device):
    if device is None:
        device = H.device if isinstance(H, torch.Tensor) else torch.device("cpu")
    if dtype is None:
        dtype = H.dtype if isinstance(H, torch.Tensor) and H.is_floating_point() else torch.float64
    if dtype not in (torch.float32, torch.float64):
        raise TypeError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
    E = _to_tensor(E, "E", dtype, device)
    H = _to_tensor(H, "H", dtype, device)
    if E.ndim != 2 or H.ndim != 2:
        raise ValueError(f"E (n_items, d) and H (B, d) must be 2-D, got {tuple(E.shape)}, {tuple(H.shape)}")
    if E.shape[1] != H.shape[1]:
        raise ValueError(f"E and H must have the same dimension d, got {E.shape[1]} and {H.shape[1]}")
    if not (torch.isfinite(E).all() and torch.isfinite(H).all()):
        raise ValueError("E and H must be finite")
    t = torch.as_tensor(targets)
    if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
        raise TypeError(f"targets must be integer item ids, got dtype {t.dtype}")
    t = t.to(device=device, dtype=torch.long).reshape(-1)
    if t.numel() != H.shape[0]:
        raise ValueError(f"targets must have one id per row of H ({H.shape[0]}), got {t.numel()}")
    if t.numel() and (int(t.min()) < 0 or int(t.max()) >= E.shape[0]):
        raise ValueError(f"targets must be item ids in 0..{E.shape[0] - 1}")
    return E, H, t


def _check_tau(tau):
    if not np.isfinite(tau) or tau <= 0:
        raise ValueError(f"tau must be a positive finite number, got {tau!r}")
    return float(tau)


def _item_table(E: torch.Tensor, normalize_items: bool, eps: float) -> torch.Tensor:
    # Zero rows stay zero (as in the pipeline's normalisation): clamp the norm, not the row.
    if not normalize_items:
        return E
    return E / E.norm(dim=1, keepdim=True).clamp_min(eps)


def softmax_ce_loss_fn(
    E, targets, *, tau: float = 1.0, normalize_items: bool = False, normalize_h: bool = False,
    eps: float = 1e-12,
) -> Callable[[torch.Tensor], torch.Tensor]:
    """``loss_fn(H)``: mean over the batch of full-softmax CE of ``logits = h~ E~^T / tau``.

    ``E~`` is ``E`` or its L2-row-normalised copy (fixed: the Hessian is w.r.t. ``H`` only);
    ``h~`` is ``h`` or ``h / ||h||`` (inside the function, so it is differentiated).
    ``E`` and ``targets`` must already be tensors on the device/dtype ``H`` will have.
    """
    tau = _check_tau(tau)
    Et = _item_table(E, normalize_items, eps)

    def loss_fn(H: torch.Tensor) -> torch.Tensor:
        h = H / H.norm(dim=1, keepdim=True).clamp_min(eps) if normalize_h else H
        logits = (h @ Et.T) / tau
        return torch.nn.functional.cross_entropy(logits, targets)

    return loss_fn


def exact_ce_hessian_blocks(
    E, H, targets, *, tau: float = 1.0, normalize_items: bool = False,
    normalize_h: bool = False, eps: float = 1e-12, dtype: torch.dtype | None = torch.float64,
    device=None, chunk_size: int = 1024, curvature: str = "hessian",
) -> torch.Tensor:
    """The exact d x d diagonal blocks of the Hessian of the mean CE loss w.r.t. ``H``.

    Each sample's loss depends only on its own row ``h_b``, so the Hessian w.r.t. the
    flattened ``H`` (row-major, B*d) is block-diagonal. With ``p_b = softmax(E~ h~_b / tau)``,
    ``S_b = E~^T (diag(p_b) - p_b p_b^T) E~`` (the p-weighted covariance of the item vectors):

    * un-normalised ``h``: ``block_b = S_b / (B tau^2)`` (independent of ``targets``);
    * ``normalize_h`` (``u = h/r``, ``r = ||h||``, ``P = I - u u^T``, gradient w.r.t. ``u``
      ``g = E~^T (p_b - onehot(t_b)) / (B tau)``)::

        block_b = P S_b P / (B tau^2 r^2) - (g u^T + u g^T + (g.u) (I - 3 u u^T)) / r^2

    ``curvature="gauss_newton"`` drops the second term (the generalised Gauss-Newton matrix
    ``J^T S J``, positive semi-definite); it equals the Hessian when ``h`` is not normalised.

    Cost O(B n d^2) flops, memory O(chunk_size d^2 + B d^2).

    Returns
    -------
    torch.Tensor
        Shape (B, d, d), symmetric, on ``device`` (default: ``H``'s) in ``dtype``.
    """
    tau = _check_tau(tau)
    if curvature not in ("hessian", "gauss_newton"):
        raise ValueError(f"curvature must be 'hessian' or 'gauss_newton', got {curvature!r}")
    E, H, t = _prepare(E, H, targets, dtype, device)
    B, d = H.shape
    n = E.shape[0]
    Et = _item_table(E, normalize_items, eps)
    r = H.norm(dim=1, keepdim=True).clamp_min(eps)
    h = H / r if normalize_h else H
    P = torch.softmax((h @ Et.T) / tau, dim=1)  # (B, n)

    # Centre the items once (any centre c is exact since sum_i p_i = 1:
    # S = sum_i p_i (e_i - c)(e_i - c)^T - (m - c)(m - c)^T with m = E~^T p). With c the plain
    # mean, the subtraction loses far less precision when p is close to uniform.
    Ec = Et - Et.mean(dim=0, keepdim=True)
    S = torch.zeros(B, d * d, dtype=Et.dtype, device=Et.device)
    for s in range(0, n, chunk_size):
        Ech = Ec[s:s + chunk_size]
        outer = (Ech[:, :, None] * Ech[:, None, :]).reshape(Ech.shape[0], d * d)
        S.addmm_(P[:, s:s + chunk_size], outer)
    S = S.reshape(B, d, d)
    m = P @ Ec  # (B, d)
    S -= m[:, :, None] * m[:, None, :]
    S /= B * tau * tau

    if not normalize_h:
        return 0.5 * (S + S.transpose(1, 2))

    u = h
    eye = torch.eye(d, dtype=S.dtype, device=S.device).expand(B, d, d)
    Pu = eye - u[:, :, None] * u[:, None, :]
    onehot = torch.zeros_like(P)
    onehot[torch.arange(B, device=P.device), t] = 1.0
    g = (P - onehot) @ Et / (B * tau)  # (B, d): d loss / d u_b
    gu = (g * u).sum(dim=1)[:, None, None]
    r2 = (r * r)[:, :, None]
    block = (Pu @ S @ Pu) / r2
    if curvature == "gauss_newton":
        return 0.5 * (block + block.transpose(1, 2))
    block -= (g[:, :, None] * u[:, None, :] + u[:, :, None] * g[:, None, :]
              + gu * (eye - 3.0 * u[:, :, None] * u[:, None, :])) / r2
    return 0.5 * (block + block.transpose(1, 2))


def _spectrum_from_eigenvalues(vals: np.ndarray, k: int, rel_threshold: float) -> HessianSpectrum:
    """Summary of a full spectrum (all eigenvalues known)."""
    vals = np.sort(np.asarray(vals, dtype=np.float64).reshape(-1))
    kk = min(k, vals.size)
    thr = rel_threshold * vals[-1]
    above = vals[vals > thr]
    return _summarise(
        vals[-kk:], vals[:kk], rel_threshold, smallest_above=above[0] if above.size else np.nan,
        n_hvp=0, method="exact_blocks", dim=int(vals.size),
        n_below_threshold=int(np.sum(vals <= thr)), n_negative=int(np.sum(vals < 0)),
    )


def softmax_ce_representation_hessian(
    E, H, targets, *, tau: float = 1.0, normalize_items: bool = False,
    normalize_h: bool = False, method: str = "lanczos", k: int = 1,
    dtype: torch.dtype | None = torch.float64, device=None, eps: float = 1e-12,
    rel_threshold: float = 1e-6, deflate_null_items: bool = True, **lanczos_kwargs,
) -> HessianSpectrum:
    """Hessian spectrum of the full-softmax CE of the recommenders' scoring path w.r.t. ``H``.

    Parameters
    ----------
    E : array or tensor (n_items, d)
        Item embedding table (row i = item i).
    H : array or tensor (B, d)
        Sequence representations of a batch.
    targets : int array (B,)
        Next-item ids (0-based).
    tau, normalize_items, normalize_h
        The scoring path ``logits = <h~, e~_i> / tau`` (see :func:`softmax_ce_loss_fn`).
    method : {"lanczos", "dense", "exact"}
        ``"lanczos"``/``"dense"`` go through :func:`hessian_spectrum` with autograd products;
        ``"exact"`` takes every eigenvalue of :func:`exact_ce_hessian_blocks`.
    dtype : torch dtype or None
        Computation dtype (default float64; ``None`` keeps ``H``'s).
    deflate_null_items : bool
        Lanczos, un-normalised ``h`` only: when ``E~`` has rank r < d, the d - r directions of
        its null space are null directions of every block, i.e. a B(d - r)-dimensional null
        space of the Hessian; they are deflated with a ``null_projector`` (documented in
        :func:`hessian_spectrum`) so that the smallest non-null eigenvalue is still found.
    **lanczos_kwargs
        Passed to :func:`hessian_spectrum` (``tol``, ``max_iter``, ``seed``, ``n_null_probe``).
    """
    if method == "exact":
        blocks = exact_ce_hessian_blocks(
            E, H, targets, tau=tau, normalize_items=normalize_items, normalize_h=normalize_h,
            eps=eps, dtype=dtype, device=device)
        vals = torch.linalg.eigvalsh(blocks).to("cpu", torch.float64).numpy()
        return _spectrum_from_eigenvalues(vals, k, rel_threshold)
    if method not in _METHODS:
        raise ValueError(f"method must be 'lanczos', 'dense' or 'exact', got {method!r}")
    Et, Ht, t = _prepare(E, H, targets, dtype, device)
    loss_fn = softmax_ce_loss_fn(Et, t, tau=tau, normalize_items=normalize_items,
                                 normalize_h=normalize_h, eps=eps)
    projector = None
    if deflate_null_items and not normalize_h and method == "lanczos":
        En = _item_table(Et, normalize_items, eps)
        _, sv, Vh = torch.linalg.svd(En, full_matrices=True)
        rank = int((sv > sv.max() * max(En.shape) * torch.finfo(En.dtype).eps).sum()) if sv.numel() else 0
        if rank < En.shape[1]:
            N = Vh[rank:].T  # (d, d - r) orthonormal basis of null(E~)
            NNt = N @ N.T

            def projector(v: torch.Tensor) -> torch.Tensor:
                return v @ NNt

    return hessian_spectrum(loss_fn, Ht, k=k, method=method, rel_threshold=rel_threshold,
                            null_projector=projector, **lanczos_kwargs)


def conditioning_report(
    E, H, targets, tau: float = 1.0, normalize_items: bool = False, normalize_h: bool = False,
    *, method: str = "exact", dtype: torch.dtype | None = torch.float64, device=None,
    rel_threshold: float = 1e-6, eps: float = 1e-12, curvature: str = "hessian",
    **lanczos_kwargs,
) -> dict:
    """One row of conditioning figures for the study runner (plain floats and ints).

    ``method="exact"`` (default) takes all B*d eigenvalues from the exact Hessian blocks in
    float64 (about a second for n=12k items, d=64, B=256 on 2 CPU cores); ``"lanczos"`` uses
    autograd Hessian-vector products (model-agnostic path, slower). ``curvature=
    "gauss_newton"`` (exact method only) reports the PSD Gauss-Newton part instead of the
    Hessian: with ``normalize_h`` far from a minimum the Hessian is strongly indefinite (the
    normalisation's curvature times a large gradient) and its smallest positive eigenvalue
    says little; the Gauss-Newton matrix is the usual conditioning measure there.

    Keys: ``lambda_max``, ``lambda_min`` (smallest algebraic, may be ~0 or negative),
    ``lambda_min_above_threshold``, ``threshold``, ``condition_number`` (= lambda_max /
    lambda_min_above_threshold), ``n_below_threshold`` and ``n_negative`` (exact only, else
    None), ``median_block_condition_number`` (exact only: the per-sample d x d blocks'
    condition numbers, same threshold rule per block), ``loss``, ``item_norm_cv`` (coefficient
    of variation of the raw item norms), ``dim``, ``n_hvp``, ``method``, ``dtype``,
    ``seconds``, and the inputs ``tau``, ``normalize_items``, ``normalize_h``, ``batch_size``,
    ``n_items``, ``d``.
    """
    t0 = time.perf_counter()
    tau = _check_tau(tau)
    Et, Ht, t = _prepare(E, H, targets, dtype, device)
    loss = float(softmax_ce_loss_fn(Et, t, tau=tau, normalize_items=normalize_items,
                                    normalize_h=normalize_h, eps=eps)(Ht))
    norms = Et.norm(dim=1)
    item_norm_cv = float(norms.std(unbiased=False) / norms.mean()) if float(norms.mean()) > 0 else float("nan")
    median_block = None
    if method == "exact":
        blocks = exact_ce_hessian_blocks(Et, Ht, t, tau=tau, normalize_items=normalize_items,
                                         normalize_h=normalize_h, eps=eps, dtype=Et.dtype,
                                         curvature=curvature)
        vals_b = torch.linalg.eigvalsh(blocks).to("cpu", torch.float64).numpy()  # (B, d) ascending
        spec = _spectrum_from_eigenvalues(vals_b, 1, rel_threshold)
        bmax = vals_b[:, -1]
        bmin = np.where(vals_b > rel_threshold * bmax[:, None], vals_b, np.inf).min(axis=1)
        median_block = float(np.median(bmax / bmin))
    elif method in _METHODS:
        if curvature != "hessian":
            raise ValueError("curvature='gauss_newton' needs method='exact'")
        spec = softmax_ce_representation_hessian(
            Et, Ht, t, tau=tau, normalize_items=normalize_items, normalize_h=normalize_h,
            method=method, dtype=Et.dtype, eps=eps, rel_threshold=rel_threshold, **lanczos_kwargs)
    else:
        raise ValueError(f"method must be 'exact', 'lanczos' or 'dense', got {method!r}")
    return {
        "lambda_max": spec.lambda_max,
        "lambda_min": spec.lambda_min,
        "lambda_min_above_threshold": spec.smallest_above_threshold,
        "threshold": spec.threshold,
        "condition_number": spec.condition_number,
        "n_below_threshold": spec.n_below_threshold,
        "n_negative": spec.n_negative,
        "median_block_condition_number": median_block,
        "loss": loss,
        "item_norm_cv": item_norm_cv,
        "dim": spec.dim,
        "n_hvp": spec.n_hvp,
        "method": spec.method,
        "converged": spec.converged,
        "curvature": curvature,
        "dtype": str(Et.dtype).replace("torch.", ""),
        "seconds": time.perf_counter() - t0,
        "tau": tau,
        "normalize_items": bool(normalize_items),
        "normalize_h": bool(normalize_h),
        "batch_size": int(Ht.shape[0]),
        "n_items": int(Et.shape[0]),
        "d": int(Et.shape[1]),
    }
