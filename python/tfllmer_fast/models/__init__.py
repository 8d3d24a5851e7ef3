"""Sequential recommender backbones (torch): SASRec, GRU4Rec, BERT4Rec."""

from .bert4rec import BERT4Rec
from .common import SequentialRecommender
from .gru4rec import GRU4Rec
from .sasrec import SASRec

MODELS = {"sasrec": SASRec, "gru4rec": GRU4Rec, "bert4rec": BERT4Rec}

__all__ = ["BERT4Rec", "GRU4Rec", "MODELS", "SASRec", "SequentialRecommender"]
