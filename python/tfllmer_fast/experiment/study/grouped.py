"""A study's runs trained in groups: runs that differ only in what a group lets differ
(seed, item table, lambda, temperature, normalisation; see
:data:`tfllmer_fast.train.group.PER_MODEL_FIELDS`) train together in one process on
stacked parameters. Each run keeps its own folder, checkpoint (a lone checkpoint: a run can
resume in a group or alone), ``results.json`` and ``conditioning.json``, as
:func:`.runner.run_job` writes them; runs that cannot be grouped (BERT4Rec, other losses)
train alone."""

from __future__ import annotations

import json
import time

from ...train import cpu_threads, resolve_device
from ...train.conditioning import model_conditioning
from ...train.group import GroupTrainer, build_member, group_key, groupable_config
from ..results import write_json_atomic
from ..run import attach_item_state, finish_run, run_summary, save_run


def default_group_size(config) -> int:
    """Runs per group when the caller names no size: 16 on a GPU, where a small model's
    step waits on launches and a stack shares them; 1 on the CPU, where a lone step's
    products already run at the core's speed and a stack shares only Python and dispatch
    work: a member costs what a lone run costs, and independent processes beat a group
    on the same cores (benchmarks/two_cores.py)."""
    return 16 if resolve_device(config.device).type == "cuda" else 1


def plan_groups(jobs, group_size: int | None = None) -> list[list]:
    """Jobs in groups of at most ``group_size`` (``None``: :func:`default_group_size` of
    their device) with one group key, in the order given; jobs that cannot be grouped (see
    :func:`~tfllmer_fast.train.group.groupable`; also the cold-start protocol, whose frozen
    rows and masked logits a group does not do) or have results already come alone."""
    by_key: dict = {}
    out = []
    for job in jobs:
        c = job.config
        size = default_group_size(c) if group_size is None else group_size
        if (size <= 1 or not groupable_config(c) or c.cold_items or c.cold_items_from
                or (job.folder / "results.json").exists()):
            out.append([job])
            continue
        by_key.setdefault(group_key(c), []).append(job)
    for members in by_key.values():  # one key, one device
        size = default_group_size(members[0].config) if group_size is None else group_size
        out += [members[i:i + size] for i in range(0, len(members), size)]
    return out


def run_group(jobs, cache, *, verbose: bool = True, deadline: float | None = None) -> int:
    """Train ``jobs`` (one group key) together; write each run's files. Returns the number
    of runs finished (runs cut by ``deadline`` resume from their checkpoints later)."""
    from .runner import fixed_batch  # runner imports this module

    c0 = jobs[0].config
    with cpu_threads(c0.threads) as threads:
        t_start = time.perf_counter()
        models, states, conds = [], [], []
        for job in jobs:
            c = job.config
            job.folder.mkdir(parents=True, exist_ok=True)
            t = time.perf_counter()
            table, projection = cache.item_table_and_projection(c)
            init_s = time.perf_counter() - t
            model, state = build_member(c, cache.split.n_items, table)
            cond_path = job.folder / "conditioning.json"
            cond = json.loads(cond_path.read_text()) if cond_path.exists() else {}
            if "init" not in cond:  # the initial model, as run_job measures it
                cond["init"] = model_conditioning(model, fixed_batch(cache.split, c, True))
                write_json_atomic(cond, cond_path)
            models.append(model)
            states.append(state)
            conds.append((cond, cond_path, init_s, table, projection))
        g = GroupTrainer(models, cache.split, [j.config for j in jobs],
                         device=resolve_device(c0.device), dropout_states=states,
                         checkpoint_paths=[j.folder / "checkpoint.pt" for j in jobs])
        for t, (_, _, _, table, projection) in zip(g.members, conds):
            attach_item_state(t, cache.data, cache.split, table, projection)
        fits = g.fit(deadline)
        done = 0
        for i, (job, t, fit, (cond, cond_path, init_s, table, projection)) in enumerate(
                zip(jobs, g.members, fits, conds)):
            if i in g.unfinished:
                continue
            timings = {"data_s": 0.0, "init_s": init_s, "group_size": len(jobs)}
            run = finish_run(job.config, cache.data, cache.split, t, fit, timings, threads,
                             t_start, item_table=table, projection=projection)
            save_run(run, job.folder, plot=False)
            if verbose:
                print(run_summary(run))
            cond["trained"] = model_conditioning(t.model, fixed_batch(cache.split, job.config,
                                                                      True))
            write_json_atomic(cond, cond_path)
            done += 1
        return done
