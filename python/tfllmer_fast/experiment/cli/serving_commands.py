"""``recommend`` (top-k lists for a file of histories) and ``export`` (the serving files)."""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import numpy as np

from .flags import UsageError, writable_file

#: Output formats of ``recommend``, by the extension of ``--out``.
OUTPUT_FORMATS = {".csv": "csv", ".tsv": "tsv", ".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl"}
OUTPUT_FORMATS[".json"] = "jsonl"


def add_serving_parsers(sub) -> None:
    """Register ``recommend`` and ``export`` on the subparsers ``sub``."""
    r = sub.add_parser("recommend", help="top-k items for every history of a file (CSV, Parquet or JSON lines)")
    r.add_argument("checkpoint", help="checkpoint.pt of a run folder, or one written by add-items")
    r.add_argument(
        "--histories",
        required=True,
        help="the users' histories: an interaction log (.csv, .tsv, .parquet; see --user-col ...), "
        "a sequence file (.txt: 'user id id ...', the model's ids + 1) or a RecBole .inter file",
    )
    r.add_argument("--out", required=True, help="output .csv, .tsv, .parquet or .jsonl/.json (JSON lines)")
    r.add_argument("--k", type=int, default=10, help="items per user (default 10)")
    r.add_argument("--user-col", default="user_id", help="log: user key column (default user_id)")
    r.add_argument("--item-col", default="item_id", help="log: item key column (default item_id)")
    r.add_argument(
        "--time-col",
        default="timestamp",
        help="log: column ordering each user's events (default timestamp; absent: the row order)",
    )
    r.add_argument("--sep", help="log: delimiter (default from the extension)")
    r.add_argument("--include-seen", action="store_true", help="keep the items of the user's history as candidates")
    r.add_argument("--items", help="file of candidate item keys (whitespace-separated, '#' comments)")
    r.add_argument("--exclude", help="file of item keys never to recommend (e.g. out of stock)")
    r.add_argument("--ids", action="store_true", help="item keys in the log and the files are the model's 0-based ids")
    r.add_argument(
        "--unknown",
        choices=["skip", "raise"],
        default="skip",
        help="item keys the model does not know: skip and count them (default) or stop with an error",
    )
    r.add_argument("--device", default="auto", help="'auto', 'cpu', 'cuda' or 'cuda:N' (default auto)")
    r.add_argument("--threads", type=int, help="CPU threads (default: all cores)")
    r.add_argument("--batch-size", type=int, help="users per block (default: automatic)")
    r.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bar (default: when stderr is a terminal)",
    )
    r.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    r.set_defaults(func=cmd_recommend)

    e = sub.add_parser(
        "export", help="write the sequence encoder (ONNX), the item vectors, the item keys and a manifest"
    )
    e.add_argument("checkpoint", help="checkpoint.pt of a run folder, or one written by add-items")
    e.add_argument("--out", required=True, help="output folder")
    e.add_argument("--overwrite", action="store_true", help="write into a folder that holds files")
    e.add_argument("--no-check", action="store_true", help="skip the onnxruntime-vs-torch check")
    e.set_defaults(func=cmd_export)


