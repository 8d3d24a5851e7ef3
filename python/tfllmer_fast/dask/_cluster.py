"""The client, worker memory limits, the re-sending of lost in-memory inputs and the fault
hook the tests use."""

from __future__ import annotations

import os
import warnings
from concurrent.futures import CancelledError

import distributed

from .._validation import check_int

REDUCES = ("auto", "tree", "shuffle")

#: How many times a job that lost in-memory inputs with a worker is run again.
RESEND_ATTEMPTS = 3


def memory_budget() -> float:
    """Share of a worker's memory limit that one task's estimated peak may take.

    A worker holds results up to its "spill" fraction of the limit (0.7 by default) before
    writing them to disk, and is killed at "terminate" (0.95). A task that allocates quickly
    can outrun the spilling, so its peak must fit in between: 0.25 of the limit by default.
    Clusters configured to spill earlier leave their tasks more. The marks are read from the
    client's Dask config: give it the workers' values.
    """
    import dask

    spill = dask.config.get("distributed.worker.memory.spill", 0.7) or 0.7
    terminate = dask.config.get("distributed.worker.memory.terminate", 0.95) or 0.95
    return max(0.1, float(terminate) - float(spill))


# Float32 graph from the finish: int32 column + float32 weight per entry (int64 indptr aside).
FINISHED_BYTES_PER_ENTRY = 8


def get_client(client):
    if client is not None:
        return client
    try:
        return distributed.get_client()
    except ValueError as e:
        raise ValueError("no Dask client: pass client=distributed.Client(...) or create one first") from e


def worker_memory_limit(client, memory_limit) -> tuple[int, int]:
    """(bytes per worker, number of workers)."""
    workers = (
        client.scheduler_info(n_workers=-1)["workers"]
        if _accepts_n_workers(client)
        else client.scheduler_info()["workers"]
    )
    n_workers = max(1, len(workers))
    if memory_limit is not None:
        return check_int(memory_limit, "memory_limit (bytes)", minimum=1), n_workers
    limits = [w.get("memory_limit") or 0 for w in workers.values()]
    if limits and min(limits) > 0:
        return int(min(limits)), n_workers
    import psutil

    return int(psutil.virtual_memory().total // n_workers), n_workers


def _accepts_n_workers(client) -> bool:
    import inspect

    try:
        return "n_workers" in inspect.signature(client.scheduler_info).parameters
    except (TypeError, ValueError):  # pragma: no cover
        return False


def gib(x: float) -> str:
    return f"{x / 2**30:.2f} GiB"


class Scatterer:
    """Scatters inputs from the client's memory and remembers the futures: Dask cannot
    recompute scattered data, so a job that loses some with a worker is run again."""

    def __init__(self, client):
        self.client = client
        self.futures: list = []

    def __call__(self, data, **kwargs):
        """``client.scatter(data, hash=False, **kwargs)``, recorded."""
        out = self.client.scatter(data, hash=False, **kwargs)
        self.futures.extend(out if isinstance(out, list) else [out])
        return out

    def lost(self) -> bool:
        """Whether a worker's death took some of the scattered data."""
        return any(f.status in ("cancelled", "lost") for f in self.futures)


def run_resending(client, job, what: str):
    """``job(scatter)`` with a fresh :class:`Scatterer`; when it fails because scattered data
    was lost with a worker, the inputs are scattered again from the client's copies and the
    job starts over (results are exact, so a rerun gives the same bits), at most
    :data:`RESEND_ATTEMPTS` times. Inputs Dask can recompute (shard files, DataFrames,
    dask arrays, memory-mapped X) never need this: the scheduler recomputes what a dead
    worker held."""
    for attempt in range(RESEND_ATTEMPTS + 1):
        scatter = Scatterer(client)
        try:
            return job(scatter)
        except CancelledError:
            if not scatter.lost():
                raise
            if attempt == RESEND_ATTEMPTS:
                raise RuntimeError(
                    f"workers kept dying while {what}, taking in-memory inputs with them ({RESEND_ATTEMPTS} restarts); "
                    "inputs Dask can recompute (shard files, a dask DataFrame or array) survive worker loss"
                ) from None
            warnings.warn(
                f"a worker died holding in-memory inputs while {what}: sending them again and starting over "
                f"(restart {attempt + 1} of at most {RESEND_ATTEMPTS}); shard files are recomputed in place instead",
                RuntimeWarning,
                stacklevel=3,
            )
        finally:
            scatter.futures.clear()


# faults (tests only): a task kills its own worker once, the first time a stage runs.


def maybe_fault(fault, stage: str) -> None:
    """``fault[stage]``: a folder, or (folder, times): the first ``times`` (default 1) runs of
    the stage, counted by marker files there, kill their worker process."""
    if not fault or stage not in fault:
        return
    spec = fault[stage]
    folder, times = (spec, 1) if isinstance(spec, (str, os.PathLike)) else spec
    for k in range(times):
        marker = os.path.join(folder, f"{stage}.killed" + (f".{k}" if k else ""))
        try:
            fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            continue
        os.close(fd)
        os._exit(1)
