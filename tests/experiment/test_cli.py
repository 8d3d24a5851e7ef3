import argparse
import json

import pytest

from tfllmer_fast.experiment import cli
from tfllmer_fast.experiment.cli import build_parser, config_from_args, main
from tfllmer_fast.experiment.config import Config


@pytest.fixture(autouse=True)
def _threads(one_thread):
    yield


TINY = [
    "--synthetic-users",
    "150",
    "--synthetic-items",
    "60",
    "--epochs",
    "2",
    "--no-progress",
    "--threads",
    "1",
    "--hidden",
    "16",
    "--n-layers",
    "1",
]


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
    out = _run_ok(["evaluate", str(tmp_path / "r" / "checkpoint.pt"), "--json", str(tmp_path / "eval.json")], capsys)
    ev = json.loads((tmp_path / "eval.json").read_text())
    assert ev["metrics"]["test"] == pytest.approx(res["metrics"]["test"])
    out = _run_ok(
        ["evaluate", str(tmp_path / "r" / "checkpoint.pt"), "--protocol", "sampled", "--split", "test"], capsys
    )
    assert "test_sampled" in out

    # a second seed, then compare groups the two seeds
    _run_ok(["run", *TINY, "--init", init, "--seed", "1", "--output", str(tmp_path / "s")], capsys)
    out = _run_ok(["compare", str(tmp_path)], capsys)
    assert "±" in out and "| 2 " in out


def test_config_file_and_flag_override(tmp_path):
    toml = tmp_path / "c.toml"
    toml.write_text(
        '[model]\nmodel = "gru4rec"\nhidden = 32\n[train]\nepochs = 3\nembeddings = "none"\ninit = "random"\n'
    )
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
    _run_ok(
        [
            "run",
            "--dataset",
            "scientific",
            "--init",
            init,
            "--epochs",
            "2",
            "--no-progress",
            "--threads",
            "1",
            "--output",
            str(tmp_path / "sci"),
        ],
        capsys,
    )
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
    _run_ok(
        ["reduce", *common, "--graph", str(tmp_path / "g.npz"), "--dim", "16", "--out", str(tmp_path / "z.npz")], capsys
    )
    with np.load(tmp_path / "z.npz") as z:
        assert z["Z"].shape == (60, 16)
    _run_ok(["train", *TINY, "--item-table", str(tmp_path / "z.npz"), "--output", str(tmp_path / "t")], capsys)
    assert (tmp_path / "t" / "results.json").exists()


def test_a_bad_item_table_file_is_an_error_line(tmp_path, capsys):
    import numpy as np

    out = str(tmp_path / "t")
    truncated = tmp_path / "cut.npz"
    np.savez(truncated, Z=np.zeros((60, 4)), components=np.zeros((8, 4)), mean=np.zeros(8))
    truncated.write_bytes(truncated.read_bytes()[:60])
    without_z = tmp_path / "noz.npz"
    np.savez(without_z, components=np.zeros((8, 4)), mean=np.zeros(8))
    for path, message in ((truncated, "zip"), (without_z, "no 'Z' array")):
        assert main(["train", *TINY, "--item-table", str(path), "--output", out]) == 2
        err = capsys.readouterr().err
        assert err.startswith("tfllmer-fast train: error:") and message in err and "Traceback" not in err


@pytest.mark.parametrize(
    "argv,epochs,patience",
    [
        ([], 8, 3),
        (["run"], 200, 10),
        (["run", "--seed", "1"], 200, 10),
        (["run", "--preset", "quick"], 8, 3),
        (["run", "--preset", "quick", "--epochs", "5"], 5, 3),
    ],
)
def test_run_length_depends_only_on_the_flags_given(argv, epochs, patience, monkeypatch, capsys):
    seen = {}

    def fake_run(args):
        seen["config"] = config_from_args(args)
        return 0

    monkeypatch.setattr(cli.commands, "cmd_run", fake_run)
    assert cli.main(argv) == 0
    cfg = seen["config"]
    assert (cfg.epochs, cfg.patience, cfg.dataset) == (epochs, patience, "synthetic")
    if not argv:  # the demo says what it runs
        assert "--preset quick" in capsys.readouterr().out


