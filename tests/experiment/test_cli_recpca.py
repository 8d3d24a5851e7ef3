"""The command line on a catalogue with fewer items than embedding dimensions and lam > 1,
where Rec-PCA's M has a null space (see tfllmer_fast.graph.recpca_problem)."""

import json

import numpy as np
import pytest

from tfllmer_fast.experiment.cli import main


@pytest.fixture(autouse=True)
def _threads(one_thread):
    yield


# 300 items of 384-d embeddings, 16 components, lam 1.5: the cost model's matrix-free path,
# which cannot resolve the null space, used to end here in a RecPCAConvergenceError.
SMALL = ["--synthetic-users", "300", "--synthetic-items", "300", "--synthetic-dim", "384", "--lam", "1.5"]
SMALL += ["--threads", "1", "--hidden", "16"]


def _warnings(err: str, command: str) -> list[str]:
    lines = [line for line in err.splitlines() if line.strip()]
    assert all(line.startswith(f"tfllmer-fast {command}: warning: ") for line in lines), lines
    return lines


@pytest.mark.filterwarnings("default::RuntimeWarning")  # shown to the user, not raised
def test_reduce_with_fewer_items_than_dimensions(tmp_path, capsys):
    assert main(["reduce", *SMALL, "--out", str(tmp_path / "z.npz")]) == 0
    out, err = capsys.readouterr()
    [warning] = _warnings(err, "reduce")
    assert "M has rank <= 299" in warning and "Use a smaller lam" in warning
    assert "-> (300, 16)" in out
    with np.load(tmp_path / "z.npz") as z:
        assert z["Z"].shape == (300, 16) and np.isfinite(z["Z"]).all()
        np.testing.assert_allclose(z["components"].T @ z["components"], np.eye(16), atol=1e-10)


@pytest.mark.filterwarnings("default::RuntimeWarning")
def test_run_with_fewer_items_than_dimensions(tmp_path, capsys):
    argv = ["run", *SMALL, "--init", "recpca", "--epochs", "1", "--no-progress", "--n-layers", "1"]
    assert main([*argv, "--output", str(tmp_path / "r")]) == 0
    out, err = capsys.readouterr()
    assert any("M has rank <= 299" in line for line in _warnings(err, "run"))
    res = json.loads((tmp_path / "r" / "results.json").read_text())
    assert res["config"]["lam"] == 1.5 and 0 <= res["metrics"]["test"]["ndcg@10"] <= 1
