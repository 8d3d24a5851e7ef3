"""Loaders: interaction logs, sequence files, RecBole atomic files, item text, embeddings.

Everything returns the package's one in-memory format, :class:`Sequences` (0-based,
contiguous item ids; item ``i`` = embedding row ``i``). Files in the shared-data layout use
1-based ids (0 is padding there); they are shifted on load.

Layout of a dataset folder (``../shared/data/<name>``)::

    sequences.txt          one user per line: "user_id item_id item_id ...", oldest first
    item_text.tsv          header "item_id<TAB>raw_key<TAB>text", item_id 1..n_items
    item_emb_minilm_l6.npy float32 [n_items, D], row k = item_id k+1 (0-based item k)
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._validation import check_finite_rows
from .paths import shared_data_dir
from .sequences import Sequences, kcore_filter

BUILTIN_DATASETS = ("beauty", "scientific", "ml-100k")
EMBEDDING_FILES = {
    "minilm": ("item_emb_minilm_l6.npy", None),
    "feat512": ("item_emb_feat1cls_512.f32", 512),
}


@dataclass
class Dataset:
    """Sequences plus optional item side information, all indexed by 0-based item id.

    ``embeddings[i]`` (float32, shape ``(n_items, D)``) and ``item_text[i]`` describe item
    ``i`` of ``sequences``; either may be ``None``.
    """

    name: str
    sequences: Sequences
    embeddings: np.ndarray | None
    item_text: list[str] | None

    def __post_init__(self):
        n = self.sequences.n_items
        if self.embeddings is not None:
            emb = self.embeddings
            if emb.ndim != 2 or emb.shape[0] != n:
                raise ValueError(f"{self.name}: embeddings have shape {emb.shape}, expected "
                                 f"({n}, dim): one row per item")
            if emb.dtype != np.float32:
                self.embeddings = np.asarray(emb, dtype=np.float32)
            check_finite_rows(self.embeddings, f"{self.name} embeddings")
        if self.item_text is not None and len(self.item_text) != n:
            raise ValueError(f"{self.name}: {len(self.item_text)} item texts for {n} items")

    @property
    def n_items(self) -> int:
        return self.sequences.n_items

    @property
    def n_users(self) -> int:
        return self.sequences.n_users


# ---------------------------------------------------------------- sequence files

def load_sequence_file(path, *, n_items: int | None = None) -> Sequences:
    """Read a one-user-per-line file ``user_id item_id item_id ...`` (1-based item ids).

    Items are shifted to 0-based ids; ``user_ids`` keeps the first token of every line (as
    int when all are integers). ``n_items`` defaults to the largest id in the file.
    Blank lines are skipped; a user without items, a non-integer token or an id < 1 is a
    ValueError naming the line.
    """
    path = Path(path)
    users: list[str] = []
    lengths: list[int] = []
    items: list[int] = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            tok = line.split()
            if not tok:
                continue
            if len(tok) == 1:
                raise ValueError(f"{path}:{lineno}: user {tok[0]!r} has no items (empty user)")
            try:
                ids = [int(t) for t in tok[1:]]
            except ValueError:
                raise ValueError(f"{path}:{lineno}: item ids must be integers, got "
                                 f"{line.strip()[:80]!r}") from None
            if min(ids) < 1:
                raise ValueError(f"{path}:{lineno}: item id {min(ids)} < 1 (ids in sequence "
                                 "files are 1-based; 0 is padding)")
            users.append(tok[0])
            lengths.append(len(ids))
            items.extend(ids)
    if not users:
        raise ValueError(f"{path}: no users (empty file)")
    arr = np.asarray(items, dtype=np.int64) - 1
    n = int(arr.max()) + 1
    if n_items is not None:
        if n > n_items:
            raise ValueError(f"{path}: item id {n} out of range 1..{n_items}")
        n = int(n_items)
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return Sequences(offsets, arr.astype(np.int32), n, user_ids=_maybe_int(users))


def _maybe_int(keys: list[str]) -> np.ndarray:
    try:
        return np.asarray([int(k) for k in keys], dtype=np.int64)
    except ValueError:
        return np.asarray(keys, dtype=object)


# ---------------------------------------------------------------- interaction tables

def load_interactions(path_or_df, user_col: str = "user_id", item_col: str = "item_id",
                      time_col: str | None = "timestamp", sep: str | None = None,
                      **read_kwargs) -> Sequences:
    """Sequences from a (user, item, timestamp) table: CSV/TSV/Parquet file or DataFrame.

    Parameters
    ----------
    path_or_df : str, Path or pandas.DataFrame
        ``.parquet``/``.pq`` is read with pandas+pyarrow; other files as delimited text.
    user_col, item_col : str
        Column names of the user and item keys (any dtype).
    time_col : str or None
        Column to order each user's events by. If ``None`` or absent from the table, the
        row order of the table is the chronological order.
    sep : str, optional
        Delimiter; default from the extension (``.tsv``/``.tab`` tab, ``.csv`` comma,
        otherwise sniffed).
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
    df = _read_table(path_or_df, sep, read_kwargs)
    missing = [c for c in (user_col, item_col) if c not in df.columns]
    if missing:
        raise ValueError(f"column(s) {missing} not found; the table has {list(df.columns)}")
    if len(df) == 0:
        raise ValueError("the interaction table is empty")
    ts = df[time_col] if time_col is not None and time_col in df.columns else None
    pd = _import_pandas()
    if ts is not None and not (pd.api.types.is_numeric_dtype(ts)
                               or pd.api.types.is_datetime64_any_dtype(ts)):
        try:  # e.g. ISO date strings in a CSV
            try:
                ts = pd.to_datetime(ts, format="mixed")
            except TypeError:  # pandas < 2 has no format="mixed"
                ts = pd.to_datetime(ts)
        except (ValueError, TypeError) as e:
            raise ValueError(f"column {time_col!r} is neither numeric nor parseable as "
                             "dates") from e
    return Sequences.from_interactions(df[user_col], df[item_col], ts)


