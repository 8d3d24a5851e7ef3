"""Small deterministic inputs for the training-stack tests (no data files needed). torch is
imported only by the helpers that train: the torch-free layers' tests use this module too."""

import numpy as np
import pytest

from tfllmer_fast.data.sequences import Sequences


def cyclic_sequences(n_users=64, n_items=30, step=3, min_len=4, max_len=14, seed=0):
    """Every user walks i -> i + step (mod n_items) from a random start: a pattern any
    next-item model can learn exactly."""
    rng = np.random.default_rng(seed)
    lists = []
    for _ in range(n_users):
        s = int(rng.integers(n_items))
        length = int(rng.integers(min_len, max_len + 1))
        lists.append([(s + step * j) % n_items for j in range(length)])
    return Sequences.from_lists(lists, n_items=n_items)


def random_sequences(n_users=50, n_items=25, min_len=3, max_len=12, seed=0):
    rng = np.random.default_rng(seed)
    lists = [list(rng.integers(0, n_items, size=rng.integers(min_len, max_len + 1))) for _ in range(n_users)]
    return Sequences.from_lists(lists, n_items=n_items)


def run_interrupted(cfg, data, output_dir, after_epoch: int) -> None:
    """Run ``cfg`` into ``output_dir`` and break it off (an exception from the epoch
    callback) right after epoch ``after_epoch``: its checkpoint is what a crash leaves."""
    from tfllmer_fast.experiment.run import run_experiment

    class Interrupt(Exception):
        pass

    def stop(trainer, record):
        if record["epoch"] == after_epoch:
            raise Interrupt

    with pytest.raises(Interrupt):
        run_experiment(cfg, data=data, output_dir=output_dir, callbacks=[stop])
