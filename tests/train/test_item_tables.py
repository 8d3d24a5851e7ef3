"""Item tables that keep the LLM rows: free / frozen / frozen+delta."""

import json

import numpy as np
import pytest
import torch
from torch import nn

from tests.helpers import random_sequences, run_interrupted
from tfllmer_fast.data import Dataset
from tfllmer_fast.data.cold import choose_cold_items, cold_start_split
from tfllmer_fast.data.sequences import leave_one_out
from tfllmer_fast.experiment.cli import main
from tfllmer_fast.experiment.config import Config
from tfllmer_fast.experiment.run import build_run_model, make_trainer, run_experiment
from tfllmer_fast.experiment.study.spec import StudySpec, grid_points, jobs_for
from tfllmer_fast.graph.item_table import apply_projection
from tfllmer_fast.train.checkpoint import load_checkpoint, model_from_checkpoint
from tfllmer_fast.train.item_tables import FrozenItemTable, delta_stats
from tfllmer_fast.train.new_items import add_items
from tfllmer_fast.train.runtime import seed_everything

MODELS = ["sasrec", "gru4rec", "bert4rec"]


@pytest.fixture(autouse=True)
def _threads(one_thread):
    yield


def _cfg(**kw):
    base = dict(
        init="pca",
        embeddings="given",
        hidden=8,
        max_len=8,
        n_layers=1,
        n_heads=1,
        inner_size=16,
        gru_hidden=8,
        epochs=3,
        patience=5,
        batch_size=16,
        progress=False,
        threads=1,
        seed=0,
        item_table_mode="frozen+delta",
    )
    base.update(kw)
    return Config(**base)


def _split(n_items=24, cold=0.0):
    seqs = random_sequences(n_users=40, n_items=n_items, min_len=4, max_len=10, seed=2)
    split = leave_one_out(seqs)
    if cold:
        split = cold_start_split(split, choose_cold_items(n_items, cold, seed=1))
    return split


def _table(n_items=24, hidden=8, seed=0):
    return np.random.default_rng(seed).normal(0, 0.02, (n_items, hidden)).astype(np.float32)


def _trained(cfg, split, table):
    seed_everything(cfg.seed)
    model = build_run_model(cfg, split.n_items)
    model.set_item_table(table)
    tr = make_trainer(cfg, model, split, resume=False)
    tr.fit()
    return tr


# ----- the options --------------------------------------------------------------------------
def test_free_is_the_default_and_leaves_the_model_and_fingerprint_alone():
    cfg = Config()
    assert cfg.item_table_mode == "free"
    model = build_run_model(cfg, 10)
    assert type(model.item_emb) is nn.Embedding
    fp = json.loads(cfg.fingerprint())
    # the delta's options enter the fingerprint only where a delta exists
    assert fp["item_table"] == "free" and not {"delta_l2", "delta_bound"} & set(fp)
    assert "delta_bound" not in json.loads(cfg.replace(item_table_mode="frozen").fingerprint())
    assert json.loads(cfg.replace(item_table_mode="frozen+delta").fingerprint())["delta_bound"] == 0.25
    assert cfg.label == "sasrec-recpca+norm-minilm"
    assert cfg.replace(item_table_mode="frozen").label == "sasrec-recpca+norm+frozen-minilm"


@pytest.mark.parametrize(
    "bad, match",
    [
        (dict(init="random", embeddings=None, item_table_mode="frozen"), "ID-only"),
        (dict(init="random", embeddings=None, item_table_mode="frozen+delta"), "ID-only"),
        (dict(item_table_mode="frozen+delta", delta_l2=-0.1), "delta_l2 must be"),
        (dict(item_table_mode="frozen+delta", delta_bound=-1.0), "delta_bound must be"),
        (dict(delta_l2=float("nan")), "delta_l2 must be"),
        (dict(delta_bound=float("inf")), "delta_bound must be"),
        (dict(item_table_mode="frozen-ish"), "item_table_mode must be one of"),
    ],
)
def test_bad_options_are_errors_at_configuration_time(bad, match):
    with pytest.raises(ValueError, match=match):
        Config(**bad)


