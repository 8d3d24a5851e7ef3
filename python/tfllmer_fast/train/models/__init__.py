"""Sequential recommender backbones (torch): SASRec, GRU4Rec, BERT4Rec, and the factory
that builds one from a run configuration."""

from ..item_tables import configure_item_table
from .bert4rec import BERT4Rec
from .common import POSITIONS, SequentialRecommender
from .gru4rec import GRU4Rec
from .sasrec import SASRec

MODELS = {"sasrec": SASRec, "gru4rec": GRU4Rec, "bert4rec": BERT4Rec}


def build_model(config, n_items: int) -> SequentialRecommender:
    """The backbone named by ``config.model`` with the hyper-parameters of ``config`` (an
    :class:`~tfllmer_fast.experiment.config.Config` or any object with its fields)."""
    cls = MODELS[config.model]
    common = dict(
        normalize_items=config.normalize_items,
        normalize_hidden=config.normalize_hidden,
        temperature=config.temperature,
        init_std=config.init_std,
    )
    drop = config.model_dropout
    if config.model == "gru4rec":
        model = cls(
            n_items,
            config.hidden,
            config.max_len,
            gru_hidden=config.gru_hidden,
            n_layers=config.n_layers or 1,
            dropout=drop,
            **common,
        )
        return _with_item_table(model, config)
    kw = dict(
        n_layers=config.n_layers or 2,
        n_heads=config.n_heads,
        inner_size=config.inner_size,
        hidden_dropout=drop,
        attn_dropout=drop if config.attn_dropout is None else config.attn_dropout,
        layer_norm_eps=config.layer_norm_eps,
        positions=config.positions,
        **common,
    )
    if config.model == "bert4rec":
        kw["mask_ratio"] = config.mask_ratio
    return _with_item_table(cls(n_items, config.hidden, config.max_len, **kw), config)


def _with_item_table(model, config):
    # Configurations saved before the option existed have a free table.
    return configure_item_table(
        model,
        getattr(config, "item_table", "free"),
        delta_l2=getattr(config, "delta_l2", 0.0),
        delta_bound=getattr(config, "delta_bound", None),
    )


__all__ = ["BERT4Rec", "GRU4Rec", "MODELS", "POSITIONS", "SASRec", "SequentialRecommender", "build_model"]
