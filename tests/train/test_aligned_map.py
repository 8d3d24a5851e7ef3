"""The aligned map's choice: a tie among the lambdas warns, and the projection is kept unless a
lambda beats it on validation."""

import numpy as np
import pytest
import torch

from tests.helpers import random_sequences
from tfllmer_fast.data.sequences import leave_one_out
from tfllmer_fast.train import Trainer, TrainOptions
from tfllmer_fast.train.models import SASRec
from tfllmer_fast.train.new_items import fit_aligned_map

N, D = 30, 6


@pytest.fixture(autouse=True)
def _threads(one_thread):
    yield


def _setup(trained_rows):
    split = leave_one_out(random_sequences(n_users=120, n_items=N, max_len=10, seed=2))
    model = SASRec(N, hidden=D, max_len=5, n_layers=1)
    model.set_item_table(trained_rows)
    return Trainer(model, split, TrainOptions(progress=False))


def _validation_by_distance(trainer, reference):
    """A scripted validation: a target ranks by how far its item's current row is from
    ``reference`` (0 = first): the better a method reproduces ``reference``, the better."""

    def evaluate(which, return_ranks=False, **kw):
        rows = trainer.model.item_emb.weight.detach()[1:].double().numpy()
        dist = np.linalg.norm(rows - reference, axis=1)
        ranks = np.minimum((50 * dist).astype(np.int64), N - 1)[np.asarray(trainer.split.valid_targets)]
        return {}, ranks

    trainer.evaluate = evaluate


def test_the_projection_is_kept_when_no_lambda_beats_it():
    rng = np.random.default_rng(0)
    P = rng.standard_normal((N, D))
    trained = P + 0.02 * rng.standard_normal((N, D))  # near P: a map gets close, never closer
    t = _setup(trained)
    _validation_by_distance(t, P)  # validation rewards the projected rows themselves
    before = t.model.item_emb.weight.detach().clone()
    amap = fit_aligned_map(t, P)
    assert amap["chosen"] == "projection" and not amap["tie"]
    assert amap["projection_score"] == 1.0 and max(amap["scores"].values()) < 1.0
    np.testing.assert_array_equal(amap["W"], np.eye(D))  # aligned rows = the projected rows
    np.testing.assert_array_equal(amap["b"], np.zeros(D))
    torch.testing.assert_close(t.model.item_emb.weight.detach(), before)  # the model is left as it was


def test_a_map_that_beats_the_projection_is_chosen():
    rng = np.random.default_rng(1)
    P = rng.standard_normal((N, D))
    trained = P @ rng.standard_normal((D, D)) + 0.5  # exactly linear in P: a ridge map finds it
    t = _setup(trained)
    _validation_by_distance(t, trained)
    amap = fit_aligned_map(t, P)
    assert amap["chosen"] == "aligned" and not amap["tie"]
    assert max(amap["scores"].values()) > amap["projection_score"]
    np.testing.assert_allclose(P @ amap["W"] + amap["b"], trained, atol=0.05)


def test_every_lambda_scoring_the_same_warns_and_keeps_the_projection():
    rng = np.random.default_rng(2)
    P = rng.standard_normal((N, D))
    t = _setup(rng.standard_normal((N, D)))
    t.evaluate = lambda which, return_ranks=False, **kw: ({}, np.full(len(t.split.valid_targets), N - 1))
    with pytest.warns(RuntimeWarning, match="every candidate lambda scored 0 on validation"):
        amap = fit_aligned_map(t, P)
    assert amap["tie"] and set(amap["scores"].values()) == {0.0}
    assert amap["chosen"] == "projection"  # 0.0 does not beat the projection's 0.0
    np.testing.assert_array_equal(amap["W"], np.eye(D))
