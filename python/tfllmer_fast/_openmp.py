"""OpenMP's idle threads during training: asleep, not spinning.

torch's CPU kernels run in an OpenMP team (GNU libgomp on Linux; the compiled core shares
it: one runtime per process, found by its soname). An idle libgomp thread polls for about
300000 iterations before it sleeps, so between torch's many small parallel regions its
workers never sleep; on cores shared with other processes, a preempted spinning worker makes
the team's master wait a scheduler time slice at each barrier and training runs 5-30x
slower. ``OMP_WAIT_POLICY=PASSIVE`` fixes that, but only in the environment before the
runtime loads. libgomp also waits passively (about 100 polls) while it manages more threads
than the process has CPUs: :func:`passive_waits` supplies those threads, asleep, for the
duration of a block (cpp/openmp_idle.hpp). A wait policy the user set wins.
"""

from __future__ import annotations

import os
import sys
import threading
from contextlib import contextmanager

#: environment variables by which the user has chosen libgomp's waiting: then we stay out
USER_SETTINGS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")

_lock = threading.Lock()
_depth = 0
_team = None


def available_cpus() -> int:
    """CPUs this process may run on (what libgomp counts)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def openmp_runtimes() -> list[str]:
    """The OpenMP runtime files mapped into this process (Linux; empty elsewhere)."""
    names = ("libgomp", "libomp", "libiomp5")
    found: list[str] = []
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                fields = line.split(maxsplit=5)  # address perms offset dev inode [path]
                path = fields[5].strip() if len(fields) == 6 else ""
                if os.path.basename(path).startswith(names) and path not in found:
                    found.append(path)
    except OSError:
        pass
    return found


def applies(team: int) -> bool:
    """Whether :func:`passive_waits` acts for a team of ``team`` threads: libgomp, Linux,
    a team of two or more, and no wait policy in the environment."""
    if team < 2 or not sys.platform.startswith("linux") or any(v in os.environ for v in USER_SETTINGS):
        return False
    from . import _core

    return os.path.basename(_core.openmp_library()).startswith("libgomp")


@contextmanager
def passive_waits(team: int):
    """Inside the block, OpenMP threads that wait sleep almost at once, as with
    ``OMP_WAIT_POLICY=PASSIVE``; after it, the runtime spins as before. ``team``: the
    thread count torch uses inside (``torch.get_num_threads()``). Nested blocks share one
    set of idle threads; results never depend on it (only waiting changes)."""
    global _depth, _team
    if not applies(team):
        yield
        return
    from . import _core

    with _lock:
        if _depth == 0:
            # libgomp counts the process's first thread plus every pool's workers; a team of
            # `team` adds team - 1, so this many more put the count above the CPUs.
            _team = _core.IdleTeam(max(1, available_cpus() - team + 1))
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                _team.release()
                _team = None
