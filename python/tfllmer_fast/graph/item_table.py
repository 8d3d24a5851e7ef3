"""Initial item tables for the backbones: ``random``, ``pca`` (LLMInit) and ``recpca``.

* ``random``: the model's own init (N(0, 0.02) as RecBole); nothing to compute here.
* ``pca``: plain PCA of the LLM embeddings to the hidden size (LLMInit / LLM-ESR style):
  centre, project on the top-``hidden`` principal axes. Rows are *not* L2-normalised first
  unless ``normalize_llm=True``. Computed as ``RecPCA(lam=0)``: one PCA and one sign rule
  in the package.
* ``recpca``: Rec-PCA with the **training** co-occurrence graph (never validation/test
  items): ``graph = cooccurrence(train.offsets, train.items, n_items, window=...)``, then
  ``RecPCA(n_components=hidden, lam=lam, normalize=True).fit_transform(X, graph=graph)`` (rows
  L2-normalised, then centred; ``normalize_llm=False`` skips the normalisation).

Scaling (``scale``): the projected table has the spread of the LLM space, which is unrelated
to the backbone's own parameters. ``"std"`` (default) rescales the whole table by one factor
so that its entries have the standard deviation of the random init (``init_std``, 0.02):
the relative geometry (angles *and* relative norms) is kept, and the transformer's input
path (item + position embedding, LayerNorm) sees the magnitudes it was designed for.
``"unit"`` makes every row unit-norm (angles only), ``"none"`` keeps the raw projection.
"""

from __future__ import annotations

import time
import warnings
from typing import TYPE_CHECKING

import numpy as np

from ..data.embeddings import check_embeddings
from ..data.sequences import LeaveOneOutSplit
from ._cooccurrence import cooccurrence
from .normalization import normalize_embeddings

if TYPE_CHECKING:
    from .recpca import RecPCA

INIT_MODES = ("random", "pca", "recpca")
SCALES = ("std", "unit", "none")


def pca_table(X: np.ndarray, d: int, *, normalize: bool = False) -> np.ndarray:
    """Project centred X (rows L2-normalised first when ``normalize``) on its top-d
    principal axes, with RecPCA's sign rule."""
    from .recpca import RecPCA  # scikit-learn loads with Rec-PCA only

    if d > X.shape[1]:
        raise ValueError(
            f"cannot reduce {X.shape[1]}-d embeddings to {d} dimensions (hidden size larger than the embedding size)"
        )
    return RecPCA(n_components=d, lam=0.0, normalize=normalize).fit_transform(X)


def rescale_table(Z: np.ndarray, scale: str, init_std: float) -> np.ndarray:
    """The projected table at the scale the backbone expects (see the module docstring)."""
    Z = np.asarray(Z, dtype=np.float64)
    if scale == "none":
        return Z
    if scale == "unit":
        return normalize_embeddings(Z, warn=False)
    if scale == "std":
        s = Z.std()
        if s == 0:
            raise ValueError("the projected item table is constant; cannot rescale it")
        return Z * (init_std / s)
    raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")


def training_graph(split: LeaveOneOutSplit, *, window=None, weighting="count", n_threads: int | None = None):
    """Co-occurrence graph of the training part of ``split`` (scipy csr_array)."""
    train = split.train
    return cooccurrence(
        train.offsets, train.items, n_items=train.n_items, window=window, weighting=weighting, n_threads=n_threads
    )