def test_bad_options_fail_before_any_data_is_loaded(tmp_path, capsys):
    # The dataset does not exist: the configuration error must come first.
    missing = str(tmp_path / "no-such-data")
    for flags, text in (
        (["--init", "random", "--embeddings", "none", "--item-table-mode", "frozen"], "ID-only"),
        (["--item-table-mode", "frozen+delta", "--delta-bound", "-1"], "delta_bound must be"),
    ):
        assert main(["train", "--dataset", missing, "--no-progress", *flags]) == 2
        err = capsys.readouterr().err
        assert text in err and "no-such-data" not in err
    assert not (tmp_path / "no-such-data").exists()
    # a study file is checked when it is read, before any dataset is loaded
    with pytest.raises(ValueError, match="ID-only"):
        StudySpec.from_dict(
            {"base": {"item_table_mode": "frozen"}, "study": {"variants": ["id"]}, "dataset": [{"name": missing}]}
        )


# ----- training -----------------------------------------------------------------------------
@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("mode", ["frozen", "frozen+delta"])
@pytest.mark.parametrize("normalize", [True, False])
def test_the_frozen_part_is_bit_identical_after_training(model, mode, normalize):
    split, table = _split(), _table()
    cfg = _cfg(model=model, item_table_mode=mode, normalize_items=normalize)
    tr = _trained(cfg, split, table)
    t = tr.model.item_emb
    assert isinstance(t, FrozenItemTable) and t.mode == mode
    assert torch.equal(t.base[1:], torch.from_numpy(table))
    assert not t.base[0].any()
    assert "item_emb.base" not in dict(tr.model.named_parameters())
    w = t.weight.detach()
    if mode == "frozen":
        assert torch.equal(w[1 : split.n_items + 1], torch.from_numpy(table))
    else:
        assert t.delta.abs().sum() > 0  # the delta did train
        assert torch.equal(w[1 : split.n_items + 1], t.base[1:] + t.delta.detach())
    if model == "bert4rec":  # the mask token is not an item: it trains
        assert t.extra.shape == (1, 8) and t.extra.requires_grad
    assert np.isfinite(tr.result.history[-1]["train_loss"])


@pytest.mark.parametrize("model", MODELS)
def test_the_delta_starts_at_zero_and_stays_within_its_bound(model):
    split, table = _split(), _table()
    cfg = _cfg(model=model, delta_bound=0.05, epochs=2)
    seed_everything(0)
    m = build_run_model(cfg, split.n_items)
    m.set_item_table(table)
    assert m.item_emb.delta is not None and not m.item_emb.delta.any()
    tr = make_trainer(cfg, m, split, resume=False)
    bound_held = []
    tr.callbacks.append(lambda trainer, rec: bound_held.append(delta_stats(trainer.model)))
    tr.fit()
    t = tr.model.item_emb
    ratio = t.delta.detach().norm(dim=1) / t.base[1:].norm(dim=1)
    assert (ratio <= 0.05).all()
    assert ratio.max() > 0.049  # the bound binds: it is what keeps the delta small
    assert all(s["max_ratio"] <= 0.05 for s in bound_held)


def test_the_l2_penalty_is_relative_and_shrinks_the_delta():
    split, table = _split(), _table()
    t = FrozenItemTable(torch.zeros(25, 8), 24, delta=True, delta_l2=2.0)
    t.set_item_rows(torch.from_numpy(table))
    assert t.penalty() == 0
    with torch.no_grad():
        t.delta.copy_(torch.from_numpy(table) * 0.5)
    assert t.penalty().item() == pytest.approx(2.0 * 0.25, rel=1e-6)
    sizes = {}
    for l2 in (0.0, 50.0):
        tr = _trained(_cfg(delta_bound=None, delta_l2=l2, epochs=2), split, table)
        sizes[l2] = delta_stats(tr.model)["rel_energy"]
    assert 0 < sizes[50.0] < sizes[0.0]


