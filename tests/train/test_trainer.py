import dataclasses
import os

import numpy as np
import pytest
import torch

from tests.helpers import random_sequences, run_interrupted
from tfllmer_fast.data import Dataset
from tfllmer_fast.data.sequences import Sequences, leave_one_out
from tfllmer_fast.experiment.config import Config
from tfllmer_fast.experiment.run import build_run_model, make_trainer, run_experiment
from tfllmer_fast.train.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from tfllmer_fast.train.rows import build_prefixes, build_windows
from tfllmer_fast.train.runtime import seed_everything


@pytest.fixture(autouse=True)
def _threads(one_thread):
    yield


def _cfg(**kw):
    base = dict(
        init="random",
        embeddings=None,
        hidden=16,
        max_len=6,
        n_layers=1,
        epochs=4,
        batch_size=8,
        progress=False,
        threads=1,
        seed=0,
    )
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
            rows.append(s[start : end + 1])
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
    expected = [s[max(0, t - M) : t + 1] for s in seqs.to_lists() for t in range(1, len(s))]
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
        model = build_run_model(cfg, split.n_items)
        tr = make_trainer(cfg, model, split)
        losses[mode] = tr.train_epoch()
    assert losses["prefixes"] == pytest.approx(losses["windows"], rel=1e-5)


def test_prefixes_need_a_next_item_model():
    seqs = random_sequences(n_users=12, n_items=20, seed=4)
    split = leave_one_out(seqs)
    cfg = _cfg(model="bert4rec", train_samples="prefixes")
    with pytest.raises(ValueError, match="prefixes"):
        make_trainer(cfg, build_run_model(cfg, split.n_items), split)


@pytest.mark.parametrize(
    "model,samples", [("sasrec", "windows"), ("bert4rec", "windows"), ("gru4rec", "windows"), ("sasrec", "prefixes")]
)
def test_resume_after_interruption_gives_the_same_result(tmp_path, model, samples):
    seqs = random_sequences(n_users=60, n_items=30, seed=1)
    data = Dataset("toy", seqs, None, None)
    cfg = _cfg(model=model, dropout=0.3, train_samples=samples)

    full = run_experiment(cfg, data=data, output_dir=tmp_path / "a")

    run_interrupted(cfg, data, tmp_path / "b", after_epoch=2)
    ck = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)
    assert ck["epoch"] == 2
    resumed = run_experiment(cfg, data=data, output_dir=tmp_path / "b")
    assert [h["train_loss"] for h in resumed["history"]] == [h["train_loss"] for h in full["history"]]
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
        tr = make_trainer(cfg, build_run_model(cfg, split.n_items), split, checkpoint_path=tmp_path / folder / "ck.pt")
        monkeypatch.setattr(tr, "evaluate", lambda which="valid", **kw: {"ndcg@10": scores[len(tr.result.history)]})
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


def test_writing_extra_state_after_fit_keeps_the_last_epochs_training_state(tmp_path, monkeypatch):
    # After fit the model holds the best state; a checkpoint rewritten then (e.g. with the
    # aligned map of new items) must still resume from the last epoch, not from the best.
    split = leave_one_out(random_sequences(n_users=40, n_items=25, seed=4))
    cfg = _cfg(epochs=3, patience=5, dropout=0.3)
    tr = make_trainer(cfg, build_run_model(cfg, split.n_items), split, checkpoint_path=tmp_path / "ck.pt")
    scores = iter([0.5, 0.1, 0.1])  # best epoch 1, last epoch 3
    monkeypatch.setattr(tr, "evaluate", lambda which="valid", **kw: {"ndcg@10": next(scores)})
    tr.fit()
    before = load_checkpoint(tmp_path / "ck.pt")
    tr.extra_state["items"] = {"note": "written after fit"}
    tr.save_checkpoint()
    after = load_checkpoint(tmp_path / "ck.pt")
    assert after["items"] == {"note": "written after fit"} and after["epoch"] == 3
    for k, v in before["model"].items():
        assert torch.equal(after["model"][k], v)  # the last epoch's weights
    assert any(not torch.equal(after["model"][k], v) for k, v in after["best_state"].items())
    assert torch.equal(after["rng"]["torch"], before["rng"]["torch"])


def test_checkpoint_mismatch_is_refused(tmp_path):
    seqs = random_sequences(n_users=30, n_items=20)
    data = Dataset("toy", seqs, None, None)
    run_experiment(_cfg(epochs=1), data=data, output_dir=tmp_path)
    with pytest.raises(ValueError, match="different configuration"):
        run_experiment(_cfg(epochs=1, lr=0.01), data=data, output_dir=tmp_path)


