"""One entry point for every data source: the shared datasets, the synthetic catalogue,
a folder or a file of your own.

Layout of a dataset folder (``../shared/data/<name>``)::

    sequences.txt          one user per line: "user_id item_id item_id ...", oldest first
    item_text.tsv          header "item_id<TAB>raw_key<TAB>text", item_id 1..n_items
    item_emb_minilm_l6.npy float32 [n_items, D], row k = item_id k+1 (0-based item k)
"""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path

import numpy as np

from .dataset import Dataset
from .embeddings import load_embeddings
from .files import load_recbole_atomic, load_sequence_file, read_item_text_table
from .paths import shared_data_dir, where_data_is_looked_for
from .sequences import Sequences, kcore_filter
from .tables import DEFAULT_TIME_COL, load_interactions, load_item_text_table

BUILTIN_DATASETS = ("beauty", "scientific", "ml-100k")
EMBEDDING_FILES = {
    "minilm": ("item_emb_minilm_l6.npy", None),
    "feat512": ("item_emb_feat1cls_512.f32", 512),
}


#: Options of table sources (CSV, TSV, Parquet) and their defaults.
TABLE_OPTIONS = {"user_col": "user_id", "item_col": "item_id", "time_col": DEFAULT_TIME_COL, "time_format": None}


