"""The scale scripts' bodies on tiny inputs: their runs must agree on the graph."""

import json

import pytest

pytest.importorskip("dask")
pytest.importorskip("distributed")

import scale_dask  # noqa: E402  (benchmarks/ is on sys.path for its own files)


def test_scale_benchmark_runs_agree(tmp_path, capsys):
    argv = ["--workdir", str(tmp_path), "--interactions", "2e5", "--n-items", "500", "--memory-limit", "1GiB"]
    assert scale_dask.main([*argv, "--blocks", "1,4", "--single"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    runs = [r for r in rows if "checksum" in r]
    assert len(runs) == 3 and len({r["checksum"] for r in runs}) == 1 and len({r["nnz"] for r in runs}) == 1
    assert all(r["workers_replaced"] == 0 and not r["max_worker_rss_over_limit"] for r in runs[:2])
