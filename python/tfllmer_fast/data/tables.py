"""Tables of your own: interaction logs and item-text tables (CSV, TSV, Parquet, DataFrames).

Keys are kept as written (see :func:`~.keys.typed_keys`): key columns of delimited text are
read as text, so ``00001`` stays ``"00001"``. Dates must be unambiguous: ISO 8601, or a
``time_format`` you give.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .._npz import open_npz
from .files import read_key_list
from .keys import typed_keys
from .sequences import Sequences

#: The time column read when the table has one (any other column named must exist).
DEFAULT_TIME_COL = "timestamp"
#: The text of an item when a table has several text columns: joined with this.
TEXT_SEPARATOR = ". "


def load_interactions(
    path_or_df,
    user_col: str = "user_id",
    item_col: str = "item_id",
    time_col: str | None = DEFAULT_TIME_COL,
    sep: str | None = None,
    *,
    time_format: str | None = None,
    key_type: str = "auto",
    **read_kwargs,
) -> Sequences:
    """Sequences from a (user, item, timestamp) table: CSV/TSV/Parquet file or DataFrame.

    Parameters
    ----------
    path_or_df : str, Path or pandas.DataFrame
        ``.parquet``/``.pq`` is read with pandas+pyarrow; other files as delimited text.
    user_col, item_col : str
        Column names of the user and item keys.
    time_col : str or None
        Column to order each user's events by. If ``None``, or the default ``"timestamp"``
        and the table has no such column, the row order of the table is the chronological
        order; another name the table lacks is a ValueError. Dates with a UTC offset
        (``2025-02-07T10:00:00Z``, tz-aware Parquet columns) are compared in UTC.
    sep : str, optional
        Delimiter; default from the extension (``.tsv``/``.tab`` tab, ``.csv`` comma,
        otherwise sniffed).
    time_format : str, optional
        ``strptime`` format of a text time column (e.g. ``"%d/%m/%Y %H:%M"``). Without it a
        text column must hold ISO 8601 dates; anything else (``07/02/2025``: 7 February or
        2 July?) is a ValueError naming the first such value.
    key_type : {"auto", "str", "int"}
        How user and item keys are typed (see :func:`~tfllmer_fast.data.keys.typed_keys`):
        ``auto`` keeps them as written unless every key is a canonical integer.
    **read_kwargs
        Passed to ``pandas.read_csv`` / ``read_parquet`` (e.g. ``header=None,
        names=[...]`` for a file without a header).

    Returns
    -------
    Sequences
        See :meth:`Sequences.from_interactions`: users and items remapped to contiguous
        ids by sorted key (raw keys in ``user_ids``/``item_ids``); within a user a stable
        sort by timestamp, ties kept in row order.
    """
    df = read_table(path_or_df, sep, read_kwargs, text_columns=(user_col, item_col))
    missing = [c for c in (user_col, item_col) if c not in df.columns]
    if missing:
        raise ValueError(f"column(s) {missing} not found; the table has {list(df.columns)}")
    if len(df) == 0:
        raise ValueError("the interaction table is empty")
    users = typed_keys(df[user_col], key_type, f"column {user_col!r}")
    items = typed_keys(df[item_col], key_type, f"column {item_col!r}")
    for col, values in ((user_col, users), (item_col, items)):
        _check_non_negative_ids(values, col)
    ts = None
    if time_col is not None and time_col in df.columns:
        ts = parse_times(df[time_col], time_col, time_format)
    elif time_col not in (None, DEFAULT_TIME_COL):
        # Only the default column may be absent (then row order is the order): a column the
        # user named and the table lacks is a typo, not a request for row order.
        raise ValueError(
            f"time column {time_col!r} not found; the table has {list(df.columns)} (time_col=None: row order)"
        )
    return Sequences.from_interactions(users, items, ts)


def parse_times(column, name: str, time_format: str | None = None):
    """A numeric or datetime column as it is; a text column parsed as dates: with
    ``time_format``, or as ISO 8601 (anything else is an error naming the value)."""
    pd = import_pandas()
    if pd.api.types.is_numeric_dtype(column) or pd.api.types.is_datetime64_any_dtype(column):
        if time_format is not None:
            raise ValueError(f"time_format={time_format!r} given but column {name!r} is not text")
        if isinstance(column.dtype, pd.DatetimeTZDtype):
            return column.dt.tz_convert("UTC").dt.tz_localize(None)  # one clock for every row
        return column
    if column.isna().any():
        row = int(np.flatnonzero(column.isna().to_numpy())[0])
        raise ValueError(f"column {name!r} has a missing time at data row {row}")
    fmt = time_format or "ISO8601"
    # utc=True: dates with offsets (``...Z``, ``+02:00``, mixed) compare on one clock; dates
    # without one are taken as UTC.
    parsed = pd.to_datetime(column, format=fmt, errors="coerce", utc=True).dt.tz_localize(None)
    bad = np.flatnonzero(parsed.isna().to_numpy())
    if bad.size:
        row, value = int(bad[0]), column.iloc[int(bad[0])]
        if time_format is not None:
            raise ValueError(f"column {name!r}: {value!r} (data row {row}) does not match time_format={time_format!r}")
        raise ValueError(
            f"column {name!r}: {value!r} (data row {row}) is not an ISO 8601 date (YYYY-MM-DD[ HH:MM[:SS]]), and "
            "a date such as 07/02/2025 is ambiguous (7 February or 2 July?): give its format, e.g. "
            "time_format='%d/%m/%Y %H:%M' (CLI: --time-format)"
        )
    return parsed


def load_item_text_table(
    path_or_df,
    item_ids,
    *,
    item_col: str = "item_id",
    text_cols=None,
    key_type: str = "auto",
    sep: str | None = None,
) -> tuple[list[str], dict]:
    """The text of every item of ``item_ids`` (a dataset's raw item keys) from a table.

    The table has an item-key column ``item_col`` and text columns: ``text_cols``, default
    the column ``text`` when there is one, else every text column but the key. Several
    columns are joined with ``". "`` (empty cells skipped). Items without a row get ``""``
    (an all-zero embedding, reported later); rows of items not in ``item_ids`` are ignored.
    Keys are typed as the log's (``key_type``), so they match it.

    Returns ``(texts, counts)``: one string per item, and ``{"rows", "matched",
    "items_without_text", "unknown_rows"}``.
    """
    pd = import_pandas()
    df = read_table(path_or_df, sep, {}, text_columns=None)
    if item_col not in df.columns:
        raise ValueError(
            f"the item-text table has no column {item_col!r} (its columns: {list(df.columns)}): name its key column "
            "as the log's item column, or pass item_col="
        )
    if text_cols is None:
        text_cols = ["text"] if "text" in df.columns else [c for c in df.columns if c != item_col]
    text_cols = [text_cols] if isinstance(text_cols, str) else list(text_cols)
    missing = [c for c in text_cols if c not in df.columns]
    if missing or not text_cols:
        raise ValueError(f"text column(s) {missing or text_cols} not found; the table has {list(df.columns)}")
    keys = typed_keys(df[item_col], key_type, f"item-text column {item_col!r}")
    parts = df[text_cols].fillna("").astype(str)
    joined = parts.apply(lambda row: TEXT_SEPARATOR.join(t.strip() for t in row if t.strip()), axis=1)
    wanted = np.asarray(item_ids)
    if not (keys.dtype.kind in "iu" and wanted.dtype.kind in "iu"):  # compare as written
        keys, wanted = keys.astype(str).astype(object), wanted.astype(str).astype(object)
    wanted = pd.Index(wanted)
    series = pd.Series(joined.to_numpy(), index=keys)
    if series.index.has_duplicates:
        dup = series.index[series.index.duplicated()][0]
        raise ValueError(f"the item-text table has several rows for item {dup!r}")
    aligned = series.reindex(wanted)
    texts = aligned.fillna("").tolist()
    matched = int(aligned.notna().sum())
    counts = {
        "rows": len(df),
        "matched": matched,
        "items_without_text": int(sum(1 for t in texts if not t)),
        "unknown_rows": len(df) - matched,
    }
    return texts, counts


def _check_non_negative_ids(values: np.ndarray, name: str) -> None:
    """Integer ids are expected to be >= 0: a negative one is almost surely a typo or a
    sentinel, and as a key it would silently take rank 0 and shift every other id."""
    if values.dtype.kind == "i" and values.size and values.min() < 0:
        row = int((values < 0).argmax())
        raise ValueError(
            f"column {name!r} has a negative id ({values[row]}) at data row {row}; "
            "ids must be >= 0 (remove or fix those rows)"
        )


def read_table(path_or_df, sep, read_kwargs: dict, *, text_columns=None):
    """A DataFrame from a DataFrame, a Parquet file or a delimited text file. Delimited
    text: ``text_columns`` are read as text (keys as written); ``None``: every column."""
    pd = import_pandas()
    if isinstance(path_or_df, pd.DataFrame):
        return path_or_df
    path = Path(path_or_df)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        return pd.read_parquet(path, **read_kwargs)
    kwargs = dict(read_kwargs)
    if "dtype" not in kwargs:
        kwargs["dtype"] = str if text_columns is None else dict.fromkeys(text_columns, str)
    kwargs.setdefault("keep_default_na", text_columns is not None)
    if sep is None:
        sep = {".tsv": "\t", ".tab": "\t", ".csv": ","}.get(suffix)
    if sep is None:
        return pd.read_csv(path, sep=None, engine="python", **kwargs)
    return pd.read_csv(path, sep=sep, **kwargs)


def import_pandas():
    try:
        import pandas as pd
    except ImportError as e:  # pragma: no cover - pandas is in the test/data extras
        raise ImportError("reading tables needs pandas (the data extra): pip install 'pandas>=2' pyarrow") from e
    return pd


def load_new_items(path, *, ids=None, id_col: str = "item_id", text_cols=None, allow_pickle: bool = False):
    """New items for a trained model: ``(keys, embeddings, texts)``, one of the last two None.

    ``path``: ``.npy`` (k x D embeddings); ``.npz`` with ``embeddings`` and optionally
    ``ids`` (strings; an object array, e.g. a pandas column, is read only with
    ``allow_pickle=True``: unpickling runs code, so allow it for files you trust); or a
    table (``.csv``, ``.tsv``, ``.parquet``) with the key column ``id_col`` and either text
    (``text_cols``, default the column ``text``) or embeddings (every other numeric column,
    or one list-valued Parquet column). ``ids``: a file of keys (one per line, ``#``
    comments; or a table with ``id_col``) that overrides the file's. Keys are kept as
    written. ``keys`` is None when neither the file nor ``ids`` has any.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file of new items: {path}")
    suffix = path.suffix.lower()
    keys = texts = emb = None
    if suffix == ".npy":
        emb = np.load(path, allow_pickle=False)
    elif suffix == ".npz":
        with open_npz(path) as z:
            if "embeddings" not in z:
                raise ValueError(f"{path}: no array 'embeddings' (arrays: {list(z.keys())})")
            emb = z["embeddings"]
            has_ids = "ids" in z
        if has_ids:
            try:
                with open_npz(path) as z:
                    keys = z["ids"]
            except ValueError:  # an object array (strings saved from pandas, say)
                if not allow_pickle:
                    raise ValueError(
                        f"{path}: its 'ids' are an object array, which only unpickling reads (and unpickling "
                        "runs code): save them as strings (np.asarray(ids, dtype=str)), or, for a file you "
                        "trust, allow_pickle=True (CLI: --allow-pickle)"
                    ) from None
                with open_npz(path, allow_pickle=True) as z:
                    keys = z["ids"]
            keys = [str(k) for k in np.asarray(keys).reshape(-1).tolist()]
    elif suffix in (".csv", ".tsv", ".tab", ".parquet", ".pq"):
        keys, emb, texts = _new_items_table(path, id_col, text_cols)
    else:
        raise ValueError(f"{path}: new items must be a .npy, .npz, .csv, .tsv or .parquet file")
    if ids is not None:
        keys = _read_keys(Path(ids), id_col)
    return keys, emb, texts


def _new_items_table(path: Path, id_col: str, text_cols):
    pd = import_pandas()
    df = read_table(path, None, {}, text_columns=(id_col,))
    if id_col not in df.columns:
        raise ValueError(f"{path}: no key column {id_col!r} (columns: {list(df.columns)}): pass id_col / --id-col")
    keys = [str(k) for k in df[id_col].tolist()]
    if text_cols is not None or "text" in df.columns:
        cols = ["text"] if text_cols is None else ([text_cols] if isinstance(text_cols, str) else list(text_cols))
        missing = [c for c in cols if c not in df.columns]
        if missing:
            raise ValueError(f"{path}: text column(s) {missing} not found (columns: {list(df.columns)})")
        parts = df[cols].fillna("").astype(str)
        texts = [TEXT_SEPARATOR.join(t.strip() for t in row if t.strip()) for row in parts.itertuples(index=False)]
        return keys, None, texts
    rest = [c for c in df.columns if c != id_col]
    lists = [c for c in rest if df[c].dtype == object and len(df) and hasattr(df[c].iloc[0], "__len__")]
    if len(rest) == 1 and lists:
        emb = np.asarray(df[rest[0]].tolist(), dtype=np.float64)
    else:
        numeric = [c for c in rest if pd.api.types.is_numeric_dtype(df[c])]
        if not numeric or len(numeric) != len(rest):
            raise ValueError(
                f"{path}: besides {id_col!r} the table needs a 'text' column or only numeric embedding columns "
                f"(found {rest[:6]})"
            )
        emb = df[numeric].to_numpy(dtype=np.float64)
    return keys, emb, None


def _read_keys(path: Path, id_col: str) -> list[str]:
    if not path.is_file():
        raise FileNotFoundError(f"no such file of ids: {path}")
    if path.suffix.lower() in (".csv", ".tsv", ".tab", ".parquet", ".pq"):
        df = read_table(path, None, {}, text_columns=(id_col,))
        if id_col not in df.columns:
            raise ValueError(f"{path}: no key column {id_col!r} (columns: {list(df.columns)})")
        return [str(k) for k in df[id_col].tolist()]
    return read_key_list(path, "file of ids")
