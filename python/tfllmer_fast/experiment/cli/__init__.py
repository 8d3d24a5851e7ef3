"""``tfllmer-fast``: the command-line interface.

Subcommands: ``graph`` (training co-occurrence graph -> .npz), ``reduce`` (normalise +
Rec-PCA -> Z and the projection, .npz), ``train`` (one configuration, optionally from a
saved item table), ``run`` (the whole pipeline), ``evaluate`` (a saved checkpoint),
``compare`` (tabulate results), ``study`` (a grid from a file), ``add-items`` (rows for new
items), ``recommend`` (top-k lists for a file of histories) and ``export`` (ONNX encoder +
item vectors for a serving stack). With no arguments: the demo,
``run --preset quick`` on the built-in synthetic catalogue.

Each subcommand shows only the :class:`~tfllmer_fast.experiment.config.Config` fields it
uses. Order of precedence: defaults < ``--preset`` < ``--config FILE`` < flags. A flag
that is not given is *unset* (the file or preset decides); ``--flag none`` sets None.

Expected failures (bad values, missing files, no CUDA, an unwritable folder, a damaged
checkpoint, a missing optional package) print one line with the fix and exit with 2;
``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import functools
import logging
import sys
import warnings
from zipfile import BadZipFile

from ..config import PRESETS
from . import commands
from .flags import COMMAND_FIELDS, UsageError, add_config_flags, config_from_args, npz_path
from .serving_commands import add_serving_parsers

__all__ = ["UsageError", "build_parser", "config_from_args", "console_main", "main", "npz_path"]


# ----- parser ------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    # No abbreviated flags: `--epoch 2` must not silently mean `--epochs 2` (nor, once a flag
    # such as --epoch-cap exists, something else).
    p = argparse.ArgumentParser(
        prog="tfllmer-fast",
        allow_abbrev=False,
        description="TF-LLMER sequential recommenders: co-occurrence graph, Rec-PCA, "
        "SASRec/GRU4Rec/BERT4Rec training and evaluation. With no arguments: "
        "the demo (run --preset quick on the synthetic catalogue).",
    )
    p.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    sub = p.add_subparsers(
        dest="command", metavar="COMMAND", parser_class=functools.partial(argparse.ArgumentParser, allow_abbrev=False)
    )

    def with_config(sp, names=None):
        sp.add_argument("--config", help="TOML, YAML or JSON file of Config fields")
        add_config_flags(sp, names)

    g = sub.add_parser("graph", help="build the training co-occurrence graph (.npz)")
    g.add_argument("--out", required=True, help="output .npz (scipy.sparse.save_npz)")
    with_config(g, COMMAND_FIELDS["graph"])
    g.set_defaults(func=commands.cmd_graph)

    r = sub.add_parser("reduce", help="normalise + Rec-PCA the item embeddings (.npz)")
    r.add_argument("--out", required=True, help="output .npz with Z, components, mean, ...")
    r.add_argument("--graph", help="precomputed graph .npz (default: build it)")
    r.add_argument("--dim", type=int, help="output dimension (default: --hidden)")
    with_config(r, COMMAND_FIELDS["reduce"])
    r.set_defaults(func=commands.cmd_reduce)

    for name, func, text in (
        ("train", commands.cmd_train, "train and evaluate one configuration"),
        ("run", commands.cmd_run, "the whole pipeline (default: TF-LLMER SASRec on the synthetic catalogue)"),
    ):
        t = sub.add_parser(name, help=text)
        t.add_argument("--output", help="run folder (default: runs/<dataset>-<label>-...)")
        t.add_argument("--no-resume", action="store_true", help="ignore an existing checkpoint in the output folder")
        t.add_argument(
            "--preset",
            choices=sorted(PRESETS),
            help="start from a named set of fields: "
            + "; ".join(f"{k}: {', '.join(f'{f}={v}' for f, v in d.items())}" for k, d in PRESETS.items()),
        )
        if name == "train":
            t.add_argument("--item-table", help="initial item table .npz from `reduce` (Z)")
            t.add_argument("--graph", help="precomputed training graph .npz for init=recpca")
        with_config(t)
        t.set_defaults(func=func)

    e = sub.add_parser("evaluate", help="evaluate a saved checkpoint")
    e.add_argument("checkpoint", help="checkpoint.pt of a run folder")
    e.add_argument(
        "--split",
        nargs="+",
        default=["valid", "test"],
        choices=["valid", "test"],
        help="splits to evaluate (default: both)",
    )
    e.add_argument(
        "--protocol",
        choices=["full", "sampled", "both"],
        help="full ranking, 100 sampled negatives, or both (default: the run's)",
    )
    e.add_argument(
        "--mask-history",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="exclude the user's history items (default: the run's)",
    )
    e.add_argument("--device", help="'auto', 'cpu', 'cuda' or 'cuda:N' (default: the run's)")
    e.add_argument(
        "--dataset",
        help="the data to evaluate on (default: the run's, found where the run read it; it must hold the "
        "catalogue the model was trained on)",
    )
    e.add_argument("--json", help="also write the metrics to this JSON file")
    e.set_defaults(func=commands.cmd_evaluate)

    c = sub.add_parser("compare", help="tabulate results.json files (or folders of runs)")
    c.add_argument("results", nargs="+", help="results.json files or folders searched for them")
    c.add_argument(
        "--metrics", nargs="+", default=["ndcg@10", "recall@10"], help="metrics to show (default: ndcg@10 recall@10)"
    )
    c.add_argument("--split", default="test", help="split of the metrics (default: test)")
    c.add_argument("--no-group", action="store_true", help="one row per run (no seed groups)")
    c.add_argument(
        "--groups",
        nargs="+",
        help="target groups beside all targets (default: warm cold head tail repeat explore cold_explore)",
    )
    c.set_defaults(func=commands.cmd_compare)

    a = sub.add_parser(
        "add-items", help="give a trained model rows for new items from their LLM embeddings (no retraining)"
    )
    a.add_argument("checkpoint", help="checkpoint.pt of a run folder")
    a.add_argument(
        "items",
        metavar="NEW_ITEMS",
        help="the new items: .npy embeddings (k x D), .npz with 'embeddings' and optionally 'ids', or a table "
        "(.csv, .tsv, .parquet) with a key column and a text column (embedded with MiniLM, as the training items "
        "were) or numeric embedding columns",
    )
    a.add_argument("--out", required=True, help="the new checkpoint (written atomically)")
    a.add_argument(
        "--method",
        choices=["projection", "aligned", "random"],
        default="projection",
        help="projection: the projection and scaling that built the initial table; "
        "aligned: the ridge map fitted after training; random: random rows "
        "(ID-only models; the chance reference). Default: projection",
    )
    a.add_argument(
        "--ids",
        help="the new items' keys, one per row of NEW_ITEMS: a text file (one per line) or a table with --id-col "
        "(default: the file's own keys, else new-<id> with the new 0-based ids)",
    )
    a.add_argument("--id-col", default="item_id", help="key column of a table of new items (default: item_id)")
    a.add_argument(
        "--allow-pickle",
        action="store_true",
        help="read 'ids' of an .npz saved as an object array (unpickling runs code: only for files you trust)",
    )
    a.add_argument("--text-cols", nargs="+", help="text column(s) of a table of new items (default: text)")
    a.add_argument("--seed", type=int, default=0, help="seed of the random rows")
    a.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    a.set_defaults(func=commands.cmd_add_items)

    s = sub.add_parser(
        "study", help="run (or resume) a study grid from a TOML/YAML file and write Markdown tables + plots"
    )
    s.add_argument("--config", required=True, help="study file (see studies/)")
    s.add_argument("--output", required=True, help="study folder (runs/, STUDY.md, plots/)")
    s.add_argument("--datasets", nargs="+", help="only these dataset names (this invocation; commas or spaces)")
    s.add_argument("--backbones", nargs="+", help="only these backbones")
    s.add_argument("--variants", nargs="+", help="only these variants (or baselines: popularity last-item llm-knn)")
    s.add_argument(
        "--seeds",
        nargs="+",
        help="train the chosen settings with these seeds (e.g. 1,2) instead of the file's; the "
        "selection grid keeps the file's first seed and runs only when it is among them",
    )
    s.add_argument("--report-only", action="store_true", help="train nothing; tabulate the finished runs")
    s.add_argument(
        "--no-report", action="store_true", help="train only (parallel shards); tabulate later with --report-only"
    )
    s.add_argument("--quiet", action="store_true", help="no per-run output")
    s.add_argument("--budget-s", type=float, help="start no run after this many seconds (resume later)")
    s.set_defaults(func=commands.cmd_study)
    add_serving_parsers(sub)
    for sp in sub.choices.values():  # after the command too: `tfllmer-fast run ... --debug`
        sp.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks of errors")
    return p


def _warning_printer(command: str):
    def show(message, category, filename, lineno, file=None, line=None):
        print(f"tfllmer-fast {command}: warning: {message}", file=sys.stderr)

    return show


class _LogLines(logging.Handler):
    """The package's log records in this process: INFO (one line per epoch) to stdout,
    through tqdm so that a progress bar stays intact; warnings as one line on stderr."""

    def __init__(self, command: str, level=logging.INFO):
        super().__init__(level)
        self.command = command

    def emit(self, record: logging.LogRecord) -> None:
        msg = record.getMessage()
        if record.levelno >= logging.WARNING:
            print(f"tfllmer-fast {self.command}: warning: {msg}", file=sys.stderr)
            return
        from tqdm.auto import tqdm

        tqdm.write(msg, file=sys.stdout)


def _fix_for(e: BaseException) -> str:
    """The one-line message of an expected failure."""
    if isinstance(e, ImportError):
        return f"{e} (a missing optional package: see the README's install extras)"
    if isinstance(e, PermissionError):
        return f"cannot write {e.filename}: permission denied; choose another output path"
    if isinstance(e, FileNotFoundError) and e.filename:
        return f"no such file or folder: {e.filename}"
    return str(e).splitlines()[0] if str(e) else type(e).__name__


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        print(
            "no command given: running the demo, `tfllmer-fast run --preset quick` on the "
            "synthetic catalogue (see `tfllmer-fast --help`)"
        )
        argv = ["run", "--preset", "quick"]
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    # This process's own handler for the package's records (the package configures none).
    package_log = logging.getLogger("tfllmer_fast")
    handler = _LogLines(args.command, logging.WARNING if getattr(args, "quiet", False) else logging.INFO)
    level_before = package_log.level
    package_log.addHandler(handler)
    package_log.setLevel(logging.INFO)
    try:
        with warnings.catch_warnings():
            # One line per warning, as the errors: the file and line of a package-internal
            # warnings.warn mean nothing to a command-line user.
            warnings.showwarning = _warning_printer(args.command)
            return args.func(args)
    except KeyboardInterrupt:
        out = getattr(args, "resolved_output", None)
        hint = f" (run again with --output {out} to resume)" if out is not None else ""
        print(f"\ninterrupted{hint}", file=sys.stderr)
        return 130
    # BadZipFile / EOFError: a truncated or foreign .npz given as input.
    except (UsageError, ValueError, TypeError, OSError, ImportError, ArithmeticError, BadZipFile, EOFError) as e:
        if getattr(args, "debug", False):
            raise
        print(f"tfllmer-fast {args.command}: error: {_fix_for(e)}", file=sys.stderr)
        return 2
    finally:
        package_log.removeHandler(handler)
        package_log.setLevel(level_before)


def console_main() -> None:
    """The ``tfllmer-fast`` script. It leaves the environment alone: the library keeps
    OpenMP's idle threads asleep while torch trains or evaluates (``tfllmer_fast._openmp``),
    for the CLI and for Python callers alike."""
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    console_main()