def _read_table(path_or_df, sep, read_kwargs):
    pd = _import_pandas()
    if isinstance(path_or_df, pd.DataFrame):
        return path_or_df
    path = Path(path_or_df)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        return pd.read_parquet(path, **read_kwargs)
    if sep is None:
        sep = {".tsv": "\t", ".tab": "\t", ".csv": ","}.get(suffix)
    if sep is None:
        return pd.read_csv(path, sep=None, engine="python", **read_kwargs)
    return pd.read_csv(path, sep=sep, **read_kwargs)


def _import_pandas():
    try:
        import pandas as pd
    except ImportError as e:  # pragma: no cover - pandas is in the test/data extras
        raise ImportError('reading tables needs pandas: pip install "tfllmer_fast[data]"') from e
    return pd


# ---------------------------------------------------------------- RecBole atomic files

_INT_RE = re.compile(r"^-?\d+$")


def load_recbole_atomic(inter_path, item_path=None, *, user_field: str = "user_id",
                        item_field: str = "item_id", time_field: str = "timestamp",
                        text_fields=None) -> Dataset:
    """A Dataset from RecBole atomic files (``.inter`` and optionally ``.item``).

    Headers are typed, ``name:type`` (``token``, ``token_seq``, ``float``, ``float_seq``),
    tab-separated. Token keys that are all integers are sorted numerically, others as
    strings (see :meth:`Sequences.from_interactions`). Without a ``time_field`` column the
    file order is the chronological order. ``item_path`` defaults to the ``.item`` file
    next to ``inter_path`` when one exists. Item text joins the ``.item`` text fields
    (``text_fields``, default every ``token``/``token_seq`` column but the item id) with
    ``". "``; items absent from ``.item`` get ``""``. No embeddings are attached.
    """
    inter_path = Path(inter_path)
    inter = _read_atomic(inter_path)
    for f in (user_field, item_field):
        if f not in inter:
            raise ValueError(f"{inter_path}: no {f!r} field; fields are {list(inter)}")
    if len(inter[user_field]) == 0:
        raise ValueError(f"{inter_path}: no interactions")
    ts = inter.get(time_field)
    seqs = Sequences.from_interactions(_token_keys(inter[user_field]),
                                       _token_keys(inter[item_field]), ts)
    if item_path is None:
        guess = inter_path.with_suffix(".item")
        item_path = guess if guess.is_file() else None
    texts = None
    if item_path is not None:
        table = _read_atomic(Path(item_path))
        if item_field not in table:
            raise ValueError(f"{item_path}: no {item_field!r} field; fields are {list(table)}")
        if text_fields is None:
            text_fields = [f for f, t in table.types.items()
                           if f != item_field and t in ("token", "token_seq")]
        keys = _token_keys(table[item_field])
        joined = [". ".join(str(table[f][r]) for f in text_fields if str(table[f][r]).strip())
                  for r in range(len(keys))]
        lookup = dict(zip(keys.tolist(), joined))
        texts = [lookup.get(k, "") for k in seqs.item_ids.tolist()]
    return Dataset(name=inter_path.stem, sequences=seqs, embeddings=None, item_text=texts)


