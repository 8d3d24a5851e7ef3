"""python_vs_cli.py's body on a tiny run: both entry points train and give the same metrics."""

import json

import python_vs_cli  # benchmarks/ is on sys.path for its own files


def test_python_and_cli_runs_agree(capsys):
    argv = ["--rounds", "1", "--epochs", "1", "--users", "150", "--items", "80", "--threads", "1"]
    assert python_vs_cli.main(argv) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert {r.get("entry") for r in rows[:-1]} == {"python", "cli"}
    assert rows[-1]["same_metrics"] is True