# ----- what a newcomer meets: each case mended, each with its test ---------------------------
TINY_RUN = ["run", *TINY, "--init", "random", "--embeddings", "none"]


def test_a_flag_given_as_none_overrides_the_file(tmp_path):
    toml = tmp_path / "c.toml"
    toml.write_text('graph_window = 5\nembeddings = "feat512"\ninit = "pca"\n')
    parser = build_parser()
    cfg = config_from_args(
        parser.parse_args(
            ["run", "--config", str(toml), "--graph-window", "none", "--embeddings", "none", "--init", "random"]
        )
    )
    assert (cfg.graph_window, cfg.embeddings, cfg.init) == (None, None, "random")
    cfg = config_from_args(parser.parse_args(["run", "--config", str(toml)]))
    assert (cfg.graph_window, cfg.embeddings) == (5, "feat512")  # unset flags leave the file
    cfg = config_from_args(parser.parse_args(["run", "--threads", "none", "--grad-clip", "none", "--kcore", "none"]))
    assert (cfg.threads, cfg.grad_clip, cfg.kcore) == (None, None, None)


def _fails(argv, capsys, *, expect):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert expect in err, err
    return err


def test_no_cuda_is_a_one_line_error_before_any_work(tmp_path, capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = tmp_path / "r"
    _fails(
        [*TINY_RUN, "--device", "cuda", "--output", str(out)],
        capsys,
        expect="CUDA is not available on this machine: use --device cpu",
    )
    assert not out.exists()


def test_an_unwritable_output_folder_fails_before_training(tmp_path, capsys, monkeypatch):
    import tfllmer_fast.experiment.run as run_mod

    monkeypatch.setattr(run_mod, "run_experiment", lambda *a, **k: pytest.fail("training started"))
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    _fails([*TINY_RUN, "--output", str(blocker / "run")], capsys, expect=f"cannot write to {blocker / 'run'}")


def test_a_truncated_checkpoint_names_the_way_out(tmp_path, capsys):
    out = tmp_path / "r"
    assert main([*TINY_RUN, "--epochs", "1", "--output", str(out)]) == 0
    ck = out / "checkpoint.pt"
    ck.write_bytes(ck.read_bytes()[:200])
    capsys.readouterr()
    _fails([*TINY_RUN, "--epochs", "2", "--output", str(out)], capsys, expect="--no-resume")
    assert main([*TINY_RUN, "--epochs", "1", "--output", str(out), "--no-resume"]) == 0


def test_a_missing_optional_package_is_one_line(tmp_path, capsys, monkeypatch):
    import tfllmer_fast.data.tables as tables

    def no_pandas():
        raise ImportError("reading tables needs pandas (the data extra): pip install 'pandas>=2' pyarrow")

    monkeypatch.setattr(tables, "import_pandas", no_pandas)
    log = tmp_path / "log.csv"
    log.write_text("user_id,item_id\n1,2\n")
    _fails(
        ["run", "--dataset", str(log), "--embeddings", "none", "--init", "random", "--output", str(tmp_path / "r")],
        capsys,
        expect="pip install",
    )


def test_debug_shows_the_traceback(tmp_path, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="CUDA is not available"):
        main(["--debug", *TINY_RUN, "--device", "cuda", "--output", str(tmp_path / "r")])


def test_interrupt_names_the_announced_folder(tmp_path, capsys, monkeypatch):
    import tfllmer_fast.experiment.run as run_mod

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(run_mod, "run_experiment", interrupted)
    monkeypatch.chdir(tmp_path)
    assert main(TINY_RUN) == 130
    cap = capsys.readouterr()
    rel = cap.out.split("run folder ")[1].split()[0]  # announced before any work
    assert f"run again with --output {rel} to resume" in cap.err
    assert not (tmp_path / rel).exists()  # nothing was written: no empty folder is left


def test_a_failed_run_leaves_no_empty_folder_and_abbreviations_are_refused(tmp_path, capsys):
    out = tmp_path / "r"
    _fails([*TINY_RUN, "--lr", "0", "--output", str(out)], capsys, expect="lr must be > 0")
    bad = tmp_path / "bad.csv"
    bad.write_text("user_id,item_id\n1,2\n")
    _fails(["run", "--dataset", str(bad), "--output", str(out)], capsys, expect="needs item embeddings")
    assert not out.exists()
    with pytest.raises(SystemExit):
        main([*TINY_RUN, "--epoch", "2", "--output", str(out)])
    assert "unrecognized arguments: --epoch 2" in capsys.readouterr().err


def test_every_flag_has_help_and_each_command_only_its_own():
    parser = build_parser()
    subs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, sub in subs.choices.items():
        for action in sub._actions:
            if action.option_strings and action.dest != "help":
                assert action.help, f"{name} {action.option_strings} has no help"
    run_help = subs.choices["run"].format_help()
    assert "one of sasrec, gru4rec, bert4rec" in run_help and "one of random, pca, recpca" in run_help
    assert "one of ce, bce, sampled_softmax" in run_help
    graph_help = subs.choices["graph"].format_help()
    assert "--graph-window" in graph_help and "--lr" not in graph_help and "--epochs" not in graph_help
    reduce_help = subs.choices["reduce"].format_help()
    assert "--lam" in reduce_help and "--lr" not in reduce_help


def test_data_lookup_says_where_it_looked(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TFLLMER_DATA", str(tmp_path / "typo"))
    _fails(
        ["run", "--dataset", "beauty", "--output", str(tmp_path / "r")],
        capsys,
        expect=f"TFLLMER_DATA={tmp_path / 'typo'} is not a folder",
    )
    monkeypatch.delenv("TFLLMER_DATA")
    _fails(
        ["run", "--dataset", "beauty", "--output", str(tmp_path / "r")],
        capsys,
        expect="TFLLMER_DATA is unset and no shared/data was found",
    )
    log = tmp_path / "log.csv"
    log.write_text("user_id,item_id\n1,2\n1,-1\n2,3\n")
    _fails(
        ["run", "--dataset", str(log), "--embeddings", "none", "--init", "random", "--output", str(tmp_path / "r")],
        capsys,
        expect="negative id (-1)",
    )


@pytest.mark.filterwarnings("default::RuntimeWarning")  # shown to the user, not raised
def test_outputs_tell_runs_apart(tmp_path, capsys):
    import numpy as np

    assert Config(embeddings="feat512").label != Config(embeddings="minilm").label
    emb = np.random.default_rng(0).normal(size=(60, 24)).astype(np.float32)
    emb[7] = 0  # an item without text: warned once, in one line
    np.save(tmp_path / "e.npy", emb)
    assert (
        main(["run", *TINY, "--init", "pca", "--embeddings", str(tmp_path / "e.npy"), "--output", str(tmp_path / "a")])
        == 0
    )
    out, err = capsys.readouterr()
    err = [line for line in err.splitlines() if line.strip()]
    # Two epochs end at the cap while improving: said in one line too.
    assert err == [
        "tfllmer-fast run: warning: 1 item(s) have an all-zero embedding; they get the projection of the mean",
        "tfllmer-fast run: warning: stopped at the epoch cap while improving: the best validation ndcg@10 is "
        "at epoch 2, the last one allowed; raise epochs (a resumed run trains on)",
    ]
    assert "sasrec-pca+norm-e on synthetic: up to 2 epochs" in out
    assert "results: " in out
    if "plot: " not in out:
        pytest.importorskip("matplotlib")
        pytest.fail("the PNG path is not printed")
    out = _run_ok(["compare", str(tmp_path)], capsys)
    assert str(tmp_path / "a") in out  # the run's folder
    out = _run_ok(["evaluate", str(tmp_path / "a" / "checkpoint.pt")], capsys)
    assert out.startswith("sasrec-pca+norm-e on synthetic, checkpoint ")


def test_packaging_metadata():
    from pathlib import Path

    import tomllib

    root = Path(__file__).resolve().parents[2]
    meta = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    assert meta["license"] == "MIT" and (root / "LICENSE").read_text().startswith("MIT License")
    assert meta["urls"]["Paper"].startswith("https://arxiv.org/abs/")
    readme = (root / "README.md").read_text()
    assert "pip install torch --index-url https://download.pytorch.org/whl/cpu" in readme


def test_graph_ignores_a_training_config_files_init(tmp_path, capsys):
    toml = tmp_path / "train.toml"
    toml.write_text('init = "recpca"\nembeddings = "minilm"\nlr = 0.01\n')
    assert (
        main(
            [
                "graph",
                "--config",
                str(toml),
                "--synthetic-users",
                "150",
                "--synthetic-items",
                "60",
                "--out",
                str(tmp_path / "g.npz"),
            ]
        )
        == 0
    )
    assert (tmp_path / "g.npz").exists()


def test_python_dash_m_runs_the_cli():
    import subprocess
    import sys

    for module in ("tfllmer_fast", "tfllmer_fast.experiment.cli"):
        out = subprocess.run(
            [sys.executable, "-m", module, "graph", "--help"], capture_output=True, text=True, check=True
        ).stdout
        assert "--graph-window" in out


def test_files_that_are_no_checkpoint_and_bad_values_are_one_line(tmp_path, capsys):
    import torch

    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    _fails(["evaluate", str(tmp_path / "other.pt")], capsys, expect="is not a tfllmer_fast checkpoint")
    _fails([*TINY_RUN, "--threads", "0", "--output", str(tmp_path / "r")], capsys, expect="threads must be >= 1")
    for flag, value in (("--eval-batch-size", "-1"), ("--n-layers", "0"), ("--dropout", "1.5")):
        _fails(
            [*TINY_RUN, flag, value, "--output", str(tmp_path / "r")],
            capsys,
            expect=f"{flag[2:].replace('-', '_')} must",
        )


def test_a_diverged_run_is_one_line_with_the_fix(tmp_path, capsys, monkeypatch):
    from tfllmer_fast.train.trainer import Trainer

    monkeypatch.setattr(Trainer, "train_epoch", lambda self, progress=None: float("nan"))
    _fails([*TINY_RUN, "--output", str(tmp_path / "r")], capsys, expect="lower the learning rate")


def test_an_unreadable_checkpoint_outside_training_names_no_resume_flag(tmp_path, capsys):
    bad = tmp_path / "ck.pt"
    bad.write_bytes(b"not a checkpoint")
    for argv in (["evaluate", str(bad)], ["add-items", str(bad), str(bad), "--out", str(tmp_path / "o.pt")]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "cannot be read" in err and "--no-resume" not in err and "retrain" in err


def test_no_progress_still_prints_one_line_per_epoch_and_the_summary_says_why(tmp_path, capsys):
    out = _run_ok(["run", *TINY, "--output", str(tmp_path / "r")], capsys)  # TINY has --no-progress
    assert "epoch   1/2  loss" in out and "epoch   2/2  loss" in out
    r = json.loads((tmp_path / "r" / "results.json").read_text())
    assert r["epoch_cap"] == 2 and set(r["dataset"]["repeat_share"]) == {"valid", "test"}
    assert "test targets that occur in the user's history (repeat)" in out
    assert ("stopped at the epoch cap while improving" in out) == r["capped_while_improving"]
    assert "| test_explore " in out and "| test_head_repeat " in out
    out = _run_ok(["compare", str(tmp_path), "--groups", "repeat,explore"], capsys)
    assert "explore ndcg@10" in out and "head ndcg@10" not in out


def test_a_table_flag_for_another_source_is_an_error_line(capsys):
    assert main(["train", *TINY, "--time-col", "ts"]) == 2
    assert "time_col apply to table sources" in capsys.readouterr().err
