"""Sequential recommender backbones (torch): SASRec, GRU4Rec, BERT4Rec, and the factory
that builds one from :class:`~tfllmer_fast.train.options.ModelOptions`."""

from ..item_tables import configure_item_table
from ..options import ItemTableOptions, ModelOptions
from .bert4rec import BERT4Rec
from .common import SequentialRecommender
from .gru4rec import GRU4Rec
from .sasrec import SASRec

MODELS = {"sasrec": SASRec, "gru4rec": GRU4Rec, "bert4rec": BERT4Rec}


def build_model(
    options: ModelOptions, n_items: int, item_table: ItemTableOptions | None = None
) -> SequentialRecommender:
    """The backbone ``options.model`` with the hyper-parameters of ``options``, for ``n_items``
    items, with the item table of ``item_table`` (free by default)."""
    o = options
    scoring = dict(
        normalize_items=o.normalize_items,
        normalize_hidden=o.normalize_hidden,
        temperature=o.temperature,
        init_std=o.init_std,
    )
    if o.model == "gru4rec":
        model = GRU4Rec(
            n_items, o.hidden, o.max_len, gru_hidden=o.gru_hidden, n_layers=o.n_layers, dropout=o.dropout, **scoring
        )
    else:
        kw = dict(
            n_layers=o.n_layers,
            n_heads=o.n_heads,
            inner_size=o.inner_size,
            hidden_dropout=o.dropout,
            attn_dropout=o.attn_dropout,
            layer_norm_eps=o.layer_norm_eps,
            positions=o.positions,
            **scoring,
        )
        if o.model == "bert4rec":
            kw["mask_ratio"] = o.mask_ratio
        model = MODELS[o.model](n_items, o.hidden, o.max_len, **kw)
    item_table = item_table or ItemTableOptions()
    # What built the model, for the trainer's checkpoint (a model rebuilt from it must be this one).
    model.build_options = {**options.to_dict(), **item_table.to_config()}
    return configure_item_table(model, item_table)


__all__ = ["BERT4Rec", "GRU4Rec", "MODELS", "SASRec", "SequentialRecommender", "build_model"]
