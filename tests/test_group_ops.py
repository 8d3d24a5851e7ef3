"""benchmarks/group_ops.py as a check: stacked leaves give one gradient per parameter per
step, whatever K; the members' own leaves give K."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from group_ops import count_ops  # noqa: E402


def test_stacked_leaves_accumulate_one_gradient_per_parameter(one_thread):
    n_params = 28  # SASRec, 2 layers: tables, LayerNorms, 4 linear layers per block
    own = count_ops("synthetic", 3, 1, False, "cpu")
    stacked = count_ops("synthetic", 3, 1, True, "cpu")
    assert not own["leaves"] and stacked["leaves"]
    assert own["grad_accumulations_per_step"] == 3 * n_params
    assert stacked["grad_accumulations_per_step"] == n_params
    assert stacked["ops_per_step"] < own["ops_per_step"]