class _AtomicTable(dict):
    types: dict


def _read_atomic(path: Path) -> _AtomicTable:
    """Columns of a RecBole atomic file as lists of str / float arrays, plus their types."""
    with open(path, encoding="utf-8") as f:
        header = f.readline().rstrip("\n").rstrip("\r")
        if not header:
            raise ValueError(f"{path}: empty file (expected a typed header 'name:type ...')")
        names, types = [], []
        for col in header.split("\t"):
            name, _, typ = col.partition(":")
            if typ not in ("token", "token_seq", "float", "float_seq"):
                raise ValueError(f"{path}: header field {col!r} is not 'name:type' with type "
                                 "token, token_seq, float or float_seq")
            names.append(name)
            types.append(typ)
        cols: list[list[str]] = [[] for _ in names]
        for lineno, line in enumerate(f, 2):
            line = line.rstrip("\n").rstrip("\r")
            if not line:
                continue
            parts = line.split("\t")
            if len(parts) != len(names):
                raise ValueError(f"{path}:{lineno}: {len(parts)} fields, header has "
                                 f"{len(names)}")
            for c, v in zip(cols, parts):
                c.append(v)
    table = _AtomicTable()
    table.types = dict(zip(names, types))
    for name, typ, c in zip(names, types, cols):
        if typ == "float":
            try:
                table[name] = np.asarray(c, dtype=np.float64)
            except ValueError:
                raise ValueError(f"{path}: field {name!r} is typed float but holds "
                                 "non-numbers") from None
        else:
            table[name] = c
    return table


def _token_keys(values) -> np.ndarray:
    if isinstance(values, np.ndarray):
        return values
    if values and all(_INT_RE.match(v) for v in values):
        return np.asarray([int(v) for v in values], dtype=np.int64)
    return np.asarray(values, dtype=str)


# ---------------------------------------------------------------- item text

def load_item_text(path) -> list[str]:
    """Item texts from a TSV with header ``item_id<TAB>raw_key<TAB>text`` (1-based ids).

    Returns ``texts`` with ``texts[i]`` = text of item id ``i + 1``; ids missing from the
    file get ``""``. The ``raw_key`` column is optional.
    """
    ids, _, texts = _read_item_table(Path(path))
    out = [""] * int(ids.max())
    for i, t in zip(ids.tolist(), texts):
        out[i - 1] = t
    return out


def _read_item_table(path: Path):
    with open(path, encoding="utf-8") as f:
        header = f.readline().rstrip("\n").rstrip("\r").split("\t")
        if "item_id" not in header or "text" not in header:
            raise ValueError(f"{path}: header must name 'item_id' and 'text' columns (tab-"
                             f"separated), got {header}")
        i_id, i_text = header.index("item_id"), header.index("text")
        i_key = header.index("raw_key") if "raw_key" in header else None
        ids, keys, texts = [], [], []
        for lineno, line in enumerate(f, 2):
            line = line.rstrip("\n").rstrip("\r")
            if not line:
                continue
            parts = line.split("\t", len(header) - 1)
            parts += [""] * (len(header) - len(parts))
            try:
                ids.append(int(parts[i_id]))
            except ValueError:
                raise ValueError(f"{path}:{lineno}: item_id {parts[i_id]!r} is not an "
                                 "integer") from None
            keys.append(parts[i_key] if i_key is not None else parts[i_id])
            texts.append(parts[i_text])
    if not ids:
        raise ValueError(f"{path}: no items (empty file)")
    ids_arr = np.asarray(ids, dtype=np.int64)
    if ids_arr.min() < 1:
        raise ValueError(f"{path}: item_id {ids_arr.min()} < 1 (ids are 1-based)")
    if np.unique(ids_arr).size != ids_arr.size:
        raise ValueError(f"{path}: duplicate item_id values")
    return ids_arr, keys, texts


