"""Data: interaction sequences, file readers, item embeddings and text, datasets.

The first layer of the package: numpy only (pandas and sentence-transformers when a reader
needs them), no torch, and nothing from the layers above.
"""

from .dataset import Dataset
from .embeddings import check_embeddings, load_embeddings
from .files import load_item_text, load_recbole_atomic, load_sequence_file
from .load import BUILTIN_DATASETS, load_dataset
from .paths import shared_data_dir
from .sequences import LeaveOneOutSplit, Sequences, kcore_filter, leave_one_out
from .synthetic import SyntheticCatalogue, make_synthetic_catalogue
from .tables import load_interactions, load_item_text_table
from .text import embed_texts

__all__ = [
    "BUILTIN_DATASETS",
    "Dataset",
    "LeaveOneOutSplit",
    "Sequences",
    "SyntheticCatalogue",
    "check_embeddings",
    "embed_texts",
    "kcore_filter",
    "leave_one_out",
    "load_dataset",
    "load_embeddings",
    "load_interactions",
    "load_item_text_table",
    "load_item_text",
    "load_recbole_atomic",
    "load_sequence_file",
    "make_synthetic_catalogue",
    "shared_data_dir",
]
