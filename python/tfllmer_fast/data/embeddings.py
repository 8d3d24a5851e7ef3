"""Item embedding files (``.npy``, ``.npz``, raw ``.f32``) and their alignment to item ids."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .._npz import open_npz
from .._validation import check_finite_rows, check_float_matrix
from .keys import lookup_keys


def check_embeddings(embeddings, n_items: int) -> np.ndarray:
    """A finite (n_items, D) float array, or a clear error."""
    X = check_float_matrix(embeddings, "embeddings")
    if X.shape[0] != n_items:
        raise ValueError(f"embeddings have {X.shape[0]} rows but the data has {n_items} items (row i must be item i)")
    return X


def load_embeddings(
    path,
    *,
    item_ids=None,
    mmap: bool = True,
    dtype=None,
    n_items: int | None = None,
    dim: int | None = None,
    row_keys=None,
    key: str | None = None,
) -> np.ndarray:
    """Item embeddings from ``.npy`` (memory-mapped by default), ``.npz`` or raw ``.f32``.

    Parameters
    ----------
    path : str or Path
    item_ids : array-like, optional
        Alignment to the dataset's item order: row ``i`` of the result is file row
        ``item_ids[i]``. With ``row_keys``, ``item_ids`` are raw keys instead (e.g. a
        dataset's ``Sequences.item_ids``) looked up in ``row_keys``.
    mmap : bool
        Memory-map ``.npy``/``.f32`` files (read-only). Alignment or a dtype change copies.
    dtype : numpy dtype, optional
        Convert to this dtype (default: keep the file's).
    n_items : int, optional
        Expected number of rows of the result; a mismatch is a ValueError.
    dim : int, optional
        Row length of a raw ``.f32`` file (float32, row-major). Inferred from ``n_items``
        when not given.
    row_keys : array-like, optional
        Raw key of each file row, used with ``item_ids``.
    key : str, optional
        Array name inside an ``.npz`` (default: its only array, or ``"embeddings"``).

    Raises
    ------
    ValueError
        Wrong row count, rows out of range, unknown keys, NaN/Inf rows, not 2-D.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such embedding file: {path}")
    suffix = path.suffix.lower()
    mode = "r" if mmap else None
    if suffix == ".npy":
        emb = np.load(path, mmap_mode=mode, allow_pickle=False)
    elif suffix == ".npz":
        with open_npz(path) as z:
            names = list(z.keys())
            if key is None:
                key = names[0] if len(names) == 1 else "embeddings"
            if key not in names:
                raise ValueError(f"{path}: no array {key!r}; arrays are {names} (pass key=)")
            emb = z[key]
    elif suffix in (".f32", ".bin", ".raw"):
        n_floats = path.stat().st_size // 4
        if path.stat().st_size % 4:
            raise ValueError(f"{path}: size is not a multiple of 4 bytes (float32)")
        if dim is None:
            n_rows = n_items if item_ids is None else None
            if n_rows is None or n_floats % n_rows:
                raise ValueError(f"{path}: raw float32 file; pass dim= (the row length)")
            dim = n_floats // n_rows
        if n_floats % dim:
            raise ValueError(f"{path}: {n_floats} floats is not a multiple of dim={dim}")
        shape = (n_floats // dim, dim)
        emb = (
            np.memmap(path, dtype=np.float32, mode="r", shape=shape)
            if mmap
            else np.fromfile(path, dtype=np.float32).reshape(shape)
        )
    else:
        raise ValueError(f"{path}: unknown embedding format {suffix!r} (use .npy, .npz or .f32)")
    if emb.ndim != 2:
        raise ValueError(f"{path}: embeddings must be 2-D (n_items, dim), got {emb.shape}")
    if emb.dtype.kind != "f":
        raise ValueError(f"{path}: embeddings must be floats, got dtype {emb.dtype}")
    if item_ids is not None:
        rows = _alignment_rows(item_ids, row_keys, emb.shape[0], path)
        emb = emb[rows]
    if n_items is not None and emb.shape[0] != n_items:
        raise ValueError(
            f"{path}: {emb.shape[0]} embedding rows but the dataset has {n_items} items (one row per item expected)"
        )
    if dtype is not None:
        emb = emb.astype(dtype, copy=False)
    check_finite_rows(emb, str(path))
    return emb


def _alignment_rows(item_ids, row_keys, n_rows: int, path) -> np.ndarray:
    if hasattr(item_ids, "to_numpy"):
        item_ids = item_ids.to_numpy()
    item_ids = np.asarray(item_ids)
    if row_keys is not None:
        keys = np.asarray(row_keys.to_numpy() if hasattr(row_keys, "to_numpy") else row_keys)
        if keys.size != n_rows:
            raise ValueError(f"{path}: {keys.size} row_keys for {n_rows} embedding rows")
        try:
            return lookup_keys(keys, item_ids)
        except ValueError as e:
            raise ValueError(f"{path}: {str(e).replace('item_ids', 'row_keys')}") from None
    if item_ids.dtype.kind not in "iu":
        raise ValueError(
            f"item_ids must be integer row indices (or pass row_keys= to look raw keys up), got dtype {item_ids.dtype}"
        )
    if item_ids.size and (item_ids.min() < 0 or item_ids.max() >= n_rows):
        raise ValueError(
            f"{path}: item_ids point at rows {item_ids.min()}..{item_ids.max()} but the file has rows 0..{n_rows - 1}"
        )
    return item_ids.astype(np.int64)
