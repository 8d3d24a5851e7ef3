"""Per-target groups from one ranking pass, epoch lines as log records, and the epoch-cap
warning ("stopped at the epoch cap while improving")."""

import logging

import numpy as np
import pytest

from tests.helpers import cyclic_sequences
from tfllmer_fast.data.sequences import leave_one_out
from tfllmer_fast.train import Trainer, TrainOptions
from tfllmer_fast.train.evaluation import target_metrics
from tfllmer_fast.train.metrics import metrics_from_ranks
from tfllmer_fast.train.models import SASRec


@pytest.fixture(autouse=True)
def _threads(one_thread):
    yield


def _trainer(**options):
    split = leave_one_out(cyclic_sequences(n_users=40, n_items=20, step=5, min_len=3, max_len=8))  # cycles of 4
    model = SASRec(20, hidden=8, max_len=6, n_layers=1)
    return Trainer(model, split, TrainOptions(progress=False, batch_size=32, **options))


def test_target_metrics_are_the_metrics_of_the_masked_targets():
    ranks = np.array([0, 3, 12, 1, 40])
    masks = {"a": np.array([1, 0, 1, 0, 1], bool), "none": np.zeros(5, bool)}
    out = target_metrics(ranks, masks, (10,))
    assert out["a"] == {**metrics_from_ranks(ranks[[0, 2, 4]], (10,)), "n_targets": 3}
    assert out["none"] == {"n_targets": 0}
    with pytest.raises(ValueError, match="shape"):
        target_metrics(ranks, {"bad": np.ones(4, bool)})


def test_evaluate_groups_splits_repeat_and_explore():
    t = _trainer(epochs=1)
    out = t.evaluate_groups("test")
    n = out["test"]["n_targets"]
    assert out["test_repeat"]["n_targets"] + out["test_explore"]["n_targets"] == n
    for g in ("head", "tail"):
        assert (
            out[f"test_{g}_repeat"]["n_targets"] + out[f"test_{g}_explore"]["n_targets"]
            == out[f"test_{g}"]["n_targets"]
        )
    _, ranks = t.evaluate("test", return_ranks=True)
    repeat = t.evaluator.target_groups("test")["repeat"]
    assert 0 < repeat.sum() < repeat.size
    assert out["test_repeat"]["ndcg@10"] == pytest.approx(metrics_from_ranks(ranks[repeat])["ndcg@10"])


def _scripted_validation(trainer, values):
    """Validation returns the given metric values epoch by epoch (no ranking)."""
    it = iter(values)
    trainer.evaluate = lambda which, protocol="full": {"ndcg@10": next(it)}


def test_a_run_still_improving_at_the_cap_says_so(caplog, capsys):
    t = _trainer(epochs=3, patience=5)
    _scripted_validation(t, [0.1, 0.2, 0.3])
    with caplog.at_level(logging.INFO, logger="tfllmer_fast"):
        res = t.fit()
    assert res.capped_while_improving and res.best_epoch == 3
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert [m.split()[1] for m in lines] == ["1/3", "2/3", "3/3"]  # one record per epoch, progress off
    assert "valid ndcg@10 0.3000" in lines[-1]
    warn = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warn) == 1 and "stopped at the epoch cap while improving" in warn[0].getMessage()
    assert "epoch" not in capsys.readouterr().out  # progress off: nothing printed by the trainer itself


@pytest.mark.parametrize("values, patience", [([0.3, 0.2, 0.1], 5), ([0.3, 0.2, 0.1, 0.1], 1)])
def test_no_cap_warning_when_the_best_is_earlier_or_training_stopped(caplog, values, patience):
    t = _trainer(epochs=len(values), patience=patience)
    _scripted_validation(t, values)
    with caplog.at_level(logging.INFO, logger="tfllmer_fast"):
        res = t.fit()
    assert res.best_epoch == 1 and not res.capped_while_improving
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]


def test_epoch_lines_go_to_the_progress_display_without_a_log_handler(capsys, monkeypatch):
    import tfllmer_fast.train.trainer as trainer_module

    monkeypatch.setattr(trainer_module.logger, "hasHandlers", lambda: False)
    t = _trainer(epochs=2)
    t.options = t.options.replace(progress=True)
    t.fit()
    out = capsys.readouterr().out
    assert "epoch   1/2" in out and "epoch   2/2" in out
