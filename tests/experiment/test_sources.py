import numpy as np
import pytest

from tests.helpers import random_sequences
from tfllmer_fast.data import Dataset
from tfllmer_fast.experiment.sources import check_same_items


def _checkpoint(known_ids):
    return {"items": {"n_items": len(known_ids), "known_ids": list(known_ids)}, "config": {}}


def _data(keys=None, n_items=5):
    seqs = random_sequences(n_users=10, n_items=n_items, seed=0)
    if keys is not None:
        seqs = type(seqs)(seqs.offsets, seqs.items, seqs.n_items, item_ids=np.asarray(keys))
    return Dataset("toy", seqs, None, None)


def test_the_same_keys_in_the_same_order_pass():
    check_same_items(_checkpoint(["a", "b", "c", "d", "e"]), _data(["a", "b", "c", "d", "e"]))


def test_other_keys_or_another_order_are_named():
    with pytest.raises(ValueError, match="differ at item 1"):
        check_same_items(_checkpoint(["a", "b", "c", "d", "e"]), _data(["a", "c", "b", "d", "e"]))
    with pytest.raises(ValueError, match="5 items.*6 items"):
        check_same_items(_checkpoint([str(i) for i in range(6)]), _data(["a", "b", "c", "d", "e"]))


def test_a_checkpoint_without_keys_checks_the_size_only():
    # Its rows are positions: a sequence file now read with its own ids as keys still fits.
    check_same_items(_checkpoint(["0", "1", "2", "3", "4"]), _data(["1", "2", "3", "4", "5"]))
    check_same_items(_checkpoint(["0", "1", "2", "3", "4"]), _data())
