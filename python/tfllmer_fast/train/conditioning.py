"""Conditioning diagnostic: the Hessian spectrum of a batch loss w.r.t. sequence representations.

TF-LLMER's argument is that LLM item embeddings make training ill-conditioned (item-norm
disparity, clusters that do not follow co-consumption). We measure it directly: for a batch
of sequence representations ``H`` (B x d) and the full-softmax cross-entropy of the scoring
path ``logits_i = <h, e_i> / temperature`` (optionally with ``e_i`` and/or ``h`` L2-normalised), we
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
< d); with ``normalize_hidden`` it is in general *indefinite* (curvature of the normalisation
map). Dividing by an eigenvalue that is zero up to rounding is meaningless, so we report

* ``smallest``: the smallest algebraic eigenvalue(s) as they are (may be ~0 or negative), and
* ``smallest_above_threshold``: the smallest eigenvalue strictly above
  ``rel_threshold * lambda_max`` (default ``1e-6``), and define
  ``condition_number = lambda_max / smallest_above_threshold``: the conditioning of the loss
  on the subspace where it actually curves upwards.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import torch

from .hessian import METHODS, HessianSpectrum, hessian_spectrum, spectrum_from_eigenvalues

__all__ = [
    "HessianSpectrum",
    "hessian_spectrum",
    "softmax_ce_loss_fn",
    "softmax_ce_representation_hessian",
    "exact_ce_hessian_blocks",
    "conditioning_report",
]


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


def _check_temperature(temperature):
    if not np.isfinite(temperature) or temperature <= 0:
        raise ValueError(f"temperature must be a positive finite number, got {temperature!r}")
    return float(temperature)


def _item_table(E: torch.Tensor, normalize_items: bool, eps: float) -> torch.Tensor:
    # Zero rows stay zero (as in the pipeline's normalisation): clamp the norm, not the row.
    if not normalize_items:
        return E
    return E / E.norm(dim=1, keepdim=True).clamp_min(eps)


def softmax_ce_loss_fn(
    E,
    targets,
    *,
    temperature: float = 1.0,
    normalize_items: bool = False,
    normalize_hidden: bool = False,
    eps: float = 1e-12,
) -> Callable[[torch.Tensor], torch.Tensor]:
    """``loss_fn(H)``: mean over the batch of full-softmax CE of ``logits = h~ E~^T / temperature``.

    ``E~`` is ``E`` or its L2-row-normalised copy (fixed: the Hessian is w.r.t. ``H`` only);
    ``h~`` is ``h`` or ``h / ||h||`` (inside the function, so it is differentiated).
    ``E`` and ``targets`` must already be tensors on the device/dtype ``H`` will have.
    """
    temperature = _check_temperature(temperature)
    Et = _item_table(E, normalize_items, eps)

    def loss_fn(H: torch.Tensor) -> torch.Tensor:
        h = H / H.norm(dim=1, keepdim=True).clamp_min(eps) if normalize_hidden else H
        logits = (h @ Et.T) / temperature
        return torch.nn.functional.cross_entropy(logits, targets)

    return loss_fn


def exact_ce_hessian_blocks(
    E,
    H,
    targets,
    *,
    temperature: float = 1.0,
    normalize_items: bool = False,
    normalize_hidden: bool = False,
    eps: float = 1e-12,
    dtype: torch.dtype | None = torch.float64,
    device=None,
    chunk_size: int = 1024,
    curvature: str = "hessian",
) -> torch.Tensor:
    """The exact d x d diagonal blocks of the Hessian of the mean CE loss w.r.t. ``H``.

    Each sample's loss depends only on its own row ``h_b``, so the Hessian w.r.t. the
    flattened ``H`` (row-major, B*d) is block-diagonal. With ``p_b = softmax(E~ h~_b / temperature)``,
    ``S_b = E~^T (diag(p_b) - p_b p_b^T) E~`` (the p-weighted covariance of the item vectors):

    * un-normalised ``h``: ``block_b = S_b / (B temperature^2)`` (independent of ``targets``);
    * ``normalize_hidden`` (``u = h/r``, ``r = ||h||``, ``P = I - u u^T``, gradient w.r.t. ``u``
      ``g = E~^T (p_b - onehot(t_b)) / (B temperature)``)::

        block_b = P S_b P / (B temperature^2 r^2) - (g u^T + u g^T + (g.u) (I - 3 u u^T)) / r^2

    ``curvature="gauss_newton"`` drops the second term (the generalised Gauss-Newton matrix
    ``J^T S J``, positive semi-definite); it equals the Hessian when ``h`` is not normalised.

    Cost O(B n d^2) flops, memory O(chunk_size d^2 + B d^2).

    Returns
    -------
    torch.Tensor
        Shape (B, d, d), symmetric, on ``device`` (default: ``H``'s) in ``dtype``.
    """
    temperature = _check_temperature(temperature)
    if curvature not in ("hessian", "gauss_newton"):
        raise ValueError(f"curvature must be 'hessian' or 'gauss_newton', got {curvature!r}")
    E, H, t = _prepare(E, H, targets, dtype, device)
    B, d = H.shape
    n = E.shape[0]
    Et = _item_table(E, normalize_items, eps)
    r = H.norm(dim=1, keepdim=True).clamp_min(eps)
    h = H / r if normalize_hidden else H
    P = torch.softmax((h @ Et.T) / temperature, dim=1)  # (B, n)

    # Centre the items once (any centre c is exact since sum_i p_i = 1:
    # S = sum_i p_i (e_i - c)(e_i - c)^T - (m - c)(m - c)^T with m = E~^T p). With c the plain
    # mean, the subtraction loses far less precision when p is close to uniform.
    Ec = Et - Et.mean(dim=0, keepdim=True)
    S = torch.zeros(B, d * d, dtype=Et.dtype, device=Et.device)
    for s in range(0, n, chunk_size):
        Ech = Ec[s : s + chunk_size]
        outer = (Ech[:, :, None] * Ech[:, None, :]).reshape(Ech.shape[0], d * d)
        S.addmm_(P[:, s : s + chunk_size], outer)
    S = S.reshape(B, d, d)
    m = P @ Ec  # (B, d)
    S -= m[:, :, None] * m[:, None, :]
    S /= B * temperature * temperature

    if not normalize_hidden:
        return 0.5 * (S + S.transpose(1, 2))

    u = h
    eye = torch.eye(d, dtype=S.dtype, device=S.device).expand(B, d, d)
    Pu = eye - u[:, :, None] * u[:, None, :]
    onehot = torch.zeros_like(P)
    onehot[torch.arange(B, device=P.device), t] = 1.0
    g = (P - onehot) @ Et / (B * temperature)  # (B, d): d loss / d u_b
    gu = (g * u).sum(dim=1)[:, None, None]
    r2 = (r * r)[:, :, None]
    block = (Pu @ S @ Pu) / r2
    if curvature == "gauss_newton":
        return 0.5 * (block + block.transpose(1, 2))
    block -= (
        g[:, :, None] * u[:, None, :] + u[:, :, None] * g[:, None, :] + gu * (eye - 3.0 * u[:, :, None] * u[:, None, :])
    ) / r2
    return 0.5 * (block + block.transpose(1, 2))


def softmax_ce_representation_hessian(
    E,
    H,
    targets,
    *,
    temperature: float = 1.0,
    normalize_items: bool = False,
    normalize_hidden: bool = False,
    method: str = "lanczos",
    k: int = 1,
    dtype: torch.dtype | None = torch.float64,
    device=None,
    eps: float = 1e-12,
    rel_threshold: float = 1e-6,
    deflate_null_items: bool = True,
    **lanczos_kwargs,
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
    temperature, normalize_items, normalize_hidden
        The scoring path ``logits = <h~, e~_i> / temperature`` (see :func:`softmax_ce_loss_fn`).
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
            E,
            H,
            targets,
            temperature=temperature,
            normalize_items=normalize_items,
            normalize_hidden=normalize_hidden,
            eps=eps,
            dtype=dtype,
            device=device,
        )
        vals = torch.linalg.eigvalsh(blocks).to("cpu", torch.float64).numpy()
        return spectrum_from_eigenvalues(vals, k, rel_threshold)
    if method not in METHODS:
        raise ValueError(f"method must be 'lanczos', 'dense' or 'exact', got {method!r}")
    Et, Ht, t = _prepare(E, H, targets, dtype, device)
    loss_fn = softmax_ce_loss_fn(
        Et, t, temperature=temperature, normalize_items=normalize_items, normalize_hidden=normalize_hidden, eps=eps
    )
    projector = None
    if deflate_null_items and not normalize_hidden and method == "lanczos":
        En = _item_table(Et, normalize_items, eps)
        _, sv, Vh = torch.linalg.svd(En, full_matrices=True)
        rank = int((sv > sv.max() * max(En.shape) * torch.finfo(En.dtype).eps).sum()) if sv.numel() else 0
        if rank < En.shape[1]:
            N = Vh[rank:].T  # (d, d - r) orthonormal basis of null(E~)
            NNt = N @ N.T

            def projector(v: torch.Tensor) -> torch.Tensor:
                return v @ NNt

    return hessian_spectrum(
        loss_fn, Ht, k=k, method=method, rel_threshold=rel_threshold, null_projector=projector, **lanczos_kwargs
    )


def conditioning_report(
    E,
    H,
    targets,
    temperature: float = 1.0,
    normalize_items: bool = False,
    normalize_hidden: bool = False,
    *,
    method: str = "exact",
    dtype: torch.dtype | None = torch.float64,
    device=None,
    rel_threshold: float = 1e-6,
    eps: float = 1e-12,
    curvature: str = "hessian",
    **lanczos_kwargs,
) -> dict:
    """One row of conditioning figures for the study runner (plain floats and ints).

    ``method="exact"`` (default) takes all B*d eigenvalues from the exact Hessian blocks in
    float64 (about a second for n=12k items, d=64, B=256 on 2 CPU cores); ``"lanczos"`` uses
    autograd Hessian-vector products (model-agnostic path, slower). ``curvature=
    "gauss_newton"`` (exact method only) reports the PSD Gauss-Newton part instead of the
    Hessian: with ``normalize_hidden`` far from a minimum the Hessian is strongly indefinite (the
    normalisation's curvature times a large gradient) and its smallest positive eigenvalue
    says little; the Gauss-Newton matrix is the usual conditioning measure there.

    Keys: ``lambda_max``, ``lambda_min`` (smallest algebraic, may be ~0 or negative),
    ``lambda_min_above_threshold``, ``threshold``, ``condition_number`` (= lambda_max /
    lambda_min_above_threshold), ``n_below_threshold`` and ``n_negative`` (exact only, else
    None), ``median_block_condition_number`` (exact only: the per-sample d x d blocks'
    condition numbers, same threshold rule per block), ``loss``, ``item_norm_cv`` (coefficient
    of variation of the raw item norms), ``dim``, ``n_hvp``, ``method``, ``dtype``,
    ``seconds``, and the inputs ``temperature``, ``normalize_items``, ``normalize_hidden``, ``batch_size``,
    ``n_items``, ``d``.
    """
    t0 = time.perf_counter()
    temperature = _check_temperature(temperature)
    Et, Ht, t = _prepare(E, H, targets, dtype, device)
    loss = float(
        softmax_ce_loss_fn(
            Et, t, temperature=temperature, normalize_items=normalize_items, normalize_hidden=normalize_hidden, eps=eps
        )(Ht)
    )
    norms = Et.norm(dim=1)
    item_norm_cv = float(norms.std(unbiased=False) / norms.mean()) if float(norms.mean()) > 0 else float("nan")
    median_block = None
    if method == "exact":
        blocks = exact_ce_hessian_blocks(
            Et,
            Ht,
            t,
            temperature=temperature,
            normalize_items=normalize_items,
            normalize_hidden=normalize_hidden,
            eps=eps,
            dtype=Et.dtype,
            curvature=curvature,
        )
        vals_b = torch.linalg.eigvalsh(blocks).to("cpu", torch.float64).numpy()  # (B, d) ascending
        spec = spectrum_from_eigenvalues(vals_b, 1, rel_threshold)
        bmax = vals_b[:, -1]
        bmin = np.where(vals_b > rel_threshold * bmax[:, None], vals_b, np.inf).min(axis=1)
        median_block = float(np.median(bmax / bmin))
    elif method in METHODS:
        if curvature != "hessian":
            raise ValueError("curvature='gauss_newton' needs method='exact'")
        spec = softmax_ce_representation_hessian(
            Et,
            Ht,
            t,
            temperature=temperature,
            normalize_items=normalize_items,
            normalize_hidden=normalize_hidden,
            method=method,
            dtype=Et.dtype,
            eps=eps,
            rel_threshold=rel_threshold,
            **lanczos_kwargs,
        )
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
        "temperature": temperature,
        "normalize_items": bool(normalize_items),
        "normalize_hidden": bool(normalize_hidden),
        "batch_size": int(Ht.shape[0]),
        "n_items": int(Et.shape[0]),
        "d": int(Et.shape[1]),
    }


def model_conditioning(model, batch: torch.Tensor) -> dict:
    """Conditioning of the CE w.r.t. the representations of ``batch`` (shifted ids; the last
    column is the target of each row) with the model's own item table and scoring (item
    normalisation, temperature, hidden normalisation); eval mode, no dropout. With
    ``normalize_hidden`` the Gauss-Newton figures are added (the Hessian is indefinite)."""
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        batch = batch.to(device)
        with torch.no_grad():
            H = model.next_hidden(batch[:, :-1]).float()
            E = model.item_emb.weight[1 : model.n_items + 1].float()
            targets = batch[:, -1] - 1
        kw = dict(
            temperature=model.temperature,
            normalize_items=model.normalize_items,
            normalize_hidden=model.normalize_hidden,
        )
        row = conditioning_report(E, H, targets, **kw)
        out = {
            k: row[k]
            for k in (
                "lambda_max",
                "lambda_min",
                "lambda_min_above_threshold",
                "condition_number",
                "median_block_condition_number",
                "n_negative",
                "loss",
                "item_norm_cv",
                "seconds",
            )
        }
        out["h_norm_mean"] = float(H.norm(dim=1).mean())
        if model.normalize_hidden:
            gn = conditioning_report(E, H, targets, curvature="gauss_newton", **kw)
            out["gauss_newton"] = {k: gn[k] for k in ("lambda_max", "lambda_min_above_threshold", "condition_number")}
        return out
    finally:
        model.train(was_training)
