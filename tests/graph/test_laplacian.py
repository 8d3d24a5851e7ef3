import numpy as np
import pytest
import scipy.sparse as sp
from scipy.sparse.csgraph import laplacian as scipy_laplacian

from tfllmer_fast import laplacian


def random_graph(n, density, seed, isolated=()):
    A = sp.random(n, n, density=density, random_state=seed, format="csr")
    A = (A + A.T).tolil()
    for i in isolated:
        A[i, :] = 0
        A[:, i] = 0
    A = sp.csr_array(A)
    # every other item gets at least one edge so scipy's convention (isolated -> 0) agrees
    return A


@pytest.mark.parametrize("normed,kind", [(True, "normalized"), (False, "combinatorial")])
def test_matches_scipy_csgraph(normed, kind):
    A = random_graph(60, 0.1, 0)
    assert np.all(np.asarray(A.sum(axis=1)).ravel() > 0)
    L = laplacian(A, kind=kind)
    assert isinstance(L, sp.csr_array)
    np.testing.assert_allclose(L.toarray(), scipy_laplacian(A.toarray(), normed=normed), atol=1e-12)


def test_isolated_items_get_a_row_of_the_identity():
    A = random_graph(30, 0.2, 1, isolated=(3, 17))
    L = laplacian(A).toarray()
    ref = scipy_laplacian(A.toarray(), normed=True)
    for i in (3, 17):
        assert L[i, i] == 1.0 and ref[i, i] == 0.0  # scipy's convention differs only here
        assert np.count_nonzero(L[i]) == 1
    ref[[3, 17], [3, 17]] = 1.0
    np.testing.assert_allclose(L, ref, atol=1e-12)
    Lc = laplacian(A, kind="combinatorial").toarray()
    assert not Lc[3].any()


def test_self_loops_are_ignored_like_scipy():
    A = random_graph(20, 0.3, 2).toarray()
    A[np.arange(20), np.arange(20)] = 5.0
    for kind, normed in (("normalized", True), ("combinatorial", False)):
        np.testing.assert_allclose(
            laplacian(sp.csr_array(A), kind).toarray(), scipy_laplacian(A, normed=normed), atol=1e-12
        )


def test_dense_and_integer_input():
    A = np.array([[0, 2, 0], [2, 0, 1], [0, 1, 0]])
    L = laplacian(A, kind="combinatorial").toarray()
    np.testing.assert_array_equal(L, [[2, -2, 0], [-2, 3, -1], [0, -1, 1]])
    Ln = laplacian(A).toarray()
    np.testing.assert_allclose(Ln[0, 1], -2 / np.sqrt(2 * 3))


@pytest.mark.parametrize(
    "A,match",
    [
        (sp.csr_array(np.ones((2, 3))), "square"),
        (sp.csr_array(np.array([[0, -1.0], [-1.0, 0]])), "negative"),
        (sp.csr_array(np.array([[0, 1.0], [2.0, 0]])), "not symmetric"),
        (sp.csr_array(np.array([[0, np.nan], [np.nan, 0]])), "NaN"),
    ],
)
def test_bad_graphs(A, match):
    with pytest.raises(ValueError, match=match):
        laplacian(A)


def test_unknown_kind():
    with pytest.raises(ValueError, match="kind"):
        laplacian(sp.eye(3), kind="random_walk")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("seed", range(4))
def test_max_asymmetry_matches_scipy(dtype, seed):
    # Oracle: max |A - A.T| by scipy, on graphs that are symmetric, slightly perturbed, or
    # missing mirror entries (an entry without its mirror counts in full).
    from tfllmer_fast import _core
    from tfllmer_fast.graph.operators import csr_parts

    rng = np.random.default_rng(seed)
    n = 200
    A = sp.random(n, n, density=0.05, random_state=seed, format="csr", dtype=np.float64)
    A = sp.csr_array(A + A.T)
    if seed % 2:
        A.data[rng.integers(0, A.nnz, 5)] += rng.random(5)
    if seed >= 2:
        A = sp.csr_array(A + sp.random(n, n, density=0.002, random_state=seed + 10, format="csr"))
    A = sp.csr_array(A.astype(dtype))
    A.sum_duplicates()
    expected = abs(A - A.T).max() if A.nnz else 0.0
    got = _core.csr_max_asymmetry(*csr_parts(A), 2)
    # scipy subtracts in the weights' precision, the kernel in double
    assert got == pytest.approx(float(expected), rel=1e-12 if dtype == np.float64 else 1e-6, abs=0)
    if seed == 0:
        assert got == 0.0


def test_max_asymmetry_rejects_out_of_range_indices():
    from tfllmer_fast import _core

    indptr = np.array([0, 1, 2], dtype=np.int64)
    with pytest.raises(ValueError, match="out of range"):
        _core.csr_max_asymmetry(indptr, np.array([1, 7], dtype=np.int32), np.ones(2), 1)
    with pytest.raises(ValueError, match="non-decreasing"):
        _core.csr_max_asymmetry(np.array([0, 2, 1], dtype=np.int64), np.array([1], dtype=np.int32), np.ones(1), 1)


def test_asymmetric_graph_message_names_the_difference():
    A = sp.csr_array(np.array([[0, 1.0, 0], [1.0, 0, 3.0], [0, 0.5, 0]]))
    with pytest.raises(ValueError, match=r"max \|A - A.T\| = 2.5"):
        laplacian(A)


def test_max_asymmetry_rejects_unsorted_rows():
    # the mirror lookup is a binary search: unsorted or duplicate indices must be refused
    from tfllmer_fast import _core

    indptr = np.array([0, 2, 3, 4], dtype=np.int64)
    with pytest.raises(ValueError, match="sorted"):
        _core.csr_max_asymmetry(indptr, np.array([2, 1, 0, 0], dtype=np.int32), np.ones(4), 1)
    with pytest.raises(ValueError, match="sorted"):
        _core.csr_max_asymmetry(indptr, np.array([1, 1, 0, 0], dtype=np.int32), np.ones(4), 1)
