"""SASRec on Beauty: training throughput and full-ranking evaluation time.

Default (CI): the first 1,000 Beauty users, one round (seconds). ``TFLLMER_BENCH_FULL=1``: all
22,363 users, 3 rounds. Run timings with ``--benchmark-enable``:

    TFLLMER_BENCH_FULL=1 python -m pytest benchmarks/bench_training.py --benchmark-enable -s

Settings = RecBole's SASRec defaults (hidden 64, 2 layers, 2 heads, inner 256, dropout 0.5,
max length 50, CE loss, Adam 1e-3, batch 256), ID-only (random item table, plain dot product).
``TFLLMER_BENCH_THREADS`` sets torch's CPU threads (default: 1 for the small size, torch's own for the full size).

**RecBole in the same session.** With ``TFLLMER_BENCH_RECBOLE=1`` and RecBole's venv present
(``$TFLLMER_RECBOLE_PYTHON``, default ``.venv-recbole/bin/python`` in the repository root, made by
``benchmarks/recbole/setup_venv.sh``), ``test_recbole_ratio`` runs
``benchmarks/recbole/recbole_sasrec.py`` for one epoch on the same data, device and thread
count, and prints our epoch / evaluation times next to RecBole's and the ratios. Otherwise it
prints the reference figures of DESIGN.md (measured earlier on these machines, *not* in this
session) and says so.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from tfllmer_fast.data.sequences import Sequences, leave_one_out
from tfllmer_fast.experiment.config import Config
from tfllmer_fast.experiment.run import build_run_model, make_trainer

FULL = os.environ.get("TFLLMER_BENCH_FULL") == "1"
ROUNDS = 3 if FULL else 1
N_USERS = None if FULL else 1000
THREADS = (
    int(os.environ["TFLLMER_BENCH_THREADS"]) if os.environ.get("TFLLMER_BENCH_THREADS") else None if FULL else 1
)  # the CI-sized default stays quick on a busy box

#: DESIGN.md reference figures (RecBole 1.2.1 SASRec on Beauty; measured earlier, quiet machine).
RECBOLE_REFERENCE = {"cpu": {"epoch_s": 217.0, "eval_s": 15.3}, "cuda": {"epoch_s": 23.3, "eval_s": 0.24}}
_TIMES: dict[str, float] = {}


@pytest.fixture(scope="module")
def beauty_dir():
    from tfllmer_fast.data.paths import shared_data_dir

    d = shared_data_dir()
    if d is None or not (d / "beauty").is_dir():
        pytest.skip("Beauty not found: set TFLLMER_DATA to the folder holding beauty/")
    return d


def _beauty_trainer(data_dir, **config):
    from tfllmer_fast.data import load_dataset

    ds = load_dataset(data_dir / "beauty", embeddings=None)
    seqs = ds.sequences
    if N_USERS is not None:
        end = seqs.offsets[N_USERS]
        seqs = Sequences(seqs.offsets[: N_USERS + 1], seqs.items[:end], seqs.n_items)
    split = leave_one_out(seqs)
    if THREADS:
        torch.set_num_threads(THREADS)
    cfg = Config(
        init="random",
        embeddings=None,
        normalize_items=False,
        progress=False,
        threads=THREADS,
        dataset="beauty",
        **config,
    )
    torch.manual_seed(0)
    trainer = make_trainer(cfg, build_run_model(cfg, split.n_items), split)
    trainer.train_epoch()  # warm-up (allocator, oneDNN kernels)
    return trainer


@pytest.fixture(scope="module")
def beauty_trainer(beauty_dir):
    """Training windows (every position of a history in one pass; the fastest layout)."""
    return _beauty_trainer(beauty_dir, train_samples="windows")


@pytest.fixture(scope="module")
def beauty_trainer_prefixes(beauty_dir):
    """RecBole's sample layout (one row per target; the default for SASRec): the same epoch
    as RecBole's."""
    return _beauty_trainer(beauty_dir, train_samples="prefixes")


def _sync(trainer):
    if trainer.device.type == "cuda":
        torch.cuda.synchronize(trainer.device)


def _time_epochs(benchmark, tr, key):
    times = []

    def epoch():
        t = time.perf_counter()
        loss = tr.train_epoch()
        _sync(tr)
        times.append(time.perf_counter() - t)
        return loss

    loss = benchmark.pedantic(epoch, rounds=ROUNDS, iterations=1)
    assert np.isfinite(loss)
    med = float(np.median(times))
    n_seq = int(tr.windows.shape[0])
    benchmark.extra_info.update(
        epoch_s=med,
        sequences_per_s=n_seq / med,
        targets_per_s=tr.n_targets / med,
        n_users=tr.split.train.n_users,
        threads=torch.get_num_threads(),
        device=str(tr.device),
    )
    _TIMES[key] = med
    print(
        f"\nSASRec train epoch ({tr.options.train_samples}): {med:.2f} s ({n_seq / med:.0f} rows/s, "
        f"{tr.n_targets / med:.0f} targets/s; {tr.split.train.n_users} users, "
        f"{torch.get_num_threads()} threads, {tr.device})"
    )