# ---------------------------------------------------------------- embeddings

def load_embeddings(path, *, item_ids=None, mmap: bool = True, dtype=None,
                    n_items: int | None = None, dim: int | None = None,
                    row_keys=None, key: str | None = None) -> np.ndarray:
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
        with np.load(path, allow_pickle=False) as z:
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
        emb = (np.memmap(path, dtype=np.float32, mode="r", shape=shape) if mmap
               else np.fromfile(path, dtype=np.float32).reshape(shape))
    else:
        raise ValueError(f"{path}: unknown embedding format {suffix!r} (use .npy, .npz or "
                         ".f32)")
    if emb.ndim != 2:
        raise ValueError(f"{path}: embeddings must be 2-D (n_items, dim), got {emb.shape}")
    if emb.dtype.kind != "f":
        raise ValueError(f"{path}: embeddings must be floats, got dtype {emb.dtype}")
    if item_ids is not None:
        rows = _alignment_rows(item_ids, row_keys, emb.shape[0], path)
        emb = emb[rows]
    if n_items is not None and emb.shape[0] != n_items:
        raise ValueError(f"{path}: {emb.shape[0]} embedding rows but the dataset has "
                         f"{n_items} items (one row per item expected)")
    if dtype is not None:
        emb = emb.astype(dtype, copy=False)
    check_finite_rows(emb, str(path))
    return emb


def _alignment_rows(item_ids, row_keys, n_rows: int, path) -> np.ndarray:
    if hasattr(item_ids, "to_numpy"):
        item_ids = item_ids.to_numpy()
    item_ids = np.asarray(item_ids)
    if row_keys is not None:
        from .sequences import _lookup_keys
        keys = np.asarray(row_keys.to_numpy() if hasattr(row_keys, "to_numpy") else row_keys)
        if keys.size != n_rows:
            raise ValueError(f"{path}: {keys.size} row_keys for {n_rows} embedding rows")
        try:
            return _lookup_keys(keys, item_ids)
        except ValueError as e:
            raise ValueError(f"{path}: {str(e).replace('item_ids', 'row_keys')}") from None
    if item_ids.dtype.kind not in "iu":
        raise ValueError("item_ids must be integer row indices (or pass row_keys= to look "
                         f"raw keys up), got dtype {item_ids.dtype}")
    if item_ids.size and (item_ids.min() < 0 or item_ids.max() >= n_rows):
        raise ValueError(f"{path}: item_ids point at rows {item_ids.min()}..{item_ids.max()}"
                         f" but the file has rows 0..{n_rows - 1}")
    return item_ids.astype(np.int64)


# ---------------------------------------------------------------- datasets

def load_dataset(name_or_path, *, embeddings="minilm", kcore=None) -> Dataset:
    """Load a named dataset, the synthetic catalogue, or a folder/file of your own.

    Parameters
    ----------
    name_or_path : str or Path
        ``"beauty"``, ``"scientific"``, ``"ml-100k"`` (from :func:`shared_data_dir`,
        i.e. ``$TFLLMER_DATA``), ``"synthetic"`` (the built-in catalogue,
        :func:`make_synthetic_catalogue` defaults), a folder in the shared-data layout
        (``sequences.txt`` [+ ``item_text.tsv``, ``item_emb_*.npy``]) or holding one RecBole
        ``.inter`` file, or a single file: ``.txt`` (sequence file), ``.inter`` (RecBole),
        ``.csv``/``.tsv``/``.parquet`` (interaction table).
    embeddings : {"minilm", "feat512"} or path or None
        ``"minilm"``: ``item_emb_minilm_l6.npy`` of the folder (the synthetic catalogue's
        own embeddings for ``"synthetic"``); ``"feat512"``: the raw 512-d
        ``item_emb_feat1cls_512.f32`` (scientific only); a path: an embedding file (see
        :func:`load_embeddings`), relative paths tried against the cwd and then the
        folder; ``None``: no embeddings. For a single-file source, ``"minilm"`` means none.
    kcore : int or (int, int), optional
        Apply :func:`kcore_filter` with ``k_user, k_item`` (an int sets both); embeddings
        and texts are subset to the kept items.
    """
    ds = _load_unfiltered(name_or_path, embeddings)
    if kcore is None:
        return ds
    k_user, k_item = (kcore, kcore) if np.isscalar(kcore) else tuple(kcore)
    seqs, kept = kcore_filter(ds.sequences, k_user, k_item)
    emb = None if ds.embeddings is None else np.ascontiguousarray(ds.embeddings[kept])
    text = None if ds.item_text is None else [ds.item_text[i] for i in kept]
    return Dataset(ds.name, seqs, emb, text)


