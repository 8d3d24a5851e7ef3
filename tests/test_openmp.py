"""OpenMP's idle threads sleep while the library trains (tfllmer_fast._openmp,
cpp/openmp_idle.hpp), and the environment is never changed for it."""

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
import time

import pytest

from tfllmer_fast import _core
from tfllmer_fast._openmp import USER_SETTINGS, applies, available_cpus, openmp_runtimes, passive_waits

linux_libgomp = pytest.mark.skipif(
    not sys.platform.startswith("linux") or "libgomp" not in os.path.basename(_core.openmp_library()),
    reason="the idle-team mechanism is libgomp's (Linux)",
)


def _threads() -> int:
    return len(os.listdir("/proc/self/task"))


def _settles_at(n: int, timeout: float = 10.0) -> int:
    """The thread count once it reaches ``n`` (threads start and exit asynchronously), or
    the last count seen after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while (count := _threads()) != n and time.monotonic() < deadline:
        time.sleep(0.01)
    return count


@linux_libgomp
def test_an_idle_team_makes_a_spinning_worker_sleep():
    # GOMP_SPINCOUNT=infinite: an idle worker polls forever, unless libgomp manages more
    # threads than CPUs; then it polls ~100 times and sleeps. Thread states are the oracle:
    # a polling thread is R (running or runnable), a sleeping one S.
    if available_cpus() < 2:
        pytest.skip("needs 2 CPUs: one thread per CPU is already more than the CPUs")
    script = textwrap.dedent(
        """
        import os, threading, time
        import numpy as np
        from tfllmer_fast import _core
        from tfllmer_fast._openmp import available_cpus

        X = np.ones((1000, 64))

        def region_then_running_threads():
            _core.row_norms(X, 2)  # a team of 2: the main thread and one pool worker
            time.sleep(0.3)
            me, n = threading.get_native_id(), 0
            for tid in os.listdir("/proc/self/task"):
                if int(tid) != me:
                    with open(f"/proc/self/task/{tid}/stat") as f:
                        n += f.read().rsplit(")", 1)[1].split()[0] == "R"
            return n

        spinning = region_then_running_threads()
        team = _core.IdleTeam(available_cpus() - 1)
        guarded = region_then_running_threads()
        team.release()
        print(spinning, guarded, team.workers, region_then_running_threads())
        """
    )
    env = {k: v for k, v in os.environ.items() if k not in USER_SETTINGS}
    env["GOMP_SPINCOUNT"] = "infinite"
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    spinning, guarded, workers, after = map(int, out.stdout.split())
    assert (spinning, guarded, after) == (1, 0, 1)
    assert workers == available_cpus() - 1


@linux_libgomp
def test_passive_waits_parks_threads_for_the_block_only(monkeypatch):
    for name in USER_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    before = dict(os.environ)
    n0 = _threads()
    with passive_waits(2):
        workers = max(1, available_cpus() - 1)
        assert _settles_at(n0 + 1 + workers) == n0 + 1 + workers  # the parked thread and its pool
        with passive_waits(2):  # nested blocks share the idle team
            assert _threads() == n0 + 1 + workers
        assert _threads() == n0 + 1 + workers
    assert _settles_at(n0) == n0
    assert dict(os.environ) == before


@pytest.mark.parametrize("name,value", [("OMP_WAIT_POLICY", "ACTIVE"), ("GOMP_SPINCOUNT", "1000")])
def test_a_wait_policy_the_user_set_wins(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    assert not applies(2)
    n0 = _threads()
    with passive_waits(2):
        assert _threads() == n0


def test_a_single_thread_needs_no_idle_team(monkeypatch):
    for name in USER_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    assert not applies(1)


def test_idle_team_validates_its_size():
    with pytest.raises(ValueError, match="workers"):
        _core.IdleTeam(0)


@linux_libgomp
def test_the_core_and_torch_share_one_openmp_runtime():
    # Two runtimes would mean two teams fighting for the cores, and an idle team of ours
    # would not reach torch's threads. torch is imported in a child so this file stays
    # torch-free.
    script = "import tfllmer_fast._core, torch, json; from tfllmer_fast._openmp import openmp_runtimes; "
    script += "torch.ones(1); print(json.dumps(openmp_runtimes()))"
    if importlib.util.find_spec("torch") is None:
        pytest.skip("torch is not installed")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    runtimes = [p for p in json.loads(out.stdout) if "gomp" in p]
    assert len(runtimes) == 1, runtimes
    assert openmp_runtimes()  # this process has loaded one as well
