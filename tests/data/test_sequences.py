import numpy as np
import pytest

from tfllmer_fast.data.sequences import Sequences, leave_one_out


def test_leave_one_out_matches_python_slicing():
    rng = np.random.default_rng(0)
    lists = [list(rng.integers(0, 30, size=rng.integers(1, 12))) for _ in range(200)]
    seqs = Sequences.from_lists(lists, n_items=30)
    split = leave_one_out(seqs)
    kept = [s for s in lists if len(s) >= 3]
    assert split.train.to_lists() == [s[:-2] for s in kept]
    assert split.valid_targets.tolist() == [s[-2] for s in kept]
    assert split.test_targets.tolist() == [s[-1] for s in kept]
    assert [lists[u] for u in split.user_index] == kept


@pytest.mark.parametrize(
    "offsets, items, n_items, match",
    [
        ([1, 2], [1], 5, "start at 0"),
        ([0, 2, 1], [1, 2], 5, "non-decreasing"),
        ([0, 3], [1, 2], 5, "offsets\\[-1\\]"),
        ([0, 2], [-1, 2], 5, "0..n_items-1"),
        ([0, 2], [1, 5], 5, "0..n_items-1"),
    ],
)
def test_bad_sequences_raise(offsets, items, n_items, match):
    with pytest.raises(ValueError, match=match):
        Sequences(np.array(offsets), np.array(items), n_items)


def test_leave_one_out_needs_long_enough_users():
    with pytest.raises(ValueError, match="at least 3"):
        leave_one_out(Sequences.from_lists([[1, 2], [0]], n_items=3))
