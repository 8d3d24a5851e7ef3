import json

import pytest

from tfllmer_fast.experiment import cli
from tfllmer_fast.experiment.cli import build_parser, config_from_args, main
from tfllmer_fast.experiment.config import Config

from _train_helpers import one_thread


@pytest.fixture(autouse=True)
def _threads(one_thread):
    yield


TINY = ["--synthetic-users", "150", "--synthetic-items", "60", "--epochs", "2",
        "--no-progress", "--threads", "1", "--hidden", "16", "--n-layers", "1"]


def _run_ok(argv, capsys):
    assert main(argv) == 0, capsys.readouterr().err
    return capsys.readouterr().out


def test_run_on_tiny_synthetic_writes_results_and_plot(tmp_path, capsys):
    init = "recpca"
    out = _run_ok(["run", *TINY, "--init", init, "--output", str(tmp_path / "r")], capsys)
    assert "| test " in out and "ndcg@10" in out
    res = json.loads((tmp_path / "r" / "results.json").read_text())
    assert res["config"]["init"] == init and res["config"]["normalize_items"] is True
    assert len(res["history"]) == 2 and all("train_loss" in h for h in res["history"])
    assert {"valid", "test"} <= set(res["metrics"])
    assert 0 <= res["metrics"]["test"]["ndcg@10"] <= 1
    assert res["versions"]["torch"] and res["versions"]["build_info"]["version"]
    pytest.importorskip("matplotlib")
    assert (tmp_path / "r" / "curves.png").stat().st_size > 1000

    # evaluate the saved checkpoint: same test metrics as the run
    out = _run_ok(["evaluate", str(tmp_path / "r" / "checkpoint.pt"), "--json",
                   str(tmp_path / "eval.json")], capsys)
    ev = json.loads((tmp_path / "eval.json").read_text())
    assert ev["metrics"]["test"] == pytest.approx(res["metrics"]["test"])
    out = _run_ok(["evaluate", str(tmp_path / "r" / "checkpoint.pt"), "--protocol", "sampled",
                   "--split", "test"], capsys)
    assert "test_sampled" in out

    # a second seed, then compare groups the two seeds
    _run_ok(["run", *TINY, "--init", init, "--seed", "1", "--output", str(tmp_path / "s")],
            capsys)
    out = _run_ok(["compare", str(tmp_path)], capsys)
    assert "±" in out and "| 2 " in out


def test_config_file_and_flag_override(tmp_path):
    toml = tmp_path / "c.toml"
    toml.write_text('[model]\nmodel = "gru4rec"\nhidden = 32\n[train]\nepochs = 3\n'
                    'embeddings = "none"\ninit = "random"\n')
    args = build_parser().parse_args(["train", "--config", str(toml), "--epochs", "7"])
    cfg = config_from_args(args)
    assert (cfg.model, cfg.hidden, cfg.epochs, cfg.embeddings) == ("gru4rec", 32, 7, None)
    yaml = pytest.importorskip("yaml")
    y = tmp_path / "c.yaml"
    y.write_text(yaml.safe_dump({"model": "bert4rec", "temperature": 0.1, "ks": [1, 10]}))
    cfg = Config.from_file(y)
    assert (cfg.model, cfg.temperature, cfg.ks) == ("bert4rec", 0.1, [1, 10])


def test_bad_config_is_a_clear_error(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text("epoch = 3\n")
    assert main(["run", "--config", str(bad)]) == 2
    assert "unknown config key(s): epoch" in capsys.readouterr().err
    assert main(["run", "--model", "rnn", "--no-progress"]) == 2
    assert "model must be one of" in capsys.readouterr().err


def test_run_on_scientific(data_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TFLLMER_DATA", str(data_dir))
    init = "recpca"
    out = _run_ok(["run", "--dataset", "scientific", "--init", init, "--epochs", "2",
                   "--no-progress", "--threads", "1", "--output", str(tmp_path / "sci")], capsys)
    res = json.loads((tmp_path / "sci" / "results.json").read_text())
    assert res["dataset"]["n_items"] == 1585
    assert res["metrics"]["test"]["recall@20"] > 0.0


def test_graph_reduce_then_train_from_the_table(tmp_path, capsys):
    import numpy as np
    import scipy.sparse as sp

    common = ["--synthetic-users", "150", "--synthetic-items", "60"]
    _run_ok(["graph", *common, "--out", str(tmp_path / "g.npz")], capsys)
    g = sp.load_npz(tmp_path / "g.npz")
    assert g.shape == (60, 60) and (abs(g - g.T)).sum() == 0
    _run_ok(["reduce", *common, "--graph", str(tmp_path / "g.npz"), "--dim", "16",
             "--out", str(tmp_path / "z.npz")], capsys)
    with np.load(tmp_path / "z.npz") as z:
        assert z["Z"].shape == (60, 16)
    _run_ok(["train", *TINY, "--item-table", str(tmp_path / "z.npz"),
             "--output", str(tmp_path / "t")], capsys)
    assert (tmp_path / "t" / "results.json").exists()


@pytest.mark.parametrize("argv,epochs,patience", [([], 8, 3), (["run"], 200, 10),
                                                    (["run", "--seed", "1"], 200, 10),
                                                    (["run", "--preset", "quick"], 8, 3),
                                                    (["run", "--preset", "quick", "--epochs", "5"], 5, 3)])
def test_run_length_depends_only_on_the_flags_given(argv, epochs, patience, monkeypatch, capsys):
    seen = {}

    def fake_run(args):
        seen["config"] = config_from_args(args)
        return 0

    monkeypatch.setattr(cli, "cmd_run", fake_run)
    assert cli.main(argv) == 0
    cfg = seen["config"]
    assert (cfg.epochs, cfg.patience, cfg.dataset) == (epochs, patience, "synthetic")
    if not argv:  # the demo says what it runs
        assert "--preset quick" in capsys.readouterr().out
