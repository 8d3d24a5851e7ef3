"""Initial item tables for the backbones: ``random``, ``pca`` (LLMInit) and ``recpca``.

* ``random``: the model's own init (N(0, 0.02) as RecBole); nothing to compute here.
* ``pca``: plain PCA of the LLM embeddings to the hidden size (LLMInit / LLM-ESR style):
  centre, project on the top-``hidden`` principal axes. Rows are *not* L2-normalised first
  unless ``normalize_llm=True``.
* ``recpca``: Rec-PCA with the **training** co-occurrence graph (never validation/test
  items): ``graph = cooccurrence(train.offsets, train.items, n_items, window=...)``, then
  ``RecPCA(n_components=hidden, lam=lam, normalize=True).fit_transform(X, graph)`` (rows
  L2-normalised, then centred; ``normalize_llm=False`` skips the normalisation).

Scaling (``scale``): the projected table has the spread of the LLM space, which is unrelated
to the backbone's own parameters. ``"std"`` (default) rescales the whole table by one factor
so that its entries have the standard deviation of the random init (``init_std``, 0.02):
the relative geometry (angles *and* relative norms) is kept, and the transformer's input
path (item + position embedding, LayerNorm) sees the magnitudes it was designed for.
``"unit"`` makes every row unit-norm (angles only), ``"none"`` keeps the raw projection.
"""

from __future__ import annotations

import warnings

import numpy as np

from ._validation import check_float_matrix
from .sequences import LeaveOneOutSplit


def check_embeddings(embeddings, n_items: int) -> np.ndarray:
    """A finite (n_items, D) float array, or a clear error."""
    X = check_float_matrix(embeddings, "embeddings")
    if X.shape[0] != n_items:
        raise ValueError(f"embeddings have {X.shape[0]} rows but the data has {n_items} items "
                         "(row i must be item i)")
    return X


def l2_normalize_rows(X: np.ndarray) -> np.ndarray:
    """Rows divided by their L2 norm; zero rows stay zero."""
    try:  # the package's own version (reports zero rows) when it is available
        from . import normalize_embeddings
    except ImportError:
        normalize_embeddings = None
    if normalize_embeddings is not None:
        out = normalize_embeddings(X)
        return out[0] if isinstance(out, tuple) else out
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    return np.divide(X, norms, out=np.zeros_like(X), where=norms > 0)


def pca_table(X: np.ndarray, d: int) -> np.ndarray:
    """Project centred X on its top-d principal axes (deterministic signs)."""
    X = np.asarray(X, dtype=np.float64)
    if d > X.shape[1]:
        raise ValueError(f"cannot reduce {X.shape[1]}-d embeddings to {d} dimensions "
                         "(hidden size larger than the embedding size)")
    Xc = X - X.mean(0)
    vals, vecs = np.linalg.eigh(Xc.T @ Xc)
    W = vecs[:, ::-1][:, :d]
    # Sign convention: the largest-magnitude loading of each component is positive.
    signs = np.sign(W[np.abs(W).argmax(0), np.arange(d)])
    W = W * np.where(signs == 0, 1.0, signs)
    return Xc @ W


def rescale_table(Z: np.ndarray, scale: str, init_std: float) -> np.ndarray:
    Z = np.asarray(Z, dtype=np.float64)
    if scale == "none":
        return Z
    if scale == "unit":
        return l2_normalize_rows(Z)
    if scale == "std":
        s = Z.std()
        if s == 0:
            raise ValueError("the projected item table is constant; cannot rescale it")
        return Z * (init_std / s)
    raise ValueError(f"scale must be 'std', 'unit' or 'none', got {scale!r}")


def training_graph(split: LeaveOneOutSplit, *, window=None, weighting="count"):
    """Co-occurrence graph of the training part of ``split`` (scipy csr_array)."""
    try:
        from . import cooccurrence  # provided by the co-occurrence module
    except ImportError as e:  # pragma: no cover - only before that module is merged
        raise ImportError("init='recpca' needs tfllmer_fast.cooccurrence") from e

    train = split.train
    return cooccurrence(train.offsets, train.items, n_items=train.n_items, window=window,
                        weighting=weighting)


def initial_item_table(mode: str, embeddings, split: LeaveOneOutSplit, hidden: int, *,
                       lam: float = 0.5, window=None, weighting: str = "count",
                       graph=None, normalize_llm: bool | None = None, scale: str = "std",
                       init_std: float = 0.02, timings: dict | None = None):
    """The (n_items, hidden) float32 initial item table for ``mode``, or None for random.

    ``graph`` may be passed to reuse a co-occurrence graph across runs (it must be the
    training graph of ``split``). ``timings`` (a dict) receives ``graph_s`` / ``reduce_s``.
    """
    import time

    if mode == "random":
        return None
    if mode not in ("pca", "recpca"):
        raise ValueError(f"unknown init mode {mode!r}; choose random, pca or recpca")
    if embeddings is None:
        raise ValueError(f"init={mode!r} needs item embeddings")
    X = check_embeddings(embeddings, split.n_items)
    if normalize_llm is None:
        normalize_llm = mode == "recpca"
    zero = ~np.any(X, axis=1)
    if zero.any():
        warnings.warn(f"{int(zero.sum())} item(s) have an all-zero embedding; they get the "
                      "projection of the mean", stacklevel=2)
    t0 = time.perf_counter()
    if mode == "pca":
        Z = pca_table(l2_normalize_rows(X) if normalize_llm else X, hidden)
        if timings is not None:
            timings["reduce_s"] = time.perf_counter() - t0
    else:
        try:
            from . import RecPCA
        except ImportError as e:  # pragma: no cover - only before that module is merged
            raise ImportError("init='recpca' needs tfllmer_fast.RecPCA") from e

        if hidden > X.shape[1]:
            raise ValueError(f"cannot reduce {X.shape[1]}-d embeddings to {hidden} dimensions")
        if graph is None:
            graph = training_graph(split, window=window, weighting=weighting)
        t1 = time.perf_counter()
        if timings is not None:
            timings["graph_s"] = t1 - t0
        # RecPCA normalises the rows itself (normalize=True) and centres them.
        Z = RecPCA(n_components=hidden, lam=lam, normalize=bool(normalize_llm)).fit_transform(
            X, graph)
        if timings is not None:
            timings["reduce_s"] = time.perf_counter() - t1
    Z = rescale_table(np.asarray(Z), scale, init_std)
    if not np.isfinite(Z).all():
        raise ValueError("the initial item table contains NaN or Inf")
    return Z.astype(np.float32)