def load_dataset(
    name_or_path,
    *,
    embeddings="minilm",
    kcore=None,
    synthetic: dict | None = None,
    user_col: str = "user_id",
    item_col: str = "item_id",
    time_col: str | None = DEFAULT_TIME_COL,
    time_format: str | None = None,
    key_type: str = "auto",
    item_text=None,
    text_cols=None,
    text_cache="auto",
) -> Dataset:
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
        own embeddings for ``"synthetic"``); where there is no such file but there is item
        text (``item_text=``, a folder's ``item_text.tsv``, a RecBole ``.item``), the
        MiniLM embeddings of the texts (the ``text`` extra: the model that made the shared
        files), cached (``text_cache``); with neither, none. ``"feat512"``: the raw 512-d
        ``item_emb_feat1cls_512.f32`` (scientific only); a path: an embedding file (see
        :func:`load_embeddings`), relative paths tried against the cwd and then the data's
        folder; ``None``: no embeddings.
    kcore : int or (int, int), optional
        Apply :func:`kcore_filter` with ``k_user, k_item`` (an int sets both); embeddings
        and texts are subset to the kept items.
    synthetic : dict, optional
        Keyword arguments of :func:`make_synthetic_catalogue` for ``"synthetic"`` (its
        defaults otherwise); an error for any other source.
    user_col, item_col, time_col, time_format : str
        The columns of a table source and the format of a text time column (see
        :func:`load_interactions`); ``item_col`` also names the key column of ``item_text``.
    key_type : {"auto", "str", "int"}
        How keys read from text are typed (see :func:`~tfllmer_fast.data.keys.typed_keys`):
        by default they stay as written unless every key is a canonical integer.
    item_text : path or DataFrame, optional
        A table of item text (CSV, TSV, Parquet): the key column ``item_col`` and the text
        columns ``text_cols`` (default: ``text``, else every other column), joined with
        ``". "``. Items without a row get ``""``.
    text_cache : "auto", path or None
        Where computed text embeddings are kept: ``"auto"`` = ``$TFLLMER_CACHE``, else
        ``$XDG_CACHE_HOME/tfllmer_fast``, else ``~/.cache/tfllmer_fast``; a folder; ``None``:
        not cached. An entry is reused only for the same texts and model.
    """
    if synthetic is not None and name_or_path != "synthetic":
        raise ValueError("synthetic= options apply only to the 'synthetic' dataset")
    table_options = dict(user_col=user_col, item_col=item_col, time_col=time_col, time_format=time_format)
    changed = [k for k, v in table_options.items() if v != TABLE_OPTIONS[k]]
    if item_text is not None and "item_col" in changed:
        changed.remove("item_col")  # the key column of the item-text table
    if changed and not _is_table(name_or_path):
        raise ValueError(f"{', '.join(changed)} apply to table sources (.csv, .tsv, .parquet), not {name_or_path!r}")
    ds = _load_unfiltered(name_or_path, embeddings, synthetic or {}, table_options, key_type)
    if item_text is not None:
        ds = _with_item_text(ds, item_text, item_col, text_cols, key_type)
    if embeddings == "minilm" and ds.embeddings is None and ds.item_text is not None:
        ds = Dataset(ds.name, ds.sequences, _text_embeddings(ds, name_or_path, text_cache), ds.item_text)
    if kcore is None:
        return ds
    k_user, k_item = (kcore, kcore) if np.isscalar(kcore) else tuple(kcore)
    seqs, kept = kcore_filter(ds.sequences, k_user, k_item)
    emb = None if ds.embeddings is None else np.ascontiguousarray(ds.embeddings[kept])
    text = None if ds.item_text is None else [ds.item_text[i] for i in kept]
    return Dataset(ds.name, seqs, emb, text)


def _is_table(source) -> bool:
    if not isinstance(source, (str, os.PathLike)):
        return False
    return Path(source).suffix.lower() in TABLE_SUFFIXES


TABLE_SUFFIXES = (".csv", ".tsv", ".tab", ".parquet", ".pq")


def _with_item_text(ds: Dataset, table, item_col, text_cols, key_type) -> Dataset:
    keys = ds.sequences.item_ids
    if keys is None:
        keys = np.arange(ds.n_items)
    texts, counts = load_item_text_table(table, keys, item_col=item_col, text_cols=text_cols, key_type=key_type)
    if counts["matched"] == 0:
        raise ValueError(
            f"no row of the item-text table matches an item of {ds.name} (its keys look like "
            f"{list(map(str, keys[:3]))}): check item_col and the keys"
        )
    if counts["unknown_rows"]:
        warnings.warn(
            f"{counts['unknown_rows']} row(s) of the item-text table name items that are not in {ds.name}; ignored",
            stacklevel=3,
        )
    return Dataset(ds.name, ds.sequences, ds.embeddings, texts)


def _text_embeddings(ds: Dataset, source, text_cache) -> np.ndarray:
    """MiniLM embeddings of the dataset's item texts, through the embedding cache."""
    from .text import embed_texts

    cache = None
    folder = cache_dir() if text_cache == "auto" else (None if text_cache is None else Path(text_cache))
    if folder is not None:
        tag = hashlib.sha256(str(Path(str(source)).resolve() if _is_path(source) else source).encode()).hexdigest()
        cache = folder / f"{ds.name}-{tag[:12]}-minilm.npy"
    return embed_texts(ds.item_text, cache=cache, show_progress=False)


def _is_path(source) -> bool:
    return isinstance(source, (str, os.PathLike)) and Path(source).exists()


def cache_dir() -> Path:
    """The folder of computed text embeddings: ``$TFLLMER_CACHE``, else
    ``$XDG_CACHE_HOME/tfllmer_fast``, else ``~/.cache/tfllmer_fast``."""
    if os.environ.get("TFLLMER_CACHE"):
        return Path(os.environ["TFLLMER_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "tfllmer_fast"


def _load_unfiltered(name_or_path, embeddings, synthetic: dict, table_options: dict, key_type: str) -> Dataset:
    if isinstance(name_or_path, str) and name_or_path == "synthetic":
        return _synthetic_dataset(embeddings, synthetic)
    if isinstance(name_or_path, str) and name_or_path in BUILTIN_DATASETS:
        root = shared_data_dir()
        if root is None or not (root / name_or_path).is_dir():
            where = where_data_is_looked_for() if root is None else f"{root} has no {name_or_path}/"
            raise FileNotFoundError(
                f"dataset {name_or_path!r} not found ({where}): set TFLLMER_DATA to the folder "
                f"that holds {name_or_path}/"
            )
        return _load_folder(root / name_or_path, embeddings, name=name_or_path)
    path = Path(name_or_path)
    if path.is_dir():
        if (path / "sequences.txt").is_file():
            return _load_folder(path, embeddings, name=path.name)
        inters = sorted(path.glob("*.inter"))
        if len(inters) == 1:
            ds = load_recbole_atomic(inters[0])
            return _attach(ds, None if embeddings == "minilm" else embeddings, path)
        raise FileNotFoundError(f"{path}: no sequences.txt and not exactly one .inter file")
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix == ".inter":
            ds = load_recbole_atomic(path)
        elif suffix == ".txt":
            ds = Dataset(path.stem, load_sequence_file(path), None, None)
        elif suffix in TABLE_SUFFIXES:
            ds = Dataset(path.stem, load_interactions(path, key_type=key_type, **table_options), None, None)
        else:
            raise ValueError(
                f"{path}: unknown data format {suffix!r}: a table (.csv, .tsv, .parquet), a sequence file (.txt), "
                "a RecBole .inter file, or a folder"
            )
        return _attach(ds, None if embeddings == "minilm" else embeddings, path.parent)
    raise FileNotFoundError(
        f"unknown dataset {str(name_or_path)!r}: not one of {', '.join(BUILTIN_DATASETS)}, "
        "'synthetic', nor an existing folder or file"
    )


def _load_folder(folder: Path, embeddings, name: str) -> Dataset:
    text_path = folder / "item_text.tsv"
    if embeddings == "minilm" and not (folder / EMBEDDING_FILES["minilm"][0]).is_file() and text_path.is_file():
        embeddings = None  # computed from the texts (load_dataset)
    texts = keys = None
    n_items = None
    if text_path.is_file():
        ids, raw, txt = read_item_text_table(text_path)
        n_items = int(ids.max())
        texts, keys = [""] * n_items, np.empty(n_items, dtype=object)
        keys[:] = None
        for i, k, t in zip(ids.tolist(), raw, txt):
            texts[i - 1], keys[i - 1] = t, k
    seqs = load_sequence_file(folder / "sequences.txt", n_items=n_items)
    if keys is not None:
        missing = np.flatnonzero(np.equal(keys, None))
        keys[missing] = [str(i + 1) for i in missing]
        seqs = Sequences(seqs.offsets, seqs.items, seqs.n_items, user_ids=seqs.user_ids, item_ids=keys)
    return _attach(Dataset(name, seqs, None, texts), embeddings, folder)


def _attach(ds: Dataset, embeddings, folder: Path) -> Dataset:
    if embeddings is None:
        return ds
    dim = None
    if isinstance(embeddings, str) and embeddings in EMBEDDING_FILES:
        fname, dim = EMBEDDING_FILES[embeddings]
        path = folder / fname
        if not path.is_file():
            raise FileNotFoundError(
                f"{path} not found: embeddings={embeddings!r} needs it (pass embeddings=None or a file path)"
            )
    else:
        path = Path(embeddings)
        if not path.is_file() and not path.is_absolute() and (folder / path).is_file():
            path = folder / path
    emb = load_embeddings(path, n_items=ds.n_items, dim=dim, dtype=np.float32)
    return Dataset(ds.name, ds.sequences, emb, ds.item_text)


def _synthetic_dataset(embeddings, options: dict) -> Dataset:
    from .synthetic import make_synthetic_catalogue

    cat = make_synthetic_catalogue(**options)
    ds = Dataset("synthetic", cat.sequences, None, cat.item_text)
    if embeddings == "minilm":
        return Dataset("synthetic", cat.sequences, cat.embeddings, cat.item_text)
    if embeddings == "feat512":
        raise ValueError("embeddings='feat512' exists only for the scientific dataset")
    return _attach(ds, embeddings, Path(os.getcwd()))
