import os
import warnings

import numpy as np
import pytest
import torch

from tfllmer_fast.config import Config
from tfllmer_fast.pipeline import RunData, run_experiment
from tfllmer_fast.sequences import Sequences, leave_one_out
from tfllmer_fast.trainer import (Trainer, build_model, build_prefixes, build_windows, save_atomic,
                                  seed_everything)

from _train_helpers import one_thread, random_sequences


@pytest.fixture(autouse=True)
def _threads(one_thread):
    yield


def _cfg(**kw):
    base = dict(init="random", embeddings=None, hidden=16, max_len=6, n_layers=1, epochs=4,
                batch_size=8, progress=False, threads=1, seed=0)
    base.update(kw)
    return Config(**base)


def test_build_windows_matches_python_reference():
    seqs = random_sequences(n_users=40, n_items=50, min_len=1, max_len=30, seed=2)
    M = 5
    win, wlen = build_windows(seqs, M, causal=True)
    expected = []
    for s in seqs.to_lists():
        L = len(s)
        end = L - 1
        rows = []
        while end >= 1:  # targets s[end-M+1 .. end], the item before them as first input
            start = max(0, end - M)
            rows.append(s[start:end + 1])
            end -= M
        expected += rows
    got = [(row[row > 0] - 1).tolist() for row in win]
    assert got == expected
    assert wlen.tolist() == [len(r) for r in expected]


def test_build_prefixes_matches_python_reference():
    # RecBole's layout: one row per training target, the (at most M) items before it in front
    seqs = random_sequences(n_users=40, n_items=50, min_len=1, max_len=30, seed=3)
    M = 5
    rows, rlen = build_prefixes(seqs, M)
    expected = [s[max(0, t - M):t + 1] for s in seqs.to_lists() for t in range(1, len(s))]
    assert [(r[r > 0] - 1).tolist() for r in rows] == expected
    assert rlen.tolist() == [len(e) for e in expected]


def test_prefix_training_equals_windows_without_dropout():
    # With from-start positions and no dropout, a window's every position is its prefix's
    # forward pass: one step on the prefix rows and one on the windows give the same loss
    # (all targets are in one batch either way, and CE is a mean over targets).
    seqs = random_sequences(n_users=12, n_items=20, min_len=3, max_len=6, seed=4)
    split = leave_one_out(seqs)
    losses = {}
    for mode in ("windows", "prefixes"):
        cfg = _cfg(train_samples=mode, dropout=0.0, batch_size=1000, epochs=1, length_bucketing=False)
        torch.manual_seed(0)
        model = build_model(cfg, split.n_items)
        tr = Trainer(model, split, cfg)
        losses[mode] = tr.train_epoch()
    assert losses["prefixes"] == pytest.approx(losses["windows"], rel=1e-5)


def test_prefixes_need_a_next_item_model():
    seqs = random_sequences(n_users=12, n_items=20, seed=4)
    split = leave_one_out(seqs)
    cfg = _cfg(model="bert4rec", train_samples="prefixes")
    with pytest.raises(ValueError, match="prefixes"):
        Trainer(build_model(cfg, split.n_items), split, cfg)


@pytest.mark.parametrize("model,samples", [("sasrec", "windows"), ("bert4rec", "windows"),
                                           ("gru4rec", "windows"), ("sasrec", "prefixes")])
def test_resume_after_interruption_gives_the_same_result(tmp_path, model, samples):
    seqs = random_sequences(n_users=60, n_items=30, seed=1)
    data = RunData("toy", seqs)
    cfg = _cfg(model=model, dropout=0.3, train_samples=samples)

    full = run_experiment(cfg, data=data, output_dir=tmp_path / "a", verbose=False,
                          write_plot=False)

    class Interrupt(Exception):
        pass

    def stop_after_two(trainer, record):
        if record["epoch"] == 2:
            raise Interrupt

    with pytest.raises(Interrupt):
        run_experiment(cfg, data=data, output_dir=tmp_path / "b", verbose=False,
                       callbacks=[stop_after_two], write_plot=False)
    ck = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)
    assert ck["epoch"] == 2
    resumed = run_experiment(cfg, data=data, output_dir=tmp_path / "b", verbose=False,
                             write_plot=False)
    assert [h["train_loss"] for h in resumed["history"]] == \
        [h["train_loss"] for h in full["history"]]
    assert resumed["metrics"] == full["metrics"]
    assert resumed["best_epoch"] == full["best_epoch"]
    assert (full["resumed_from_epoch"], resumed["resumed_from_epoch"]) == (0, 2)
    assert resumed["timings"]["total_s"] >= resumed["timings"]["train_s"]
    assert resumed["timings"]["session_s"] < resumed["timings"]["total_s"]