def cmd_recommend(args) -> int:
    from ...data.files import read_key_list
    from ...serving import Recommender

    out = Path(args.out)
    fmt = OUTPUT_FORMATS.get(out.suffix.lower())
    if fmt is None:
        raise UsageError(f"--out {out}: unknown output format; use {', '.join(sorted(OUTPUT_FORMATS))}")
    if out.exists() and not args.overwrite:
        raise UsageError(f"{out} exists; choose another --out or pass --overwrite")
    writable_file(out)
    if args.k < 1:
        raise UsageError(f"--k must be >= 1, got {args.k}")
    if args.threads is not None and args.threads < 1:
        raise UsageError(f"--threads must be >= 1, got {args.threads}")
    if args.batch_size is not None and args.batch_size < 1:
        raise UsageError(f"--batch-size must be >= 1, got {args.batch_size}")
    if not Path(args.checkpoint).is_file():  # before reading a long histories file
        raise FileNotFoundError(2, "no such checkpoint", str(args.checkpoint))
    t0 = time.perf_counter()
    histories = read_histories(args)
    items = read_key_list(args.items, "item list") if args.items else None
    exclude = read_key_list(args.exclude, "item list") if args.exclude else None
    rec = Recommender.from_checkpoint(
        args.checkpoint, device=args.device, threads=args.threads, batch_size=args.batch_size
    )
    recs = rec.recommend(
        histories,
        args.k,
        exclude_seen=not args.include_seen,
        items=items,
        exclude=exclude,
        ids=args.ids,
        unknown=args.unknown,
        progress=args.progress,
    )
    n_rows = write_recommendations(recs, out, fmt)
    notes = [
        f"{what} {n}"
        for what, n in (
            ("users without a known history item (no list):", recs.n_empty),
            ("unknown history keys skipped:", recs.n_unknown),
            ("unknown --items keys skipped:", recs.n_unknown_items),
            ("unknown --exclude keys skipped:", recs.n_unknown_exclude),
            ("users with fewer than k candidates:", int(((recs.lengths > 0) & (recs.lengths < args.k)).sum())),
        )
        if n
    ]
    print(
        f"{n_rows} recommendations for {len(recs) - recs.n_empty} of {len(recs)} users (k = {args.k}) in "
        f"{time.perf_counter() - t0:.2f} s -> {out}" + "".join(f"\n  {n}" for n in notes)
    )
    return 0


def cmd_export(args) -> int:
    from ...serving import Recommender, export_onnx

    t0 = time.perf_counter()
    rec = Recommender.from_checkpoint(args.checkpoint, device="cpu")
    manifest = export_onnx(rec, args.out, overwrite=args.overwrite, check=not args.no_check)
    check = manifest["check"]
    how = (
        f"onnxruntime {check['onnxruntime']} agrees with torch to {check['max_abs_diff']:.2g}"
        if check
        else "not checked (onnxruntime not installed or --no-check)"
    )
    print(
        f"exported {manifest['model']} ({manifest['n_items']} items, vectors of {manifest['dim']}) in "
        f"{time.perf_counter() - t0:.1f} s -> {args.out}: encoder.onnx, item_vectors.npy, item_keys.json, "
        f"manifest.json; {how}"
    )
    return 0


def read_histories(args):
    """The histories file as :class:`~tfllmer_fast.data.Sequences`; item keys of a text log
    are read as text (``"00042"`` stays ``"00042"``)."""
    from ...data import Sequences, load_interactions, load_recbole_atomic, load_sequence_file

    path = Path(args.histories)
    if not path.is_file():
        raise FileNotFoundError(f"no such histories file: {path}")
    suffix = path.suffix.lower()
    if suffix == ".txt":  # its tokens are the model's ids + 1, not keys
        seqs = load_sequence_file(path)
        return Sequences(seqs.offsets, seqs.items, seqs.n_items, user_ids=seqs.user_ids)
    if suffix == ".inter":
        return load_recbole_atomic(path).sequences
    return load_interactions(path, args.user_col, args.item_col, args.time_col, sep=args.sep)


def write_recommendations(recs, out: Path, fmt: str) -> int:
    """Write ``(user, rank, item, score)`` rows atomically; returns the row count."""
    from ..._atomic import atomic_open

    rows = list(recs.records())
    if fmt == "parquet":
        frame = recs.to_frame()
        frame["user"] = frame["user"].map(_plain)
        with atomic_open(out) as f:
            frame.to_parquet(f, index=False)
    elif fmt == "jsonl":
        with atomic_open(out, "w") as f:
            for u, rank, item, score in rows:
                f.write(json.dumps({"user": _plain(u), "rank": rank, "item": item, "score": score}) + "\n")
    else:
        with atomic_open(out, "w") as f:
            w = csv.writer(f, delimiter="\t" if fmt == "tsv" else ",", lineterminator="\n")
            w.writerow(["user", "rank", "item", "score"])
            for u, rank, item, score in rows:
                w.writerow([_plain(u), rank, item, format(score, ".9g")])
    return len(rows)


def _plain(x):
    return x.item() if isinstance(x, np.generic) else x