def initial_item_table(
    mode: str,
    embeddings,
    split: LeaveOneOutSplit,
    hidden: int,
    *,
    lam: float = 0.5,
    window=None,
    weighting: str = "count",
    graph=None,
    normalize_llm: bool | None = None,
    scale: str = "std",
    init_std: float = 0.02,
    n_threads: int | None = None,
    timings: dict | None = None,
    projection: dict | None = None,
):
    """The (n_items, hidden) float32 initial item table for ``mode``, or None for random.

    ``graph`` may be passed to reuse a co-occurrence graph across runs (it must be the
    training graph of ``split``). ``n_threads``: OpenMP threads of the graph and the
    reduction (None: all cores). ``timings`` (a dict) receives ``graph_s`` / ``reduce_s``.
    ``projection`` (a dict) receives what maps any LLM row to a table row the same way
    (see :func:`projection_state`): new items get their rows from it.
    """
    if mode == "random":
        return None
    if mode not in INIT_MODES:
        raise ValueError(f"unknown init mode {mode!r}; choose one of {INIT_MODES}")
    if embeddings is None:
        raise ValueError(f"init={mode!r} needs item embeddings")
    X = check_embeddings(embeddings, split.n_items)
    if hidden > X.shape[1]:
        raise ValueError(
            f"cannot reduce {X.shape[1]}-d embeddings to {hidden} dimensions "
            "(hidden size larger than the embedding size)"
        )
    if normalize_llm is None:
        normalize_llm = mode == "recpca"
    zero = ~np.any(X, axis=1)
    if zero.any():
        warnings.warn(
            f"{int(zero.sum())} item(s) have an all-zero embedding; they get the projection of the mean",
            RuntimeWarning,
            stacklevel=2,
        )
    t0 = time.perf_counter()
    if mode == "recpca" and graph is None:
        graph = training_graph(split, window=window, weighting=weighting, n_threads=n_threads)
    t1 = time.perf_counter()
    from .recpca import RecPCA  # scikit-learn loads with Rec-PCA only

    pca = RecPCA(
        n_components=hidden, lam=lam if mode == "recpca" else 0.0, normalize=bool(normalize_llm), n_threads=n_threads
    )
    # The zero rows were reported above, once, at the caller's line.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*embedding rows have zero norm", category=RuntimeWarning)
        Z = pca.fit_transform(X, graph=graph if mode == "recpca" else None)
    if timings is not None:
        if mode == "recpca":
            timings["graph_s"] = t1 - t0
        timings["reduce_s"] = time.perf_counter() - t1
    factor = 1.0
    if scale == "std":
        s = Z.std()
        factor = float(init_std / s) if s > 0 else 1.0
    Z = rescale_table(Z, scale, init_std)
    if not np.isfinite(Z).all():
        raise ValueError("the initial item table contains NaN or Inf")
    if projection is not None:
        projection.update(projection_state(pca, mode, scale, factor))
    return Z.astype(np.float32)


def projection_state(pca: RecPCA, mode: str, scale: str, factor: float) -> dict:
    """Plain values (numpy arrays, floats, strings) of a fitted projection + scaling:
    ``apply_projection(state, X)`` maps LLM rows exactly as the table was built."""
    return {
        "mode": mode,
        "components": np.asarray(pca.components_, np.float64),
        "mean": np.asarray(pca.mean_, np.float64),
        "normalize": bool(pca.normalize),
        "lam": float(pca.lam),
        "scale": scale,
        "factor": float(factor),
    }


def table_from_reduction(reduction, scale: str, init_std: float) -> tuple[np.ndarray, dict]:
    """The initial table and its projection from a saved reduction (the arrays ``reduce``
    writes: ``Z``, ``components``, ``mean``, ``lam``, ``normalize``): the table at the scale
    the backbone expects, and the projection that maps new items' LLM rows the same way."""
    for key in ("Z", "components", "mean"):
        if key not in reduction:
            raise ValueError(f"the reduction has no {key!r} array: write it with `tfllmer-fast reduce`")
    Z = np.asarray(reduction["Z"], dtype=np.float64)
    if Z.ndim != 2 or Z.shape[1] != np.asarray(reduction["components"]).shape[1]:
        raise ValueError(f"the reduction's Z has shape {Z.shape}, its components {np.shape(reduction['components'])}")
    factor = 1.0
    if scale == "std":
        s = Z.std()
        factor = float(init_std / s) if s > 0 else 1.0
    table = rescale_table(Z, scale, init_std).astype(np.float32)
    lam = float(reduction["lam"]) if "lam" in reduction else 0.0
    projection = {
        "mode": "recpca" if lam else "pca",
        "components": np.asarray(reduction["components"], np.float64),
        "mean": np.asarray(reduction["mean"], np.float64),
        "normalize": bool(reduction["normalize"]) if "normalize" in reduction else True,
        "lam": lam,
        "scale": scale,
        "factor": factor,
    }
    return table, projection


def apply_projection(state: dict, X) -> np.ndarray:
    """Table rows (float32) of LLM embedding rows ``X`` under a stored projection: rows
    L2-normalised when the table's were, centred with the stored mean, projected on the
    stored components, then scaled as the table was (one factor, or unit rows)."""
    W = np.asarray(state["components"], np.float64)
    X = np.asarray(X, np.float64)
    if X.ndim != 2 or X.shape[1] != W.shape[0]:
        raise ValueError(
            f"embeddings must have {W.shape[0]} columns (the projection's input width), got shape {X.shape}"
        )
    if state["normalize"]:
        X = X / np.linalg.norm(X, axis=1, keepdims=True)
    Z = X @ W - np.asarray(state["mean"], np.float64) @ W
    if state["scale"] == "unit":
        Z = normalize_embeddings(Z, warn=False)
    else:
        Z = Z * float(state["factor"])
    return Z.astype(np.float32)
