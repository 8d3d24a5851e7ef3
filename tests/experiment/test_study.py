"""The study runner: tables, selection on validation only, resume without retraining."""

import json
import math

import numpy as np
import pytest

from tfllmer_fast.experiment import study
from tfllmer_fast.experiment.cli import main
from tfllmer_fast.experiment.results import fmt_mean_std, mean_std
from tfllmer_fast.experiment.study import StudySpec, grid_points, setting_tag
from tfllmer_fast.experiment.study.report import relative_improvement, results_table

TINY = """
[study]
backbones = ["sasrec"]
variants = ["id", "tfllmer"]
seeds = [0]
[base]
epochs = 2
patience = 2
threads = 1
progress = false
synthetic_users = 120
synthetic_items = 50
synthetic_dim = 24
hidden = 16
[grid]
lam = [0.5, 1.0]
temperature = [1.0]
[[dataset]]
name = "synthetic"
"""


def test_table_maths_on_hand_made_values():
    m, s = mean_std([0.1, 0.2, 0.3])
    assert m == pytest.approx(0.2) and s == pytest.approx(0.1)  # sample std (n-1)
    assert mean_std([0.5]) == (0.5, None)
    assert fmt_mean_std([0.1, 0.2, 0.3]) == "0.2000 ± 0.1000"
    assert fmt_mean_std([0.04]) == "0.0400"
    assert relative_improvement(0.055, 0.05) == pytest.approx(10.0)
    assert relative_improvement(0.045, 0.05) == pytest.approx(-10.0)
    assert math.isnan(relative_improvement(0.1, 0.0))


def _run(metrics_by_seed):
    return [
        {"seed": i, "metrics": {"test": m}, "best_epoch": 3, "epochs_run": 5} for i, m in enumerate(metrics_by_seed)
    ]


def test_results_table_relative_improvements():
    def mk(n10, r10):
        return {"ndcg@10": n10, "recall@10": r10, "ndcg@20": n10, "recall@20": r10}

    group = {
        "variants": {
            "id": {"tag": "default", "runs": _run([mk(0.04, 0.08), mk(0.06, 0.10)])},
            "llminit": {"tag": "default", "runs": _run([mk(0.04, 0.08)])},
            "tfllmer": {"tag": "lam0.5-tau1", "runs": _run([mk(0.06, 0.12), mk(0.06, 0.12)])},
        }
    }
    table = results_table(group)
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[1:-1]] for line in table.splitlines()[2:]}
    tf = rows["TF-LLMER (Rec-PCA + norm)"]
    # means: ID 0.05/0.09, LLMInit 0.04/0.08, TF-LLMER 0.06/0.12
    assert tf[3] == "0.0600 ± 0.0000"
    assert tf[-6:-2] == ["+20.0%", "+33.3%", "+50.0%", "+50.0%"]
    assert rows["ID-only"][3] == "0.0500 ± 0.0141"
    assert rows["ID-only"][-6] == "–"


def test_grid_only_where_it_matters():
    spec = StudySpec.from_dict(
        {
            "study": {"variants": ["id", "pca+norm", "recpca", "tfllmer"]},
            "grid": {"lam": [0.5, 1.0], "graph_window": ["none", 5], "temperature": [1.0, 0.5]},
            "dataset": [{"name": "synthetic"}],
        }
    )
    ds = spec.datasets[0]
    assert grid_points(ds, "id") == [{}]
    assert len(grid_points(ds, "pca+norm")) == 2
    assert len(grid_points(ds, "recpca")) == 4
    assert len(grid_points(ds, "tfllmer")) == 8
    assert {"lam": 0.5, "graph_window": None, "temperature": 1.0} in grid_points(ds, "tfllmer")
    assert setting_tag({"lam": 0.5, "graph_window": None, "temperature": 1.0}) == "lam0.5-wnone-tau1"


