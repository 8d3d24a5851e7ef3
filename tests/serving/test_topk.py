"""top_k against numpy's stable sort: equal scores by the smaller column, -inf left last;
the compiled CPU kernel and the torch path (GPUs) alike."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tfllmer_fast import _core
from tfllmer_fast.serving._topk import top_k, torch_top_k


@pytest.mark.parametrize("implementation", [top_k, torch_top_k], ids=["kernel", "torch"])
@settings(max_examples=200, deadline=None)
@given(
    rows=st.integers(1, 6),
    cols=st.integers(1, 40),
    k=st.integers(1, 45),
    levels=st.integers(1, 5),
    seed=st.integers(0, 2**31 - 1),
)
def test_top_k_is_a_stable_descending_sort(implementation, rows, cols, k, levels, seed):
    rng = np.random.default_rng(seed)
    S = rng.integers(0, levels, (rows, cols)).astype(np.float32)  # few distinct values: many ties
    S[rng.random((rows, cols)) < 0.2] = -np.inf
    k = min(k, cols)
    vals, idx = implementation(torch.as_tensor(S), k)
    want = np.argsort(-S, axis=1, kind="stable")[:, :k]
    finite = np.isfinite(np.take_along_axis(S, want, 1))
    got = idx.numpy()
    np.testing.assert_array_equal(got[finite], want[finite])  # padding entries: any -inf column
    np.testing.assert_array_equal(vals.numpy(), np.take_along_axis(S, want, 1))


@settings(max_examples=100, deadline=None)
@given(
    rows=st.integers(1, 5),
    cols=st.integers(1, 60),
    k=st.integers(1, 12),
    chunk=st.integers(1, 61),
    levels=st.integers(1, 4),
    seed=st.integers(0, 2**31 - 1),
)
def test_column_chunks_give_the_same_top_k(rows, cols, k, chunk, levels, seed):
    """rank_block over column chunks (a large catalogue) equals one top_k over all columns,
    with banned columns and seen (row, column) pairs at -inf."""
    from tfllmer_fast.serving._topk import Scorer, rank_block
    from tfllmer_fast.train import SASRec

    rng = np.random.default_rng(seed)
    torch.manual_seed(seed % 1000)
    model = SASRec(cols, hidden=4, max_len=3, normalize_items=False).eval()
    with torch.no_grad():  # repeated rows: tied scores
        model.item_emb.weight[1:] = torch.as_tensor(rng.integers(0, levels, (cols, 4)), dtype=torch.float32)
    banned = torch.as_tensor(np.flatnonzero(rng.random(cols) < 0.2))
    scorer = Scorer(model, banned=banned)
    h = torch.as_tensor(rng.integers(-2, 3, (rows, 4)), dtype=torch.float32)
    n_seen = int(rng.integers(0, rows * cols + 1))
    seen = (torch.as_tensor(rng.integers(0, rows, n_seen)), torch.as_tensor(rng.integers(0, cols, n_seen)))
    k = min(k, cols)
    vals, idx = rank_block(scorer, h, k, seen, col_chunk=chunk)
    S = scorer(h)
    S[seen[0], seen[1]] = float("-inf")
    want_vals, want_idx = top_k(S, k)
    np.testing.assert_array_equal(vals.numpy(), want_vals.numpy())
    finite = np.isfinite(want_vals.numpy())
    np.testing.assert_array_equal(idx.numpy()[finite], want_idx.numpy()[finite])


@settings(max_examples=100, deadline=None)
@given(rows=st.integers(1, 70), cols=st.integers(1, 300), k=st.integers(1, 40), seed=st.integers(0, 2**31 - 1))
def test_the_kernel_on_wide_rows_any_threads_and_strided_rows(rows, cols, k, seed):
    # Wide rows exercise the skipped blocks; a column slice has rows further apart than cols.
    rng = np.random.default_rng(seed)
    full = rng.standard_normal((rows, cols + 3)).astype(np.float32).round(1)  # ties
    S = full[:, 2 : 2 + cols]
    want = np.lexsort((np.broadcast_to(np.arange(cols), S.shape), -S), axis=1)[:, : min(k, cols)]
    for threads in (1, 3):
        vals, idx = _core.top_k_rows(S, k, threads)
        assert vals.shape == idx.shape == (rows, k)
        np.testing.assert_array_equal(idx[:, : min(k, cols)], want)
        np.testing.assert_array_equal(vals[:, : min(k, cols)], np.take_along_axis(S, want, 1))
        assert (idx[:, cols:] == -1).all() and np.isneginf(vals[:, cols:]).all()  # k beyond the row


def test_the_kernel_never_chooses_nan_and_checks_its_arguments():
    S = np.array([[np.nan, 1.0, np.nan, 2.0]], np.float32)
    vals, idx = _core.top_k_rows(S, 3, 1)
    assert idx.tolist() == [[3, 1, -1]] and vals[0, :2].tolist() == [2.0, 1.0]
    with pytest.raises(ValueError, match="k must be >= 1"):
        _core.top_k_rows(S, 0, 1)
    with pytest.raises(ValueError, match="2-D"):
        _core.top_k_rows(S[0], 1, 1)
    with pytest.raises(ValueError, match="contiguous rows"):
        _core.top_k_rows(S[:, ::2], 1, 1)
