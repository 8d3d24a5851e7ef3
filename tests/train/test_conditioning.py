"""Conditioning diagnostic: Lanczos vs exact blocks vs torch.autograd.functional.hessian."""

import numpy as np
import pytest
import torch

from tfllmer_fast.train.conditioning import (
    conditioning_report,
    exact_ce_hessian_blocks,
    hessian_spectrum,
    softmax_ce_loss_fn,
    softmax_ce_representation_hessian,
)


def _problem(n=40, d=6, B=4, seed=0, lognormal=1.0, h_scale=1.0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    E = torch.randn(n, d, generator=g, dtype=dtype)
    E = E * torch.exp(lognormal * torch.randn(n, 1, generator=g, dtype=dtype))
    H = h_scale * torch.randn(B, d, generator=g, dtype=dtype)
    t = torch.randint(0, n, (B,), generator=g)
    return E, H, t


def _autograd_hessian(E, H, t, **kw):
    f = softmax_ce_loss_fn(E, t, **kw)
    B, d = H.shape
    return torch.autograd.functional.hessian(f, H).reshape(B * d, B * d)


@pytest.mark.parametrize("normalize_items", [False, True])
@pytest.mark.parametrize("normalize_hidden", [False, True])
@pytest.mark.parametrize("temperature", [1.0, 0.2])
def test_exact_blocks_equal_autograd_hessian(normalize_items, normalize_hidden, temperature):
    E, H, t = _problem(seed=1)
    kw = dict(temperature=temperature, normalize_items=normalize_items, normalize_hidden=normalize_hidden)
    full = _autograd_hessian(E, H, t, **kw)
    blocks = exact_ce_hessian_blocks(E, H, t, **kw)
    assert blocks.shape == (4, 6, 6)
    # Rounding scale: entries are sums of p_i e_i e_i^T / temperature^2 (large norms, saturated p).
    atol = 1e-13 * float(E.norm(dim=1).max()) ** 2 / temperature**2
    torch.testing.assert_close(torch.block_diag(*blocks), full, rtol=1e-9, atol=atol)


@pytest.mark.parametrize("normalize_hidden", [False, True])
def test_gauss_newton_blocks_equal_jacobian_form(normalize_hidden):
    # GGN = J^T (d^2 loss / d logits^2) J with J the Jacobian of the logits w.r.t. H.
    E, H, t = _problem(n=20, d=4, B=3, seed=11, lognormal=0.5)
    kw = dict(temperature=0.5, normalize_items=True, normalize_hidden=normalize_hidden)
    Et = E / E.norm(dim=1, keepdim=True)

    def logits(X):
        h = X / X.norm(dim=1, keepdim=True) if normalize_hidden else X
        return h @ Et.T / 0.5

    J = torch.autograd.functional.jacobian(logits, H).reshape(3 * 20, 3 * 4)
    Z = logits(H)
    A = torch.autograd.functional.hessian(lambda z: torch.nn.functional.cross_entropy(z, t), Z).reshape(60, 60)
    ggn = J.T @ A @ J
    blocks = exact_ce_hessian_blocks(E, H, t, curvature="gauss_newton", **kw)
    torch.testing.assert_close(torch.block_diag(*blocks), ggn, rtol=1e-9, atol=1e-13)
    if not normalize_hidden:
        torch.testing.assert_close(blocks, exact_ce_hessian_blocks(E, H, t, **kw))
    spec_gn = conditioning_report(E, H, t, curvature="gauss_newton", **kw)
    assert spec_gn["n_negative"] == 0 or spec_gn["lambda_min"] > -1e-12 * spec_gn["lambda_max"]


def test_exact_blocks_closed_form_unnormalised():
    # block_b = E^T (diag p - p p^T) E / (B temperature^2), written out with numpy
    E, H, t = _problem(n=25, d=5, B=3, seed=2)
    temperature = 0.7
    blocks = exact_ce_hessian_blocks(E, H, t, temperature=temperature).numpy()
    En, Hn = E.numpy(), H.numpy()
    for b in range(3):
        z = En @ Hn[b] / temperature
        p = np.exp(z - z.max())
        p /= p.sum()
        ref = En.T @ (np.diag(p) - np.outer(p, p)) @ En / (3 * temperature**2)
        np.testing.assert_allclose(blocks[b], ref, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("normalize_items", [False, True])
def test_lanczos_matches_exact_eigenvalues(normalize_items):
    E, H, t = _problem(n=60, d=5, B=6, seed=3, lognormal=0.5, h_scale=0.1)
    kw = dict(temperature=0.5, normalize_items=normalize_items)
    ev = np.linalg.eigvalsh(torch.block_diag(*exact_ce_hessian_blocks(E, H, t, **kw)).numpy())
    spec = softmax_ce_representation_hessian(E, H, t, k=2, tol=1e-10, **kw)
    assert spec.method == "lanczos" and spec.converged and spec.n_hvp > 0
    np.testing.assert_allclose(spec.largest, ev[::-1][:2], rtol=1e-7)
    np.testing.assert_allclose(spec.smallest[:2], ev[:2], rtol=1e-6)
    assert ev[0] > 1e-6 * ev[-1]  # well conditioned enough: no null space here
    assert spec.condition_number == pytest.approx(ev[-1] / ev[0], rel=1e-6)
    exact = softmax_ce_representation_hessian(E, H, t, method="exact", k=2, **kw)
    np.testing.assert_allclose(exact.largest, ev[::-1][:2], rtol=1e-10)
    assert exact.condition_number == pytest.approx(ev[-1] / ev[0], rel=1e-10)
    assert exact.n_below_threshold == 0 and exact.n_negative == 0


def test_normalize_h_lanczos_and_exact_vs_autograd_hessian():
    # With h normalised the Hessian is indefinite: check both ends, and that the condition
    # number comes from the smallest eigenvalue above the threshold.
    E, H, t = _problem(n=50, d=5, B=3, seed=4)
    kw = dict(temperature=0.3, normalize_items=True, normalize_hidden=True)
    ev = np.linalg.eigvalsh(_autograd_hessian(E, H, t, **kw).numpy())
    assert ev[0] < 0
    spec = softmax_ce_representation_hessian(E, H, t, k=1, tol=1e-10, n_null_probe=14, **kw)
    assert spec.lambda_max == pytest.approx(ev[-1], rel=1e-8)
    assert spec.lambda_min == pytest.approx(ev[0], rel=1e-8)
    pos = ev[ev > 1e-6 * ev[-1]]
    exact = softmax_ce_representation_hessian(E, H, t, method="exact", **kw)
    assert exact.lambda_min == pytest.approx(ev[0], rel=1e-10)
    assert exact.smallest_above_threshold == pytest.approx(pos[0], rel=1e-10)
    assert exact.condition_number == pytest.approx(ev[-1] / pos[0], rel=1e-10)
    assert exact.n_negative == int(np.sum(ev < 0))
    if np.isfinite(spec.smallest_above_threshold):
        assert spec.smallest_above_threshold == pytest.approx(pos[0], rel=1e-6)


def test_generic_loss_dense_and_lanczos_on_quadratic():
    # loss = 0.5 x^T A x with a known spectrum, including a 3-dimensional null space.
    rng = np.random.default_rng(5)
    Q, _ = np.linalg.qr(rng.standard_normal((30, 30)))
    lam = np.concatenate([np.zeros(3), np.geomspace(1e-2, 10.0, 27)])
    A = torch.tensor((Q * lam) @ Q.T)
    x = torch.tensor(rng.standard_normal((5, 6)))

    def loss(X):
        v = X.reshape(-1)
        return 0.5 * v @ A @ v

    for method in ("lanczos", "dense"):
        with _nowarn():
            spec = hessian_spectrum(loss, x, method=method, tol=1e-10)
        assert spec.lambda_max == pytest.approx(10.0, rel=1e-8)
        assert abs(spec.lambda_min) < 1e-10
        assert spec.smallest_above_threshold == pytest.approx(1e-2, rel=1e-6)
        assert spec.condition_number == pytest.approx(1e3, rel=1e-6)
    assert spec.n_below_threshold == 3 and spec.n_hvp == 30


def test_null_projector_and_probe_exhaustion():
    rng = np.random.default_rng(6)
    Q, _ = np.linalg.qr(rng.standard_normal((40, 40)))
    lam = np.concatenate([np.zeros(8), np.linspace(0.5, 4.0, 32)])
    A = torch.tensor((Q * lam) @ Q.T)
    N = torch.tensor(Q[:, :8])
    x = torch.zeros(40, dtype=torch.float64)

    def loss(v):
        return 0.5 * v @ A @ v

    with pytest.warns(RuntimeWarning, match="interior"):
        spec = hessian_spectrum(loss, x, n_null_probe=2, tol=1e-10)
    assert np.isnan(spec.condition_number) and abs(spec.lambda_min) < 1e-10
    spec = hessian_spectrum(loss, x, null_projector=lambda v: N @ (N.T @ v), tol=1e-10)
    assert spec.smallest_above_threshold == pytest.approx(0.5, rel=1e-8)
    assert spec.condition_number == pytest.approx(8.0, rel=1e-8)


def test_rank_deficient_items_are_deflated_for_lanczos():
    # n < d: every block has a null space of dimension d - n, found and deflated.
    E, H, t = _problem(n=3, d=6, B=4, seed=7, lognormal=0.0, h_scale=0.2)
    ev = np.linalg.eigvalsh(torch.block_diag(*exact_ce_hessian_blocks(E, H, t)).numpy())
    pos = ev[ev > 1e-6 * ev[-1]]
    assert pos.size == 4 * 2  # rank(diag p - pp^T) = n - 1 = 2 per block
    spec = softmax_ce_representation_hessian(E, H, t, tol=1e-10)
    assert spec.smallest_above_threshold == pytest.approx(pos[0], rel=1e-6)
    assert spec.condition_number == pytest.approx(ev[-1] / pos[0], rel=1e-6)


def test_float32_input_and_report_keys():
    E, H, t = _problem(n=200, d=8, B=8, seed=8, lognormal=0.5, h_scale=0.1, dtype=torch.float32)
    r64 = conditioning_report(E, H, t, 1.0, False, False)
    assert r64["dtype"] == "float64" and r64["method"] == "exact_blocks" and r64["dim"] == 64
    r32 = conditioning_report(E, H, t, 1.0, False, False, dtype=None, method="lanczos")
    assert r32["dtype"] == "float32" and r32["n_hvp"] > 0
    assert r32["lambda_max"] == pytest.approx(r64["lambda_max"], rel=1e-4)
    assert r32["condition_number"] == pytest.approx(r64["condition_number"], rel=1e-3)
    assert r64["loss"] == pytest.approx(float(softmax_ce_loss_fn(E.double(), t)(H.double())))
    for key in (
        "lambda_min",
        "lambda_min_above_threshold",
        "median_block_condition_number",
        "n_below_threshold",
        "item_norm_cv",
        "seconds",
    ):
        assert key in r64


def test_norm_disparity_inflates_condition_number_at_init():
    # The paper's claim at initialisation, on synthetic data: log-normal item norms make the
    # representation Hessian far worse conditioned than the same table row-normalised.
    g = torch.Generator().manual_seed(9)
    n, d, B = 2000, 16, 32
    E = torch.randn(n, d, generator=g, dtype=torch.float64) / d**0.5
    E = E * torch.exp(1.5 * torch.randn(n, 1, generator=g, dtype=torch.float64))
    H = 0.02 * torch.randn(B, d, generator=g, dtype=torch.float64)
    t = torch.randint(0, n, (B,), generator=g)
    raw = conditioning_report(E, H, t, 1.0, normalize_items=False)
    nrm = conditioning_report(E, H, t, 1.0, normalize_items=True)
    assert raw["item_norm_cv"] > 1.0
    assert raw["condition_number"] > 5 * nrm["condition_number"]
    assert nrm["condition_number"] < 3.0


def test_input_validation():
    E, H, t = _problem()
    with pytest.raises(ValueError, match="same dimension"):
        exact_ce_hessian_blocks(E[:, :5], H, t)
    with pytest.raises(ValueError, match="item ids"):
        exact_ce_hessian_blocks(E, H, t + 100)
    with pytest.raises(ValueError, match="one id per row"):
        exact_ce_hessian_blocks(E, H, t[:2])
    with pytest.raises(TypeError, match="integer"):
        exact_ce_hessian_blocks(E, H, t.double())
    with pytest.raises(ValueError, match="temperature"):
        conditioning_report(E, H, t, temperature=0.0)
    with pytest.raises(ValueError, match="method"):
        conditioning_report(E, H, t, method="power")
    with pytest.raises(ValueError, match="curvature"):
        exact_ce_hessian_blocks(E, H, t, curvature="fisher")
    with pytest.raises(ValueError, match="gauss_newton"):
        conditioning_report(E, H, t, method="lanczos", curvature="gauss_newton")
    with pytest.raises(ValueError, match="which"):
        hessian_spectrum(lambda X: (X**2).sum(), H, which="middle")
    with pytest.raises(ValueError, match="scalar"):
        hessian_spectrum(lambda X: X**2, H)
    with pytest.raises(TypeError, match="float32 or float64"):
        hessian_spectrum(lambda X: (X**2).sum(), H.to(torch.float16))


class _nowarn:
    """Fail on any RuntimeWarning inside the block."""

    def __enter__(self):
        import warnings

        self._cm = warnings.catch_warnings()
        self._cm.__enter__()
        warnings.simplefilter("error", RuntimeWarning)

    def __exit__(self, *exc):
        return self._cm.__exit__(*exc)


def test_real_pca_table_is_worse_conditioned_than_random_init(data_dir):
    # Scientific's raw 512-d text features PCA'd to 64-d (an LLMInit table) vs a random table.
    path = data_dir / "scientific" / "item_emb_feat1cls_512.f32"
    if not path.exists():
        pytest.skip(f"{path} not found")
    X = np.fromfile(path, dtype=np.float32).reshape(-1, 512).astype(np.float64)
    Xc = X - X.mean(0)
    Z = Xc @ np.linalg.svd(Xc, full_matrices=False)[2][:64].T
    rng = np.random.default_rng(0)
    H = rng.normal(0, 0.02, (64, 64))
    t = rng.integers(0, Z.shape[0], 64)
    pca = conditioning_report(Z, H, t)
    rand = conditioning_report(rng.normal(0, 0.02, Z.shape), H, t)
    assert pca["condition_number"] > 10 * rand["condition_number"]
