"""Tiny trained models for the serving tests: every backbone x item-table mode, trained for
one epoch on a small synthetic catalogue (seconds in all), checkpoints on disk."""

import numpy as np
import pytest

BACKBONES = ("sasrec", "gru4rec", "bert4rec")
MODES = ("free", "frozen", "frozen+delta")
#: Scoring variants beyond the default (normalised items, temperature 1): an output bias
#: (BERT4Rec with unnormalised items) and temperatures with a normalised hidden state.
VARIANTS = {
    "default": {},
    "bias": {"normalize_items": False, "temperature": 0.5},
    "cosine": {"normalize_hidden": True, "temperature": 0.2},
}
N_USERS, N_ITEMS, N_NEW = 300, 120, 6


def tiny_config(model="sasrec", mode="free", **kw):
    from tfllmer_fast.experiment.config import Config

    fields = dict(
        dataset="synthetic",
        synthetic_users=N_USERS,
        synthetic_items=N_ITEMS,
        epochs=1,
        progress=False,
        threads=1,
        model=model,
        item_table_mode=mode,
        hidden=16,
        max_len=12,
        inner_size=32,
        gru_hidden=24,
    )
    return Config(**(fields | kw))


@pytest.fixture(scope="session")
def synthetic_sequences():
    from tfllmer_fast.experiment.run import load_run_data

    return load_run_data(tiny_config(), embeddings=False).sequences


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory):
    """``get(model, mode, variant="default", added=False)`` -> checkpoint path (trained once)."""
    from tfllmer_fast.experiment.run import run_experiment
    from tfllmer_fast.train import load_checkpoint, save_checkpoint
    from tfllmer_fast.train.new_items import add_items

    root = tmp_path_factory.mktemp("serving-models")
    cache = {}

    def get(model="sasrec", mode="free", variant="default", added=False):
        key = (model, mode, variant, added)
        if key in cache:
            return cache[key]
        if added:
            base = get(model, mode, variant)
            st = load_checkpoint(base)
            X = np.random.default_rng(1).normal(size=(N_NEW, 64))
            X[1] = X[0]  # two new items with the same text: tied scores
            new = add_items(st, X, method="projection")
            path = base.with_name("added.pt")
            save_checkpoint({k: v for k, v in new.items() if k != "format"}, path)
        else:
            out = root / "-".join(key[:3])
            run_experiment(tiny_config(model, mode, **VARIANTS[variant]), output_dir=out)
            path = out / "checkpoint.pt"
        cache[key] = path
        return path

    return get


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    yield
