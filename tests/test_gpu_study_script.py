"""benchmarks/gpu_study.py on the CPU with a tiny grid: caps, report, resume."""

import importlib.util
import json
from pathlib import Path

import pytest

TINY = """
[study]
backbones = ["sasrec", "gru4rec"]
variants = ["id", "tfllmer"]
seeds = [0, 1]
[base]
epochs = 2
patience = 2
threads = 1
progress = false
synthetic_users = 100
synthetic_items = 40
synthetic_dim = 24
hidden = 16
max_len = 8
[grid]
lam = [0.25, 0.5]
temperature = [1.0]
[[dataset]]
name = "synthetic"
"""


@pytest.fixture(scope="module")
def gpu_study():
    path = Path(__file__).resolve().parent.parent / "benchmarks" / "gpu_study.py"
    spec = importlib.util.spec_from_file_location("gpu_study", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_tiny_grid_on_the_cpu_with_caps_and_resume(gpu_study, tmp_path, one_thread, capsys):
    cfg = tmp_path / "tiny.toml"
    cfg.write_text(TINY)
    out = tmp_path / "study"
    args = ["--config", str(cfg), "--output", str(out), "--device", "cpu", "--hard-s", "300"]
    # A spent budget trains nothing but still writes the report and the summary.
    assert gpu_study.main(args + ["--budget-s", "0"]) == 0
    rec = json.loads((out / "gpu_study.json").read_text())
    assert rec["runs_finished"] == 0 and rec["runs_total"] == 2 * (1 + 1 + 2 + 1)
    assert rec["stopped_by"] == "budget"
    assert (out / "STUDY.md").exists()
    # The next call trains everything (the two backbones' grid runs in groups).
    assert gpu_study.main(args + ["--budget-s", "240"]) == 0
    rec = json.loads((out / "gpu_study.json").read_text())
    assert rec["runs_finished"] == rec["runs_total"] == 10 and rec["stopped_by"] is None
    log = capsys.readouterr().out
    assert "(group of 3)" in log  # id + 2 tfllmer grid points of one backbone
    study = (out / "STUDY.md").read_text()
    assert "sasrec" in study and "gru4rec" in study
    r = json.loads(next(out.glob("runs/**/results.json")).read_text())
    assert r["epochs_run"] == 2
    # A finished study is skipped on the next call.
    assert gpu_study.main(args + ["--budget-s", "240"]) == 0
    assert "group of" not in capsys.readouterr().out
