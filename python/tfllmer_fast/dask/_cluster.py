"""The client, worker memory limits and the fault hook the tests use."""

from __future__ import annotations

import os

import distributed

from .._validation import check_int

REDUCES = ("auto", "tree", "shuffle")


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
