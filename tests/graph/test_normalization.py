import numpy as np
import pytest

from tfllmer_fast import normalize_embeddings


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_unit_rows_and_zero_rows_reported(dtype):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((50, 7)).astype(dtype) * rng.uniform(0.1, 10, (50, 1)).astype(dtype)
    X[[4, 9]] = 0
    with pytest.warns(RuntimeWarning, match="2 of 50 embedding rows have zero norm"):
        Xn, zero = normalize_embeddings(X, return_zero_rows=True)
    assert Xn.dtype == dtype
    np.testing.assert_array_equal(zero, [4, 9])
    assert not np.isnan(Xn).any()
    assert np.all(Xn[[4, 9]] == 0)
    keep = np.setdiff1d(np.arange(50), zero)
    np.testing.assert_allclose(np.linalg.norm(Xn[keep].astype(np.float64), axis=1), 1, rtol=1e-6)
    np.testing.assert_allclose(Xn[keep], X[keep] / np.linalg.norm(X[keep], axis=1, keepdims=True), rtol=1e-6)


def test_no_warning_without_zero_rows_and_copy_semantics(recwarn):
    X = np.array([[3.0, 4.0], [1.0, 0.0]])
    out = normalize_embeddings(X)
    np.testing.assert_allclose(out, [[0.6, 0.8], [1, 0]])
    assert X[0, 0] == 3.0  # copy by default
    assert len(recwarn) == 0
    same = normalize_embeddings(X, copy=False)
    assert same is X and X[0, 0] == pytest.approx(0.6)


def test_read_only_and_huge_values():
    X = np.array([[3e30, 4e30], [1e-30, 0.0]], dtype=np.float32)  # squares overflow float32
    X.setflags(write=False)
    out = normalize_embeddings(X, copy=False)
    np.testing.assert_allclose(out, [[0.6, 0.8], [1, 0]], rtol=1e-6)


@pytest.mark.parametrize(
    "bad,err",
    [(np.array([[np.nan, 1.0]]), ValueError), (np.ones(3), ValueError), (np.ones((2, 2), complex), TypeError)],
)
def test_bad_input(bad, err):
    with pytest.raises(err):
        normalize_embeddings(bad)


def test_checked_row_norms_names_the_bad_row():
    # One pass gives the norms and the NaN/Inf check: the error names the first bad row,
    # for the C++ path (C-contiguous) and the numpy path (a strided view).
    from tfllmer_fast.graph.normalization import checked_row_norms

    X = np.ones((50, 8), dtype=np.float32)
    X[17, 2] = np.inf
    X[30, 0] = np.nan
    with pytest.raises(ValueError, match="row 17 contains NaN or Inf"):
        checked_row_norms(X)
    with pytest.raises(ValueError, match="row 17 contains NaN or Inf"):
        checked_row_norms(X[:, ::2].copy(order="F"))
    np.testing.assert_allclose(checked_row_norms(X[:10]), np.sqrt(8))


def test_overflowing_float64_row_is_reported_as_such():
    from tfllmer_fast.graph.normalization import checked_row_norms

    X = np.array([[1.0, 2.0], [1e200, 1e200]])
    with pytest.raises(ValueError, match="row 1 is too large"):
        checked_row_norms(X)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("dim", [1, 15, 16, 17, 100])
def test_row_norms_kernel_matches_numpy(dtype, dim):
    from tfllmer_fast.graph.normalization import row_norms

    X = np.random.default_rng(dim).standard_normal((33, dim)).astype(dtype)
    np.testing.assert_allclose(row_norms(X, 2), np.linalg.norm(X.astype(np.float64), axis=1), rtol=1e-13)