def test_save_atomic_keeps_the_old_file_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "ck.pt"
    save_checkpoint({"v": torch.tensor([1.0])}, path)

    def broken_save(obj, f, *a, **k):
        f.write(b"partial")  # a torn write, then the failure
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint({"v": torch.tensor([2.0])}, path)
    monkeypatch.undo()
    assert load_checkpoint(path)["v"].item() == 1.0
    assert os.listdir(tmp_path) == ["ck.pt"]  # no temporary left behind


def test_early_stopping_restores_the_best_state(monkeypatch):
    seqs = random_sequences(n_users=30, n_items=20)
    split = leave_one_out(seqs)
    cfg = _cfg(epochs=20, patience=2)
    net = build_run_model(cfg, 20)
    tr = make_trainer(cfg, net, split)
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
        run_experiment(
            _cfg(init="pca", embeddings="x", hidden=8), data=Dataset("toy", seqs, np.ones((14, 16), np.float32), None)
        )
    bad = np.random.default_rng(0).normal(size=(15, 16)).astype(np.float32)
    bad[4, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        run_experiment(_cfg(init="pca", embeddings="x", hidden=8), data=Dataset("toy", seqs, bad, None))
    with pytest.raises(ValueError, match="0..n_items-1"):
        Sequences.from_lists([[1, 2, 30]], n_items=15)
    with pytest.raises(ValueError, match="needs item embeddings"):
        Config(init="recpca", embeddings=None)
    with pytest.raises(ValueError, match="model must be one of"):
        Config(model="transformer")
    empty = Sequences.from_lists([[], [], []], n_items=5)
    with pytest.raises(ValueError, match="no interactions"):
        run_experiment(_cfg(), data=Dataset("empty", empty, None, None))


def test_empty_and_short_users_are_dropped_with_a_warning():
    lists = random_sequences(n_users=30, n_items=20).to_lists() + [[], [3], [4, 5]]
    seqs = Sequences.from_lists(lists, n_items=20)
    with pytest.warns(UserWarning, match=r"3 user\(s\) with fewer than 3 .*1 empty"):
        res = run_experiment(_cfg(epochs=1), data=Dataset("toy", seqs, None, None))
    assert res["dataset"]["n_users"] == 30


def test_pca_init_is_used_and_scaled():
    seqs = random_sequences(n_users=30, n_items=20)
    emb = np.random.default_rng(0).normal(size=(20, 24)).astype(np.float32)
    res = run_experiment(_cfg(init="pca", embeddings="x", hidden=8, epochs=1), data=Dataset("toy", seqs, emb, None))
    assert res["metrics"]["test"]["ndcg@10"] >= 0
    assert res["config"]["init"] == "pca"
    # the result reads as the dict of results.json that runs used to return
    assert "metrics" in res and dict(res) == res.results and res.get("best_epoch") >= 1


def test_diverged_training_raises_instead_of_scoring(monkeypatch):
    seqs = random_sequences(n_users=30, n_items=20, max_len=8)
    split = leave_one_out(seqs)
    cfg = _cfg(epochs=3)
    trainer = make_trainer(cfg, build_run_model(cfg, split.n_items), split)
    monkeypatch.setattr(trainer, "train_epoch", lambda progress=None: float("nan"))
    with pytest.raises(FloatingPointError, match="diverged at epoch 1"):
        trainer.fit()


def test_a_checkpoint_of_another_format_gets_a_clear_message(tmp_path):
    seqs = random_sequences(n_users=30, n_items=20, seed=1)
    data = Dataset("toy", seqs, None, None)
    run_experiment(_cfg(epochs=1), data=data, output_dir=tmp_path)
    path = tmp_path / "checkpoint.pt"
    st = torch.load(path, weights_only=True)
    st["format"] = 1  # what versions before the format check wrote
    torch.save(st, path)
    with pytest.raises(CheckpointError, match="format 1, this version reads format 2"):
        run_experiment(_cfg(epochs=2), data=data, output_dir=tmp_path)
    path.write_bytes(path.read_bytes()[:100])  # truncated by a crash or a full disk
    with pytest.raises(CheckpointError, match="truncated.*--no-resume"):
        run_experiment(_cfg(epochs=2), data=data, output_dir=tmp_path)
    assert "from_start" in Config().fingerprint() and "train_samples" in Config().fingerprint()


def test_resume_with_another_configuration_names_the_difference(tmp_path):
    seqs = random_sequences(n_users=30, n_items=20, seed=1)
    data = Dataset("toy", seqs, None, None)
    run_experiment(_cfg(epochs=1), data=data, output_dir=tmp_path)
    with pytest.raises(ValueError, match="positions: 'from_start' -> 'from_end'"):
        run_experiment(_cfg(epochs=2, positions="from_end"), data=data, output_dir=tmp_path)


def _tiny_split(seed=5):
    return leave_one_out(random_sequences(n_users=60, n_items=40, min_len=3, max_len=14, seed=seed))


def test_static_shapes_pad_batches_without_changing_the_maths():
    # Extra padding columns are masked: without dropout the losses agree to float rounding.
    split = _tiny_split()
    losses = []
    for static in (False, True):
        c = _cfg(dropout=0.0, static_shapes=static, epochs=2)
        seed_everything(0)
        t = make_trainer(c, build_run_model(c, split.n_items), split)
        widths = {
            t.batch_width(t.epoch_order()[a : a + c.batch_size]) for a in range(0, t.windows.shape[0], c.batch_size)
        }
        if static:
            assert all(w % 8 == 0 or w == t.windows.shape[1] for w in widths)
        losses.append([t.train_epoch() for _ in range(2)])
    np.testing.assert_allclose(losses[0], losses[1], rtol=1e-5)


def test_compile_is_off_on_the_cpu():
    split = _tiny_split()
    c = _cfg(compile="reduce-overhead")
    t = make_trainer(c, build_run_model(c, split.n_items), split, device="cpu")
    assert t._next_hidden == t.model.next_hidden
    assert c.fingerprint() == _cfg().fingerprint()  # an execution detail, not the trajectory


def test_resume_on_another_catalogue_is_refused(tmp_path):
    # Same number of items, other keys: the checkpoint's rows would be given to other items.
    seqs = random_sequences(n_users=30, n_items=20, seed=1)
    run_experiment(_cfg(epochs=1), data=Dataset("toy", seqs, None, None), output_dir=tmp_path)
    relabelled = dataclasses.replace(seqs, item_ids=np.array([f"sku-{i}" for i in range(20)]))
    with pytest.raises(CheckpointError, match="another catalogue.*--no-resume"):
        run_experiment(_cfg(epochs=2), data=Dataset("toy", relabelled, None, None), output_dir=tmp_path)


def test_a_trainer_of_the_library_resumes_only_the_model_it_saved(tmp_path):
    from tfllmer_fast.train import ModelOptions, Trainer, TrainOptions, build_model

    split = _tiny_split()
    options = TrainOptions(epochs=1, batch_size=8, progress=False)
    path = tmp_path / "checkpoint.pt"
    Trainer(build_model(ModelOptions(hidden=16, max_len=6), split.n_items), split, options, checkpoint_path=path).fit()
    # Another architecture under the same training options: its own fingerprint says so.
    other = build_model(ModelOptions(hidden=32, max_len=6), split.n_items)
    with pytest.raises(ValueError, match="hidden: 16 -> 32"):
        Trainer(other, split, options.replace(epochs=2), checkpoint_path=path).fit()
    # A model the checkpoint does not fit, under the checkpoint's own identity: the
    # tensors' mismatch is named rather than torch's list of them.
    st = load_checkpoint(path)
    identity = {"config": st["config"], "fingerprint": st["fingerprint"]}
    with pytest.raises(CheckpointError, match="does not fit this model.*another architecture"):
        Trainer(other, split, options.replace(epochs=2), checkpoint_path=path, identity=identity).fit()


def test_resume_keeps_the_selection_of_the_best_epoch(tmp_path):
    # The protocol and masking of validation choose the best epoch: they must not change
    # under a resumed run. Full and both select alike; the final evaluation may change.
    seqs = random_sequences(n_users=30, n_items=20, seed=1)
    data = Dataset("toy", seqs, None, None)
    run_experiment(_cfg(epochs=1), data=data, output_dir=tmp_path)
    with pytest.raises(CheckpointError, match="selection_protocol: '\\(absent\\)' -> 'sampled'"):
        run_experiment(_cfg(epochs=2, protocol="sampled"), data=data, output_dir=tmp_path)
    with pytest.raises(CheckpointError, match="selection_mask_history"):
        run_experiment(_cfg(epochs=2, mask_history=True), data=data, output_dir=tmp_path)
    resumed = run_experiment(_cfg(epochs=2, protocol="both"), data=data, output_dir=tmp_path)
    assert len(resumed["history"]) == 2
    assert _cfg(protocol="sampled", eval_negatives=50).fingerprint() != _cfg(protocol="sampled").fingerprint()
