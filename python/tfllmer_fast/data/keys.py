"""Raw user/item keys (ints, strings, timestamps) to contiguous ids and chronological order."""

from __future__ import annotations

import re

import numpy as np

#: How keys read from text are typed: ``auto`` (integers when every key is written as a
#: canonical integer, else strings), ``str`` (always strings), ``int`` (integers, or an error).
KEY_TYPES = ("auto", "str", "int")
# A canonical integer: what str(int(x)) gives back. "007", "+3", "1.0", "1e3" are not.
_CANONICAL_INT = re.compile(r"^(0|-?[1-9][0-9]{0,17})$")
_ANY_INT = re.compile(r"^[+-]?[0-9]+$")


def typed_keys(values, key_type: str = "auto", name: str = "keys") -> np.ndarray:
    """Keys read from text (strings, or numbers a reader already parsed) as the keys a user
    wrote: a key is never changed, so ``"00001"`` stays a string unless ``key_type="int"``
    asks for numbers. ``auto``: int64 when every key is a canonical integer (``"17"``, not
    ``"017"``, ``"+17"`` or ``"17.0"``), else the strings as written."""
    if key_type not in KEY_TYPES:
        raise ValueError(f"key_type must be one of {KEY_TYPES}, got {key_type!r}")
    if hasattr(values, "to_numpy"):
        values = values.to_numpy()
    arr = np.asarray(values)
    if arr.dtype.kind in "iu":
        return arr.astype(str).astype(object) if key_type == "str" else arr
    if arr.dtype.kind == "f":
        if key_type == "str":
            raise ValueError(f"{name} were read as numbers with decimals; read them as text to keep them as written")
        return as_key_array(arr, name)
    if arr.dtype.kind not in "OUS":
        return arr
    missing = np.flatnonzero(_is_missing(arr))
    if missing.size:
        raise ValueError(f"{name} has missing values (empty, NaN or NA), e.g. at row {int(missing[0])}")
    text = arr.astype(str).astype(object)
    if key_type == "str" or not text.size:
        return text
    # Distinct keys are far fewer than rows: check those, then map back.
    uniq, inverse = _distinct(text)
    pattern = _ANY_INT if key_type == "int" else _CANONICAL_INT
    ints = [pattern.match(v) is not None for v in uniq]
    if all(ints):
        return np.asarray([int(v) for v in uniq], dtype=np.int64)[inverse]
    if key_type == "int":
        raise ValueError(f"{name}: key_type='int' but {uniq[ints.index(False)]!r} is not an integer")
    return text


def _is_missing(arr: np.ndarray) -> np.ndarray:
    """None, NaN and pandas' NA / NaT (nullable columns), elementwise."""
    try:
        import pandas as pd
    except ImportError:
        return np.fromiter((v is None or (isinstance(v, float) and v != v) for v in arr), bool, arr.size)
    return np.asarray(pd.isna(arr), bool)


def _distinct(text: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    try:
        import pandas as pd
    except ImportError:
        uniq, inverse = np.unique(text, return_inverse=True)
        return uniq, inverse.reshape(-1)
    codes, uniq = pd.factorize(text)
    return np.asarray(uniq, dtype=object), codes


def as_key_array(x, name: str) -> np.ndarray:
    """A 1-D numpy array of keys from a list, numpy array or pandas column, without NaN."""
    if hasattr(x, "to_numpy"):
        x = x.to_numpy()
    arr = np.asarray(x)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.dtype.kind == "f":
        if not np.isfinite(arr).all():
            raise ValueError(f"{name} contains NaN or Inf (missing keys)")
        if np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)  # e.g. ids read as float because of a missing value
    elif arr.dtype == object:
        missing = [i for i, v in enumerate(arr) if v is None or (isinstance(v, float) and v != v)]
        if missing:
            raise ValueError(f"{name} has missing values (None/NaN), e.g. at row {missing[0]}")
    return arr


def factorize_sorted(keys: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Distinct keys in sorted order and every key's rank among them."""
    if keys.dtype.kind in "iu" and keys.size:
        lo, hi = int(keys.min()), int(keys.max())
        if hi - lo <= 4 * keys.size + 1024:  # dense integer ids: O(n) by counting
            present = np.bincount((keys - lo).astype(np.int64), minlength=hi - lo + 1) > 0
            rank = np.cumsum(present) - 1
            uniq = (np.flatnonzero(present) + lo).astype(keys.dtype)
            return uniq, rank[keys - lo].astype(np.int64)
    if keys.dtype.kind in "OUS":
        try:  # hashing is much faster than numpy's string sort when pandas is there
            import pandas as pd
        except ImportError:
            pd = None
        if pd is not None:
            try:
                code, uniq = pd.factorize(keys, sort=True)
            except TypeError as e:
                raise TypeError(
                    f"{what} keys cannot be sorted (mixed types?); convert them "
                    "to one type first, or pass item_ids= to fix the item "
                    "order"
                ) from e
            return np.asarray(uniq, dtype=keys.dtype), code.astype(np.int64)
    try:
        uniq, code = np.unique(keys, return_inverse=True)
    except TypeError as e:
        raise TypeError(
            f"{what} keys cannot be sorted (mixed types?); convert them to one "
            "type first, or pass item_ids= to fix the item order"
        ) from e
    return uniq, code.reshape(-1).astype(np.int64)


def lookup_keys(table: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Position of each key in ``table`` (keys must all be present, table unique)."""
    try:
        sorter = np.argsort(table, kind="stable")
        st = table[sorter]
        if st.size > 1 and np.any(st[1:] == st[:-1]):
            raise ValueError("item_ids contains duplicate keys")
        pos = np.searchsorted(st, keys)
    except TypeError as e:
        raise TypeError("item keys and item_ids are not comparable (different types?)") from e
    pos_c = np.minimum(pos, st.size - 1)
    ok = (pos < st.size) & (st[pos_c] == keys)
    if not ok.all():
        bad = keys[np.flatnonzero(~ok)[0]]
        raise ValueError(f"item {bad!r} is not in item_ids ({int((~ok).sum())} interaction(s) with unknown items)")
    return sorter[pos_c].astype(np.int64)


def stable_order(user_code: np.ndarray, ts: np.ndarray) -> np.ndarray:
    """Permutation sorting by (user, timestamp); ties keep input order."""
    if ts.dtype.kind in "iu" and ts.size:
        lo, hi = int(ts.min()), int(ts.max())
        span = hi - lo + 1
        if span * (int(user_code.max()) + 1) < 2**62:  # one combined int64 key, one sort
            key = user_code * span + (ts.astype(np.int64) - lo)
            return np.argsort(key, kind="stable")
    return np.lexsort((ts, user_code))  # stable as well


def as_time_array(t, n: int, name: str = "timestamps") -> np.ndarray:
    if hasattr(t, "to_numpy"):
        t = t.to_numpy()
    arr = np.asarray(t)
    if arr.shape != (n,):
        raise ValueError(f"{name} must have one entry per interaction ({n}), got {arr.shape}")
    if arr.dtype.kind == "M":
        if np.isnat(arr).any():
            raise ValueError(f"{name} contains missing values (NaT)")
        return arr.view(np.int64)
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or Inf")
    if arr.dtype == object:
        raise TypeError(f"{name} must be numeric or datetime64, got dtype object")
    return arr
