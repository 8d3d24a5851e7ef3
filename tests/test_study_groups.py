"""A study trained in groups gives the runs it gives one by one (to float rounding)."""

import json

import pytest

from tfllmer_fast.experiment.study import StudySpec, run_study
from tfllmer_fast.experiment.study.grouped import plan_groups
from tfllmer_fast.experiment.study.spec import jobs_for

TINY = {
    "study": {"backbones": ["sasrec"], "variants": ["id", "tfllmer"], "seeds": [0, 1]},
    "base": {"epochs": 2, "patience": 2, "threads": 1, "progress": False,
             "synthetic_users": 100, "synthetic_items": 40, "synthetic_dim": 24,
             "hidden": 16, "max_len": 8},
    "grid": {"lam": [0.25, 0.5], "temperature": [1.0]},
    "dataset": [{"name": "synthetic"}],
}


def _results(root):
    out = {}
    for p in sorted(root.glob("runs/**/results.json")):
        r = json.loads(p.read_text())
        out[str(p.relative_to(root))] = r
    return out


def test_grouped_study_equals_one_by_one(tmp_path, one_thread):
    spec = StudySpec.from_dict(TINY)
    run_study(spec, tmp_path / "alone", verbose=False, group_size=1)
    run_study(spec, tmp_path / "grouped", verbose=False, group_size=16)
    a, g = _results(tmp_path / "alone"), _results(tmp_path / "grouped")
    assert a.keys() == g.keys() and len(a) == 5
    for k in a:
        assert a[k]["best_epoch"] == g[k]["best_epoch"]
        assert g[k]["timings"]["group_size"] > 1 and "group_size" not in a[k]["timings"]
        for split in ("valid", "test"):
            for m, v in a[k]["metrics"][split].items():
                assert g[k]["metrics"][split][m] == pytest.approx(v, rel=1e-5, abs=1e-7), (k, m)
    assert (tmp_path / "grouped" / "STUDY.md").read_text().count("|") > 10


def test_plan_groups_keeps_what_cannot_be_grouped_alone(tmp_path):
    spec = StudySpec.from_dict({**TINY, "study": {**TINY["study"], "backbones": ["sasrec", "bert4rec"]}})
    ds = spec.datasets[0]
    jobs = [j for b in ("sasrec", "bert4rec") for v in ("id", "tfllmer")
            for j in jobs_for(spec, ds, b, v, tmp_path, False, None)]
    groups = plan_groups(jobs, 2)
    assert sorted(len(g) for g in groups) == [1, 1, 1, 1, 2]  # bert4rec 3 alone; sasrec 2 + 1
    assert all(g[0].backbone == "sasrec" for g in groups if len(g) > 1)


def test_default_group_size_follows_the_device(tmp_path, monkeypatch):
    # No size named: CPU runs train one by one (a CPU group is no faster than lone runs),
    # GPU runs in groups of 16.
    spec = StudySpec.from_dict(TINY)
    ds = spec.datasets[0]
    jobs = [j for v in ("id", "tfllmer") for j in jobs_for(spec, ds, "sasrec", v, tmp_path,
                                                          False, None)]
    assert len(jobs) == 3 and {j.config.device for j in jobs} == {"auto"}
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    assert [len(g) for g in plan_groups(jobs)] == [1, 1, 1]
    assert [len(g) for g in plan_groups(jobs, 16)] == [3]  # variants differ per model only
    monkeypatch.setattr("torch.cuda.is_available", lambda: True)  # "auto" is then CUDA
    assert [len(g) for g in plan_groups(jobs)] == [3]