@pytest.mark.parametrize("mode", ["frozen", "frozen+delta"])
def test_cold_items_keep_their_projected_row_and_a_zero_delta(mode):
    split, table = _split(cold=0.25), _table()
    cold = split.cold_items
    cfg = _cfg(item_table_mode=mode, weight_decay=0.01, delta_l2=0.1)
    tr = _trained(cfg, split, table)
    w = tr.model.item_emb.weight.detach()
    assert torch.equal(w[torch.as_tensor(cold + 1)], torch.from_numpy(table[cold]))
    if mode == "frozen+delta":
        d = tr.model.item_emb.delta.detach()
        assert not d[torch.as_tensor(cold)].any()
        warm = np.setdiff1d(np.arange(split.n_items), cold)
        assert d[torch.as_tensor(warm)].abs().sum() > 0


def test_frozen_delta_without_bound_or_penalty_trains_like_a_free_table():
    # base + delta with Adam on the delta is the free table reparametrised: the same
    # trajectory up to float rounding.
    split, table = _split(), _table()
    free = _trained(_cfg(item_table_mode="free", epochs=2), split, table)
    delta = _trained(_cfg(delta_bound=None, epochs=2), split, table)
    a = [h["train_loss"] for h in free.result.history]
    b = [h["train_loss"] for h in delta.result.history]
    np.testing.assert_allclose(a, b, rtol=1e-4)
    np.testing.assert_allclose(
        free.model.item_emb.weight.detach().numpy(), delta.model.item_emb.weight.detach().numpy(), atol=1e-5
    )


# ----- runs, checkpoints, new items ---------------------------------------------------------
def _data(n_items=24, dim=12):
    seqs = random_sequences(n_users=40, n_items=n_items, min_len=4, max_len=10, seed=2)
    X = np.random.default_rng(5).standard_normal((n_items, dim)).astype(np.float32)
    return Dataset("toy", seqs, X, None)


@pytest.mark.parametrize("model", ["sasrec", "bert4rec"])
def test_resumed_run_equals_an_unbroken_one(tmp_path, model):
    data = _data()
    cfg = _cfg(model=model, init="recpca", epochs=3, delta_bound=0.3, delta_l2=0.5, dropout=0.3)
    full = run_experiment(cfg, data=data, output_dir=tmp_path / "a")

    run_interrupted(cfg, data, tmp_path / "b", after_epoch=2)
    resumed = run_experiment(cfg, data=data, output_dir=tmp_path / "b")
    assert resumed["resumed_from_epoch"] == 2
    assert [h["train_loss"] for h in resumed["history"]] == [h["train_loss"] for h in full["history"]]
    assert resumed["metrics"] == full["metrics"]
    assert resumed["item_table"] == full["item_table"]
    sa, sb = (load_checkpoint(tmp_path / d / "checkpoint.pt") for d in "ab")
    for key in ("model", "best_state"):
        assert sa[key].keys() == sb[key].keys()
        for k in sa[key]:
            assert torch.equal(sa[key][k], sb[key][k]), (key, k)