def test_bad_study_files():
    with pytest.raises(ValueError, match="variant"):
        StudySpec.from_dict({"study": {"variants": ["nope"]}, "dataset": [{"name": "x"}]})
    with pytest.raises(ValueError, match="grid key"):
        StudySpec.from_dict({"grid": {"lr": [1]}, "dataset": [{"name": "synthetic"}]})
    with pytest.raises(ValueError, match="unknown config key"):
        StudySpec.from_dict({"dataset": [{"name": "synthetic", "epoch": 3}]})
    with pytest.raises(ValueError, match="no \\[\\[dataset"):
        StudySpec.from_dict({"study": {}})


@pytest.mark.filterwarnings("ignore:.*eigenvalues of M are <= 0:RuntimeWarning")  # lam = 1 here
def test_study_runs_writes_tables_and_resumes(tmp_path, monkeypatch, one_thread):
    cfg = tmp_path / "tiny.toml"
    cfg.write_text(TINY)
    out = tmp_path / "study"
    assert main(["study", "--config", str(cfg), "--output", str(out), "--quiet"]) == 0
    report = (out / "STUDY.md").read_text()
    assert "## synthetic / sasrec" in report
    assert "ID-only" in report and "TF-LLMER" in report
    assert "Selection grid" in report and "lam0.5-tau1" in report and "lam1-tau1" in report
    assert (out / "plots" / "loss-synthetic-sasrec.png").stat().st_size < 200_000
    summary = json.loads((out / "study.json").read_text())
    g = summary["sections"][0]
    tf = g["variants"]["tfllmer"]
    # the chosen setting has the best *validation* metric of the grid
    best = max(tf["grid"], key=lambda r: r["valid"])
    assert tf["setting"] == best["setting"] and best["chosen"]
    for v in ("id", "tfllmer"):
        cond = g["variants"][v]["runs"][0]["conditioning"]
        for stage in ("init", "trained"):
            assert cond[stage]["condition_number"] >= 1 and np.isfinite(cond[stage]["lambda_max"])
    # 3 runs: id + 2 grid points (the chosen point's seed-0 run is reused)
    assert len(list((out / "runs" / "synthetic" / "sasrec").rglob("results.json"))) == 3
    # the three baselines, once per dataset, with rows in the tables
    assert sorted(p.parent.name for p in (out / "runs" / "synthetic" / "baselines").rglob("results.json")) == [
        "last-item",
        "llm-knn",
        "popularity",
    ]
    assert "popularity (baseline)" in report and "LLM-kNN (baseline)" in report

    # second invocation: nothing is trained
    def boom(*a, **k):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(study.runner, "run_job", boom)
    assert main(["study", "--config", str(cfg), "--output", str(out), "--quiet"]) == 0
    inv = json.loads((out / "study.json").read_text())["invocations"]
    assert sorted(i["runs_trained"] for i in inv) == [0, 3]
    assert "## Time" in (out / "STUDY.md").read_text()


def test_missing_conditioning_is_recomputed_without_training(tmp_path, monkeypatch, one_thread):
    import tfllmer_fast.experiment.study.runner as runner

    cfg = tmp_path / "tiny.toml"
    cfg.write_text(TINY.replace('variants = ["id", "tfllmer"]', 'variants = ["id"]'))
    out = tmp_path / "study"
    assert main(["study", "--config", str(cfg), "--output", str(out), "--quiet"]) == 0
    cond_path = next((out / "runs").rglob("conditioning.json"))
    before = json.loads(cond_path.read_text())
    cond_path.unlink()

    def boom(*a, **k):
        raise AssertionError("trained again")

    monkeypatch.setattr(runner, "run_experiment", boom)
    assert main(["study", "--config", str(cfg), "--output", str(out), "--quiet"]) == 0
    after = json.loads(cond_path.read_text())
    # same initial model (same seed) and the checkpoint's best state give the same figures
    for stage in ("init", "trained"):
        assert after[stage]["condition_number"] == pytest.approx(before[stage]["condition_number"], rel=1e-6)
