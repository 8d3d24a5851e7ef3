"""The device check script's body on the CPU with small data: every part runs and reports."""

import json

import torch

import gpu_checks  # benchmarks/ is on sys.path for its own files


def test_every_part_runs_on_the_cpu_in_small_mode(tmp_path, capsys):
    out = tmp_path / "checks.json"
    threads = torch.get_num_threads()  # the script takes one thread on the CPU
    try:
        assert gpu_checks.main(["--device", "cpu", "--small", "--scale-steps", "3", "--json", str(out)]) == 0
    finally:
        torch.set_num_threads(threads)
    rec = json.loads(out.read_text())
    assert set(rec["epoch"]) == {"default", "compiled"}
    assert rec["large_batch"]["targets_per_s"] > 0 and rec["large_batch"]["flops_per_target_estimate"] > 0
    assert rec["scale"]["steps"] == 3 and rec["scale"]["epoch_s"] is None  # a probe, not an epoch
    assert "[scale]" in capsys.readouterr().out


def test_the_flop_estimate_grows_with_the_catalogue_and_the_width():
    small = gpu_checks.flops_per_target(64, 256, 2, 10, 1000)
    assert gpu_checks.flops_per_target(64, 256, 2, 10, 2000) > small
    assert gpu_checks.flops_per_target(64, 256, 2, 20, 1000) > small
