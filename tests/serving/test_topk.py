"""top_k against numpy's stable sort: equal scores by the smaller column, -inf left last."""

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tfllmer_fast.serving._topk import top_k


@settings(max_examples=200, deadline=None)
@given(
    rows=st.integers(1, 6),
    cols=st.integers(1, 40),
    k=st.integers(1, 45),
    levels=st.integers(1, 5),
    seed=st.integers(0, 2**31 - 1),
)
def test_top_k_is_a_stable_descending_sort(rows, cols, k, levels, seed):
    rng = np.random.default_rng(seed)
    S = rng.integers(0, levels, (rows, cols)).astype(np.float32)  # few distinct values: many ties
    S[rng.random((rows, cols)) < 0.2] = -np.inf
    k = min(k, cols)
    vals, idx = top_k(torch.as_tensor(S), k)
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
