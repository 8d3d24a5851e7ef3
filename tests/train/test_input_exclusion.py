"""Excluding each training row's own input items from the softmax (``exclude_input_items``)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tests.helpers import random_sequences
from tfllmer_fast.data.sequences import leave_one_out
from tfllmer_fast.experiment.config import Config
from tfllmer_fast.train import Trainer, TrainOptions
from tfllmer_fast.train.losses import input_pairs, linear_cross_entropy
from tfllmer_fast.train.models import BERT4Rec, SASRec


@pytest.fixture(autouse=True)
def _threads(one_thread):
    yield


INPUTS = torch.tensor([[0, 0, 3, 5, 3], [0, 2, 4, 6, 1], [0, 0, 0, 0, 7]])  # shifted ids


def test_prefix_pairs_by_hand():
    targets = torch.tensor([4, 0, 9])  # each of rows 0 and 1 holds its target: never excluded
    rows, items = input_pairs(INPUTS, True, targets)
    assert list(zip(rows.tolist(), items.tolist())) == [(0, 2), (0, 2), (1, 1), (1, 3), (1, 5), (2, 6)]


def test_window_pairs_against_a_loop():
    real = INPUTS > 0
    # points in row-major order, as training_pairs returns them; targets: the next ids
    targets = torch.tensor([4, 2, 3, 1, 5, 0, 6, 8])
    rows, items = input_pairs(INPUTS, False, targets)
    expected, p = [], 0
    for b in range(3):
        for j in range(5):
            if real[b, j]:
                seen = [int(x) - 1 for x in INPUTS[b, : j + 1] if x > 0]
                expected += [(p, i) for i in seen if i != int(targets[p])]
                p += 1
    assert list(zip(rows.tolist(), items.tolist())) == expected


def test_masked_loss_and_gradients_match_autograd():
    g = torch.Generator().manual_seed(0)
    h = torch.randn(7, 5, generator=g, requires_grad=True)
    E = torch.randn(11, 5, generator=g, requires_grad=True)
    t = torch.randint(11, (7,), generator=g)
    rows = torch.tensor([0, 0, 2, 3, 3, 3, 6])
    items = torch.tensor([1, 4, 0, 2, 5, 9, 10])
    items = torch.where(items == t[rows], (items + 1) % 11, items)  # never the target
    loss = linear_cross_entropy(h, E, t, scale=2.0, chunk=3, exclude_pairs=(rows, items))
    logits = 2.0 * h @ E.t()
    logits = logits.index_put((rows, items), torch.tensor(float("-inf")))
    ref = F.cross_entropy(logits, t)
    torch.testing.assert_close(loss, ref)
    gh, gE = torch.autograd.grad(loss, (h, E))
    rh, rE = torch.autograd.grad(ref, (h, E))
    torch.testing.assert_close(gh, rh)
    torch.testing.assert_close(gE, rE)


@pytest.mark.parametrize("samples", ["prefixes", "windows"])
def test_a_run_trains_with_it_and_differs(samples):
    split = leave_one_out(random_sequences(n_users=30, n_items=15, max_len=9))
    losses = []
    for on in (False, True):
        torch.manual_seed(0)
        model = SASRec(15, hidden=8, max_len=6, n_layers=1)
        opts = TrainOptions(epochs=1, progress=False, train_samples=samples, exclude_input_items=on)
        losses.append(Trainer(model, split, opts).fit().history[0]["train_loss"])
    assert np.isfinite(losses).all() and losses[1] < losses[0]  # fewer negatives: a smaller CE


def test_refused_where_it_means_nothing():
    split = leave_one_out(random_sequences(n_users=20, n_items=15))
    with pytest.raises(ValueError, match="exclude_input_items"):
        Trainer(BERT4Rec(15, hidden=8, max_len=6), split, TrainOptions(exclude_input_items=True))
    with pytest.raises(ValueError, match="exclude_input_items"):
        Trainer(SASRec(15, hidden=8, max_len=6), split, TrainOptions(exclude_input_items=True, loss="bce"))


def test_off_by_default_and_out_of_earlier_fingerprints():
    assert "exclude_input_items" not in Config().fingerprint()
    assert '"exclude_input_items": true' in Config(exclude_input_items=True).fingerprint()
    assert "exclude_input_items" not in TrainOptions().trajectory()