@pytest.mark.parametrize("mode", ["frozen", "frozen+delta"])
@pytest.mark.parametrize("normalize", [True, False])
def test_a_new_items_row_equals_its_projection(tmp_path, mode, normalize):
    data = _data()
    cfg = _cfg(item_table_mode=mode, normalize_items=normalize, epochs=2, cold_items=0.2)
    r = run_experiment(cfg, data=data, output_dir=tmp_path)
    assert "metrics_aligned" not in r.results and "aligned_map" not in r.results
    assert r["item_table"]["mode"] == mode
    st = load_checkpoint(tmp_path / "checkpoint.pt")
    assert "aligned" not in st["items"]
    proj = {k: (v.numpy() if torch.is_tensor(v) else v) for k, v in st["items"]["projection"].items()}
    n = st["items"]["n_items"]
    X = np.random.default_rng(9).standard_normal((4, 12)).astype(np.float32)
    new = add_items(st, X, [f"n{i}" for i in range(4)])
    old_model, new_model = model_from_checkpoint(st), model_from_checkpoint(new)
    assert isinstance(new_model.item_emb, FrozenItemTable) and new_model.n_items == n + 4
    rows = new_model.item_emb.weight.detach()[n + 1 : n + 5]
    assert torch.equal(rows, torch.from_numpy(apply_projection(proj, X)))
    assert torch.equal(new_model.item_emb.base[n + 1 :], rows)
    if mode == "frozen+delta":
        assert not new_model.item_emb.delta[n:].any()
    seqs = torch.randint(1, n + 1, (5, 6), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(old_model(seqs), new_model(seqs)[:, :n])
    # the cold items of the run: their rows are their initial (projected) rows, bit for bit;
    # the initial table is computed by the fit, so it equals the stored projection's rows
    # up to rounding
    cold = np.asarray(st["items"]["cold_items"])
    w = old_model.item_emb.weight.detach()[torch.as_tensor(cold + 1)]
    assert torch.equal(w, r.trainer.model.item_emb.base[torch.as_tensor(cold + 1)])
    np.testing.assert_allclose(w.numpy(), apply_projection(proj, data.embeddings[cold]), rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match="projected space"):
        add_items(st, X, method="aligned")


def test_add_items_cli_on_a_frozen_checkpoint(tmp_path, capsys):
    data = _data()
    run_experiment(_cfg(item_table_mode="frozen", epochs=1), data=data, output_dir=tmp_path / "r")
    X = np.random.default_rng(1).standard_normal((3, 12)).astype(np.float32)
    np.savez(tmp_path / "new.npz", embeddings=X)
    ck = str(tmp_path / "r" / "checkpoint.pt")
    assert main(["add-items", ck, str(tmp_path / "new.npz"), "--out", str(tmp_path / "new.pt")]) == 0, (
        capsys.readouterr().err
    )
    m = model_from_checkpoint(load_checkpoint(tmp_path / "new.pt"))
    assert m.n_items == 27
    assert (
        main(["add-items", ck, str(tmp_path / "new.npz"), "--out", str(tmp_path / "x.pt"), "--method", "aligned"]) == 2
    )
    assert "projected space" in capsys.readouterr().err
    assert not (tmp_path / "x.pt").exists()


# ----- the study ----------------------------------------------------------------------------
def test_study_variants_and_the_delta_grid(tmp_path):
    spec = StudySpec.from_dict(
        {
            "study": {
                "variants": [
                    "id",
                    "llminit",
                    "llminit-frozen",
                    "llminit-delta",
                    "tfllmer",
                    "tfllmer-frozen",
                    "tfllmer-delta",
                ]
            },
            "grid": {"delta_bound": [0.25, 0.5], "delta_l2": [0.0], "temperature": [1.0]},
            "dataset": [{"name": "synthetic"}],
        }
    )
    ds = spec.datasets[0]
    assert grid_points(ds, "llminit-frozen") == [{}]
    assert grid_points(ds, "llminit-delta") == [
        {"delta_bound": 0.25, "delta_l2": 0.0},
        {"delta_bound": 0.5, "delta_l2": 0.0},
    ]
    jobs = jobs_for(spec, ds, "sasrec", "tfllmer-delta", tmp_path, False, None)
    assert [j.config.delta_bound for j in jobs] == [0.25, 0.5]
    assert all(j.config.item_table_mode == "frozen+delta" and j.config.normalize_items for j in jobs)
    assert jobs[0].folder.name == "tau1-db0.25-l20-seed0"
    (frozen,) = jobs_for(spec, ds, "sasrec", "llminit-frozen", tmp_path, False, None)
    assert (frozen.config.item_table_mode, frozen.config.init) == ("frozen", "pca")


def test_configs_and_checkpoints_that_name_the_old_field_still_load():
    old = Config.from_dict({"item_table": "frozen+delta", "delta_bound": 0.5})
    assert old.item_table_mode == "frozen+delta"
    # The fingerprint names the field as before, so earlier checkpoints resume.
    assert json.loads(old.fingerprint())["item_table"] == "frozen+delta"
    with pytest.raises(ValueError, match="name the same field"):
        Config.from_dict({"item_table": "frozen", "item_table_mode": "free"})


def test_a_flag_overrides_a_config_file_that_names_the_old_field(tmp_path):
    from tfllmer_fast.experiment.cli import build_parser, config_from_args

    path = tmp_path / "run.toml"
    path.write_text('[model]\nitem_table = "frozen"\n')
    args = build_parser().parse_args(["train", "--config", str(path), "--item-table-mode", "free"])
    assert config_from_args(args).item_table_mode == "free"
    args = build_parser().parse_args(["train", "--config", str(path)])
    assert config_from_args(args).item_table_mode == "frozen"
