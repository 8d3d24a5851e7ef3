"""Readers of interaction data: sequence files, interaction tables, RecBole atomic files,
item text.

Everything returns the package's one in-memory format, :class:`Sequences` (0-based,
contiguous item ids; item ``i`` = embedding row ``i``). Files in the shared-data layout use
1-based ids (0 is padding there); they are shifted on load.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .dataset import Dataset
from .keys import typed_keys
from .sequences import Sequences

# ---------------------------------------------------------------- key lists


def read_key_list(path, what: str = "key list") -> list[str]:
    """The keys of a text file, as written: whitespace-separated, ``#`` starts a comment
    (lists of item keys: cold items, candidates, exclusions, new items' ids)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such {what}: {path}")
    return [t for line in path.read_text().splitlines() for t in line.split("#", 1)[0].split()]


# ---------------------------------------------------------------- sequence files


def load_sequence_file(path, *, n_items: int | None = None) -> Sequences:
    """Read a one-user-per-line file ``user_id item_id item_id ...`` (1-based item ids).

    Items are shifted to 0-based ids and the file's ids kept as their keys (``item_ids[i]``
    = ``i + 1``); ``user_ids`` keeps the first token of every line as written (int when all
    are canonical integers). ``n_items`` defaults to the largest id in the file.
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
                raise ValueError(f"{path}:{lineno}: item ids must be integers, got {line.strip()[:80]!r}") from None
            if min(ids) < 1:
                raise ValueError(
                    f"{path}:{lineno}: item id {min(ids)} < 1 (ids in sequence files are 1-based; 0 is padding)"
                )
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
    return Sequences(
        offsets,
        arr.astype(np.int32),
        n,
        user_ids=typed_keys(users, "auto", "user ids"),
        # The file's own (1-based) ids are the items' keys: what a user writes in a request.
        item_ids=np.arange(1, n + 1, dtype=np.int64),
    )


# ---------------------------------------------------------------- RecBole atomic files


def load_recbole_atomic(
    inter_path,
    item_path=None,
    *,
    user_field: str = "user_id",
    item_field: str = "item_id",
    time_field: str = "timestamp",
    text_fields=None,
) -> Dataset:
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
    seqs = Sequences.from_interactions(_token_keys(inter[user_field]), _token_keys(inter[item_field]), ts)
    if item_path is None:
        guess = inter_path.with_suffix(".item")
        item_path = guess if guess.is_file() else None
    texts = None
    if item_path is not None:
        table = _read_atomic(Path(item_path))
        if item_field not in table:
            raise ValueError(f"{item_path}: no {item_field!r} field; fields are {list(table)}")
        if text_fields is None:
            text_fields = [f for f, t in table.types.items() if f != item_field and t in ("token", "token_seq")]
        keys = _token_keys(table[item_field])
        joined = [
            ". ".join(str(table[f][r]) for f in text_fields if str(table[f][r]).strip()) for r in range(len(keys))
        ]
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
                raise ValueError(
                    f"{path}: header field {col!r} is not 'name:type' with type token, token_seq, float or float_seq"
                )
            names.append(name)
            types.append(typ)
        cols: list[list[str]] = [[] for _ in names]
        for lineno, line in enumerate(f, 2):
            line = line.rstrip("\n").rstrip("\r")
            if not line:
                continue
            parts = line.split("\t")
            if len(parts) != len(names):
                raise ValueError(f"{path}:{lineno}: {len(parts)} fields, header has {len(names)}")
            for c, v in zip(cols, parts):
                c.append(v)
    table = _AtomicTable()
    table.types = dict(zip(names, types))
    for name, typ, c in zip(names, types, cols):
        if typ == "float":
            try:
                table[name] = np.asarray(c, dtype=np.float64)
            except ValueError:
                raise ValueError(f"{path}: field {name!r} is typed float but holds non-numbers") from None
        else:
            table[name] = c
    return table


def _token_keys(values) -> np.ndarray:
    if isinstance(values, np.ndarray):
        return values
    return typed_keys(np.asarray(values, dtype=object), "auto", "token keys")


# ---------------------------------------------------------------- item text


def load_item_text(path) -> list[str]:
    """Item texts from a TSV with header ``item_id<TAB>raw_key<TAB>text`` (1-based ids).

    Returns ``texts`` with ``texts[i]`` = text of item id ``i + 1``; ids missing from the
    file get ``""``. The ``raw_key`` column is optional.
    """
    ids, _, texts = read_item_text_table(Path(path))
    out = [""] * int(ids.max())
    for i, t in zip(ids.tolist(), texts):
        out[i - 1] = t
    return out


def read_item_text_table(path: Path):
    with open(path, encoding="utf-8") as f:
        header = f.readline().rstrip("\n").rstrip("\r").split("\t")
        if "item_id" not in header or "text" not in header:
            raise ValueError(f"{path}: header must name 'item_id' and 'text' columns (tab-separated), got {header}")
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
                raise ValueError(f"{path}:{lineno}: item_id {parts[i_id]!r} is not an integer") from None
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