def test_sasrec_train_epoch(benchmark, beauty_trainer):
    _time_epochs(benchmark, beauty_trainer, "epoch_s")


def test_sasrec_train_epoch_prefixes(benchmark, beauty_trainer_prefixes):
    _time_epochs(benchmark, beauty_trainer_prefixes, "epoch_prefixes_s")


def test_sasrec_full_ranking(benchmark, beauty_trainer):
    tr = beauty_trainer
    times = []

    def full_pass():
        t = time.perf_counter()
        m = tr.evaluate("test")
        _sync(tr)
        times.append(time.perf_counter() - t)
        return m

    m = benchmark.pedantic(full_pass, rounds=ROUNDS, iterations=1)
    assert 0 <= m["ndcg@10"] <= 1
    med = float(np.median(times))
    benchmark.extra_info.update(eval_s=med, users_per_s=tr.split.train.n_users / med)
    _TIMES["eval_s"] = med
    print(f"\nfull-ranking pass: {med:.2f} s for {tr.split.train.n_users} users x {tr.split.n_items} items")


def _recbole_python() -> Path | None:
    default = Path(__file__).resolve().parents[1] / ".venv-recbole" / "bin" / "python"
    p = Path(os.environ.get("TFLLMER_RECBOLE_PYTHON", default))
    return p if p.exists() else None


def _recbole_script() -> Path | None:
    here = Path(__file__).resolve().parent
    for cand in (here / "recbole" / "recbole_sasrec.py", here / "recbole_sasrec.py"):
        if cand.exists():
            return cand
    return None


def test_recbole_ratio(beauty_trainer, beauty_dir, tmp_path):
    data_dir = beauty_dir
    """Our figures next to RecBole's (same session when enabled; DESIGN figures otherwise)."""
    if "epoch_s" not in _TIMES or "eval_s" not in _TIMES:
        pytest.skip("run together with the two timing benchmarks")
    dev = beauty_trainer.device.type
    ours_epoch, ours_eval = _TIMES["epoch_s"], _TIMES["eval_s"]
    py, script = _recbole_python(), _recbole_script()
    if os.environ.get("TFLLMER_BENCH_RECBOLE") == "1" and py and script and FULL:
        out = tmp_path / "recbole.json"
        cmd = [
            str(py),
            str(script),
            "--data-dir",
            str(data_dir / "beauty"),
            "--model",
            "SASRec",
            "--epochs",
            "1",
            "--eval-every",
            "1",
            "--device",
            dev,
            "--no-test",
            "--out",
            str(out),
        ]
        if THREADS:
            cmd += ["--threads", str(THREADS)]
        subprocess.run(cmd, check=True, stdout=sys.stderr)
        rb = json.loads(out.read_text())
        ref = {
            "epoch_s": float(np.median(rb["timings"]["train_epoch_s"])),
            "eval_s": float(np.median(rb["timings"]["valid_eval_s"])),
        }
        source = "RecBole 1.2.1 run in this session, same machine/threads"
    else:
        ref = RECBOLE_REFERENCE[dev]
        source = (
            "DESIGN.md reference figures (measured earlier, NOT in this session; "
            "set TFLLMER_BENCH_FULL=1 TFLLMER_BENCH_RECBOLE=1 with RecBole's venv to "
            "measure side by side)"
        )
        if not FULL:
            source += "; ours on a 1,000-user subset, so the ratio is not meaningful"
    print(
        f"\nSASRec on Beauty, {dev}: ours {ours_epoch:.2f} s/epoch, {ours_eval:.2f} s/pass; "
        f"RecBole {ref['epoch_s']:.2f} s/epoch, {ref['eval_s']:.2f} s/pass -> "
        f"{ref['epoch_s'] / ours_epoch:.1f}x per epoch, {ref['eval_s'] / ours_eval:.1f}x "
        f"per pass [{source}]"
    )
    if "epoch_prefixes_s" in _TIMES:
        px = _TIMES["epoch_prefixes_s"]
        print(
            f"  with RecBole's layout (train_samples='prefixes'): {px:.2f} s/epoch -> "
            f"{ref['epoch_s'] / px:.1f}x per epoch"
        )
