"""Repeat / explore targets on hand-made histories, and their crossing with the item groups."""

import numpy as np
import pytest

from tfllmer_fast.data.cold import cold_start_split, item_groups, repeat_shares, repeat_targets, target_groups
from tfllmer_fast.data.sequences import Sequences, leave_one_out

# Whole sequences: training history, then the validation item, then the test item.
#   user 0: history 1 2 3; valid 2 (in it, not the last); test 5 (new to the user)
#   user 1: history 4 5;   valid 5 (= the last item);     test 4 (in it: 4 5 5)
#   user 2: history 0 1;   valid 3 (new);                 test 3 (= the validation item, now the last)
#   user 3: history 6 6 0; valid 7 (new);                 test 6 (in the training part only)
SEQS = [[1, 2, 3, 2, 5], [4, 5, 5, 4], [0, 1, 3, 3], [6, 6, 0, 7, 6]]


@pytest.fixture
def split():
    return leave_one_out(Sequences.from_lists(SEQS, n_items=8))


def test_repeat_and_last_item_by_hand(split):
    repeat, last = repeat_targets(split, "valid")
    assert repeat.tolist() == [True, True, False, False]
    assert last.tolist() == [False, True, False, False]
    repeat, last = repeat_targets(split, "test")
    assert repeat.tolist() == [False, True, True, True]
    assert last.tolist() == [False, False, True, False]
    with pytest.raises(ValueError, match="which"):
        repeat_targets(split, "train")


def test_shares(split):
    shares = repeat_shares(split)
    assert shares["valid"] == {"repeat": 0.5, "last_item": 0.25}
    assert shares["test"] == {"repeat": 0.75, "last_item": 0.25}


def test_a_cold_item_the_user_really_had_is_a_repeat(split):
    # Item 6 is cold: gone from training histories, still in the history users had.
    cold = cold_start_split(split, [6])
    assert 6 not in cold.train.items
    repeat, _ = repeat_targets(cold, "test")
    assert repeat.tolist() == [False, True, True, True]


def test_target_groups_cross_item_groups_with_repeat(split):
    cold = cold_start_split(split, [5, 6])
    groups = target_groups(cold, "test")
    items = item_groups(cold)
    targets = cold.test_targets  # 5 4 3 6
    assert groups["cold"].tolist() == items["cold"][targets].tolist() == [True, False, False, True]
    assert groups["explore"].tolist() == [True, False, False, False]
    assert groups["cold_explore"].tolist() == [True, False, False, False]
    assert groups["cold_repeat"].tolist() == [False, False, False, True]
    assert groups["warm_repeat"].tolist() == [False, True, True, False]
    for name in ("warm", "cold", "head", "tail"):
        both = groups[f"{name}_repeat"].astype(int) + groups[f"{name}_explore"].astype(int)
        np.testing.assert_array_equal(both, groups[name].astype(int))  # a partition of the group
    assert list(groups)[:6] == ["warm", "cold", "head", "tail", "repeat", "explore"]
