"""Serving: top-k items for users' histories of raw item keys, item-to-item neighbours,
user and item vectors for an ANN index, and an ONNX export of the sequence encoder.

The layer above :mod:`tfllmer_fast.train` (it reads data, graph and train, never
experiment). The served object is the trained backbone plus its item table, new items
appended by ``add-items`` included; no LLM runs here.

Rules of every call (see :class:`Recommender`):

* **Keys.** Items are named by the keys of the training log, matched by their string
  form (``1234`` and ``"1234"`` are one key); items added by ``add-items`` are
  ``new-<id>`` unless named. ``ids=True`` takes the model's 0-based ids instead.
* **Histories** are oldest first; the model reads the last ``max_len`` items, the
  ``exclude_seen`` rule the whole history.
* **Unknown keys** in a history, in ``items`` or in ``exclude`` are dropped and counted
  (``unknown="skip"``, the default) or raise a ValueError naming them
  (``unknown="raise"``). A history left without a known item gets an empty row. An id
  out of range (``ids=True``) always raises.
* **k** larger than the candidate set gives every candidate; a user with fewer
  candidates left than ``k`` (``exclude_seen``, ``items``) gets a shorter row (padding:
  key ``None``, id ``-1``, score ``-inf``). No candidate at all raises.
* **Ties** go to the smaller item id; the scores are the model's, in float32.
"""

from .export import EXPORT_FORMAT, export_onnx, load_manifest
from .recommendations import Recommendations
from .recommender import SCORE_BUDGET, Recommender

__all__ = ["EXPORT_FORMAT", "Recommendations", "Recommender", "SCORE_BUDGET", "export_onnx", "load_manifest"]
