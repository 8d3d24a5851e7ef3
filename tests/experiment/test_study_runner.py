"""The study runner as a user expects it: --seeds, filters with commas, the dataset's study
name, relative data paths, baselines beside every table, marks for capped runs, plots."""

import json

import numpy as np
import pytest

from tfllmer_fast.experiment.baselines import run_baseline
from tfllmer_fast.experiment.cli import main
from tfllmer_fast.experiment.config import Config
from tfllmer_fast.experiment.study import StudySpec

TINY = """
[study]
variants = ["id"]
seeds = [0]
[base]
epochs = 2
threads = 1
progress = false
synthetic_users = 100
synthetic_items = 40
synthetic_dim = 16
hidden = 16
n_layers = 1
[[dataset]]
name = "synthetic"
"""


@pytest.fixture(autouse=True)
def _threads(one_thread):
    yield


def _study(tmp_path, text=TINY):
    cfg = tmp_path / "study.toml"
    cfg.write_text(text)
    return cfg, tmp_path / "out"


def _seeds_in(out):
    summary = json.loads((out / "study.json").read_text())
    return [r["seed"] for r in summary["sections"][0]["variants"]["id"]["runs"]]


def test_seeds_on_the_command_line(tmp_path, capsys):
    cfg, out = _study(tmp_path)
    # a fresh study and --seeds without the grid's seed: nothing can run yet, and it says why
    assert main(["study", "--config", str(cfg), "--output", str(out), "--seeds", "1,2"]) == 0
    assert "selection grid (seed 0) is not finished" in capsys.readouterr().out
    assert not (out / "runs" / "synthetic" / "sasrec").exists()
    assert main(["study", "--config", str(cfg), "--output", str(out), "--quiet"]) == 0
    assert _seeds_in(out) == [0]
    assert main(["study", "--config", str(cfg), "--output", str(out), "--quiet", "--seeds", "1,2"]) == 0
    assert _seeds_in(out) == [0, 1, 2]  # the report has every finished seed
    report = (out / "STUDY.md").read_text()
    assert "| ID-only " in report and "| 3     |" in report
    inv = json.loads((out / "study.json").read_text())["invocations"]
    assert sorted(i["runs_trained"] for i in inv) == [0, 1, 2]
    assert main(["study", "--config", str(cfg), "--output", str(out), "--seeds", "x"]) == 2
    assert "--seeds takes integers" in capsys.readouterr().err


def test_unknown_filter_names_are_errors_and_commas_split(tmp_path, capsys):
    cfg, out = _study(tmp_path)
    assert main(["study", "--config", str(cfg), "--output", str(out), "--variants", "id,tfllmer"]) == 2
    assert "unknown variant(s) tfllmer" in capsys.readouterr().err
    argv = ["study", "--config", str(cfg), "--output", str(out), "--quiet", "--variants", "popularity,last-item"]
    assert main(argv) == 0  # baselines only: seconds, no training
    assert sorted(p.name for p in (out / "runs" / "synthetic" / "baselines").iterdir()) == ["last-item", "popularity"]
    assert not (out / "runs" / "synthetic" / "sasrec").exists()


def test_relative_dataset_path_and_the_study_name(tmp_path, monkeypatch, capsys):
    rng = np.random.default_rng(0)
    folder = tmp_path / "studies" / "data"
    folder.mkdir(parents=True)
    lines = [f"u{u} " + " ".join(str(i) for i in rng.integers(1, 31, size=rng.integers(4, 9))) for u in range(60)]
    (folder / "log.txt").write_text("\n".join(lines) + "\n")
    text = TINY.replace('name = "synthetic"', 'name = "my-shop"\ndataset = "data/log.txt"\nembeddings = "none"')
    cfg, out = _study(tmp_path / "studies", text)
    assert StudySpec.from_file(cfg).datasets[0].overrides["dataset"] == str(folder / "log.txt")
    monkeypatch.chdir(tmp_path)  # not the study file's folder
    assert main(["study", "--config", str(cfg), "--output", str(out), "--quiet"]) == 0
    r = json.loads(next((out / "runs" / "my-shop" / "sasrec").rglob("results.json")).read_text())
    assert r["dataset"]["name"] == "my-shop" and r["dataset"]["source"] == "log"
    report = (out / "STUDY.md").read_text()
    assert "## my-shop / sasrec" in report
    assert "llm-knn" not in json.dumps(json.loads((out / "study.json").read_text())["sections"][0]["baselines"])


def test_report_marks_capped_runs_shows_baselines_and_names_the_plot_extra(tmp_path, monkeypatch):
    import tfllmer_fast.experiment.study.report as report_module

    cfg, out = _study(tmp_path, TINY.replace("[base]", "[base]\ncold_items = 0.2"))
    monkeypatch.setattr(report_module, "new_figure", lambda **kw: None)  # as without matplotlib
    assert main(["study", "--config", str(cfg), "--output", str(out), "--quiet"]) == 0
    report = (out / "STUDY.md").read_text()
    assert "stopped at the epoch cap while improving" in report  # 2 epochs: still improving
    run = json.loads(next((out / "runs" / "synthetic" / "sasrec").rglob("results.json")).read_text())
    if run["capped_while_improving"]:
        assert f"{run['best_epoch']}/2†" in report
    for name in ("popularity (baseline)", "last item (baseline)", "LLM-kNN (baseline)"):
        assert report.count(name) == 3  # results, item groups, repeat / explore
    assert "cold explore N@10" in report and "explore R@10" in report
    assert "pip install 'tfllmer_fast[plots]'" in report


def test_run_baseline_is_a_results_record():
    cfg = Config(dataset="synthetic", synthetic_users=150, synthetic_items=60, synthetic_dim=16, threads=1)
    r = run_baseline(cfg, "llm-knn")
    assert r["label"] == r["baseline"] == "llm-knn" and r["setting"]["window"] in (1, 3, 5, 10)
    chosen = max(r["selection"]["valid"].values())
    assert r["selection"]["valid"][str(r["setting"]["window"])] == chosen  # chosen on validation
    m = r["metrics"]
    assert m["test_repeat"]["n_targets"] + m["test_explore"]["n_targets"] == m["test"]["n_targets"]
    assert 0 <= r["dataset"]["repeat_share"]["test"]["repeat"] <= 1
    with pytest.raises(ValueError, match="unknown baseline"):
        run_baseline(cfg, "random")
    with pytest.raises(ValueError, match="embeddings"):
        run_baseline(cfg.replace(init="random", embeddings=None), "llm-knn")