def test_a_larger_patience_extends_an_early_stopped_run(tmp_path, monkeypatch):
    # Stopped with patience 1, then resumed with patience 3: the same epochs, losses, best
    # epoch and weights as a run trained with patience 3 from the start.
    seqs = random_sequences(n_users=40, n_items=25, seed=4)
    split = leave_one_out(seqs)
    scores = [0.5, 0.4, 0.3, 0.6, 0.2, 0.1, 0.1, 0.1, 0.1, 0.1]

    def fit(patience, folder, rng_seed=0):
        cfg = _cfg(epochs=10, patience=patience, dropout=0.3)
        seed_everything(rng_seed)  # a resumed run must not depend on the RNG state it finds
        tr = Trainer(build_model(cfg, split.n_items), split, cfg,
                     checkpoint_path=tmp_path / folder / "ck.pt")
        monkeypatch.setattr(tr, "evaluate", lambda which="valid", **kw:
                            {"ndcg@10": scores[len(tr.result.history)]})
        return tr, tr.fit()

    _, short = fit(1, "b")
    assert short.stopped_early and short.epochs_run == 3 and short.best_epoch == 1
    extended_tr, extended = fit(3, "b", rng_seed=123)
    full_tr, full = fit(3, "a")
    assert full.stopped_early and full.epochs_run == 8 and full.best_epoch == 4
    assert extended.epochs_run == 8 and extended.best_epoch == 4 and extended.stopped_early
    assert [h["train_loss"] for h in extended.history] == [h["train_loss"] for h in full.history]
    for k, v in full_tr.model.state_dict().items():
        torch.testing.assert_close(extended_tr.model.state_dict()[k], v, rtol=0, atol=0)
    # and a smaller patience does not train a stopped run further
    _, again = fit(1, "b")
    assert again.epochs_run == 8 and len(again.history) == 8


def test_checkpoint_mismatch_is_refused(tmp_path):
    seqs = random_sequences(n_users=30, n_items=20)
    data = RunData("toy", seqs)
    run_experiment(_cfg(epochs=1), data=data, output_dir=tmp_path, verbose=False,
                   write_plot=False)
    with pytest.raises(ValueError, match="different configuration"):
        run_experiment(_cfg(epochs=1, lr=0.01), data=data, output_dir=tmp_path, verbose=False)


def test_save_atomic_keeps_the_old_file_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "ck.pt"
    save_atomic({"v": torch.tensor([1.0])}, path)

    def broken_save(obj, f, *a, **k):
        f.write(b"partial")  # a torn write, then the failure
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_atomic({"v": torch.tensor([2.0])}, path)
    monkeypatch.undo()
    assert torch.load(path, weights_only=True)["v"].item() == 1.0
    assert os.listdir(tmp_path) == ["ck.pt"]  # no temporary left behind


def test_early_stopping_restores_the_best_state(monkeypatch):
    seqs = random_sequences(n_users=30, n_items=20)
    split = leave_one_out(seqs)
    cfg = _cfg(epochs=20, patience=2)
    net = build_model(cfg, 20)
    tr = Trainer(net, split, cfg)
    scores = iter([0.5, 0.4, 0.3, 0.2, 0.9, 0.9])
    snapshots = []

    def fake_eval(which="valid", **kw):
        snapshots.append({k: v.clone() for k, v in net.state_dict().items()})
        return {"ndcg@10": next(scores)}

    monkeypatch.setattr(tr, "evaluate", fake_eval)
    res = tr.fit()
    assert res.stopped_early and res.epochs_run == 4 and res.best_epoch == 1
    for k, v in net.state_dict().items():
        torch.testing.assert_close(v, snapshots[0][k])