def _load_unfiltered(name_or_path, embeddings) -> Dataset:
    if isinstance(name_or_path, str) and name_or_path == "synthetic":
        return _synthetic_dataset(embeddings)
    if isinstance(name_or_path, str) and name_or_path in BUILTIN_DATASETS:
        root = shared_data_dir()
        if root is None or not (root / name_or_path).is_dir():
            raise FileNotFoundError(
                f"dataset {name_or_path!r} not found: set TFLLMER_DATA to the folder that "
                f"holds {name_or_path}/ (looked in {root or 'no data folder found'})")
        return _load_folder(root / name_or_path, embeddings, name=name_or_path)
    path = Path(name_or_path)
    if path.is_dir():
        if (path / "sequences.txt").is_file():
            return _load_folder(path, embeddings, name=path.name)
        inters = sorted(path.glob("*.inter"))
        if len(inters) == 1:
            ds = load_recbole_atomic(inters[0])
            return _attach(ds, embeddings, path)
        raise FileNotFoundError(f"{path}: no sequences.txt and not exactly one .inter file")
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix == ".inter":
            ds = load_recbole_atomic(path)
        elif suffix == ".txt":
            ds = Dataset(path.stem, load_sequence_file(path), None, None)
        else:
            ds = Dataset(path.stem, load_interactions(path), None, None)
        return _attach(ds, None if embeddings == "minilm" else embeddings, path.parent)
    raise FileNotFoundError(
        f"unknown dataset {str(name_or_path)!r}: not one of {', '.join(BUILTIN_DATASETS)}, "
        "'synthetic', nor an existing folder or file")


def _load_folder(folder: Path, embeddings, name: str) -> Dataset:
    text_path = folder / "item_text.tsv"
    texts = keys = None
    n_items = None
    if text_path.is_file():
        ids, raw, txt = _read_item_table(text_path)
        n_items = int(ids.max())
        texts, keys = [""] * n_items, np.empty(n_items, dtype=object)
        keys[:] = None
        for i, k, t in zip(ids.tolist(), raw, txt):
            texts[i - 1], keys[i - 1] = t, k
    seqs = load_sequence_file(folder / "sequences.txt", n_items=n_items)
    if keys is not None:
        missing = np.flatnonzero(np.equal(keys, None))
        keys[missing] = [str(i + 1) for i in missing]
        seqs = Sequences(seqs.offsets, seqs.items, seqs.n_items, user_ids=seqs.user_ids,
                         item_ids=keys)
    return _attach(Dataset(name, seqs, None, texts), embeddings, folder)


def _attach(ds: Dataset, embeddings, folder: Path) -> Dataset:
    if embeddings is None:
        return ds
    dim = None
    if isinstance(embeddings, str) and embeddings in EMBEDDING_FILES:
        fname, dim = EMBEDDING_FILES[embeddings]
        path = folder / fname
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: embeddings={embeddings!r} needs it "
                                    "(pass embeddings=None or a file path)")
    else:
        path = Path(embeddings)
        if not path.is_file() and not path.is_absolute() and (folder / path).is_file():
            path = folder / path
    emb = load_embeddings(path, n_items=ds.n_items, dim=dim, dtype=np.float32)
    return Dataset(ds.name, ds.sequences, emb, ds.item_text)


def _synthetic_dataset(embeddings) -> Dataset:
    from .synthetic import make_synthetic_catalogue

    cat = make_synthetic_catalogue()
    ds = Dataset("synthetic", cat.sequences, None, cat.item_text)
    if embeddings == "minilm":
        return Dataset("synthetic", cat.sequences, cat.embeddings, cat.item_text)
    if embeddings == "feat512":
        raise ValueError("embeddings='feat512' exists only for the scientific dataset")
    return _attach(ds, embeddings, Path(os.getcwd()))