def test_bad_inputs_get_clear_errors():
    seqs = random_sequences(n_users=20, n_items=15)
    with pytest.raises(ValueError, match="rows"):
        run_experiment(_cfg(init="pca", embeddings="x", hidden=8),
                       data=RunData("toy", seqs, np.ones((14, 16), np.float32)), verbose=False)
    bad = np.random.default_rng(0).normal(size=(15, 16)).astype(np.float32)
    bad[4, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        run_experiment(_cfg(init="pca", embeddings="x", hidden=8),
                       data=RunData("toy", seqs, bad), verbose=False)
    with pytest.raises(ValueError, match="0..n_items-1"):
        Sequences.from_lists([[1, 2, 30]], n_items=15)
    with pytest.raises(ValueError, match="needs item embeddings"):
        Config(init="recpca", embeddings=None)
    with pytest.raises(ValueError, match="model must be one of"):
        Config(model="transformer")
    empty = Sequences.from_lists([[], [], []], n_items=5)
    with pytest.raises(ValueError, match="no interactions"):
        run_experiment(_cfg(), data=RunData("empty", empty), verbose=False)


def test_empty_and_short_users_are_dropped_with_a_warning():
    lists = random_sequences(n_users=30, n_items=20).to_lists() + [[], [3], [4, 5]]
    seqs = Sequences.from_lists(lists, n_items=20)
    with pytest.warns(UserWarning, match=r"3 user\(s\) with fewer than 3 .*1 empty"):
        res = run_experiment(_cfg(epochs=1), data=RunData("toy", seqs), verbose=False)
    assert res["dataset"]["n_users"] == 30


def test_pca_init_is_used_and_scaled():
    seqs = random_sequences(n_users=30, n_items=20)
    emb = np.random.default_rng(0).normal(size=(20, 24)).astype(np.float32)
    res, tr = run_experiment(_cfg(init="pca", embeddings="x", hidden=8, epochs=1),
                             data=RunData("toy", seqs, emb), verbose=False,
                             return_trainer=True)
    assert res["metrics"]["test"]["ndcg@10"] >= 0
    assert res["config"]["init"] == "pca"


def test_diverged_training_raises_instead_of_scoring(monkeypatch):
    seqs = random_sequences(n_users=30, n_items=20, max_len=8)
    split = leave_one_out(seqs)
    cfg = _cfg(epochs=3)
    trainer = Trainer(build_model(cfg, split.n_items), split, cfg)
    monkeypatch.setattr(trainer, "train_epoch", lambda progress=None: float("nan"))
    with pytest.raises(FloatingPointError, match="diverged at epoch 1"):
        trainer.fit()


def test_saved_configs_without_new_fields_keep_their_behaviour():
    # A run saved before `positions` / `train_samples` existed used from_end windows: loading
    # its config must give that, and its checkpoint fingerprint must still match.
    from tfllmer_fast.config import LEGACY_DEFAULTS

    old = Config(positions="from_end", train_samples="windows").to_dict()
    for k in LEGACY_DEFAULTS:
        del old[k]
    cfg = Config.from_saved(old)
    assert (cfg.positions, cfg.train_samples) == ("from_end", "windows")
    assert "positions" not in cfg.fingerprint() and "train_samples" not in cfg.fingerprint()
    assert "from_start" in Config().fingerprint()


def test_resume_with_another_configuration_names_the_difference(tmp_path):
    seqs = random_sequences(n_users=30, n_items=20, seed=1)
    data = RunData("toy", seqs)
    run_experiment(_cfg(epochs=1), data=data, output_dir=tmp_path, verbose=False, write_plot=False)
    with pytest.raises(ValueError, match="positions: 'from_start' -> 'from_end'"):
        run_experiment(_cfg(epochs=2, positions="from_end"), data=data, output_dir=tmp_path,
                       verbose=False, write_plot=False)
