"""``tfllmer-fast``: the command-line interface.

Subcommands: ``graph`` (training co-occurrence graph -> .npz), ``reduce`` (normalise +
Rec-PCA -> Z and the projection, .npz), ``train`` (one configuration, optionally from a
saved item table), ``run`` (the whole pipeline), ``evaluate`` (a saved checkpoint),
``compare`` (tabulate results), ``study`` (a grid from a file). With no arguments: the demo,
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
import os
import sys
import time
import types
import typing
import warnings
from dataclasses import MISSING, fields
from pathlib import Path

from .config import PRESETS, Config, _flatten, load_config_file

#: The Config fields each subcommand reads (the others would do nothing there).
_DATA_FIELDS = ("dataset", "kcore", "synthetic_users", "synthetic_items", "synthetic_dim",
                "threads")
_GRAPH_FIELDS = ("graph_window", "graph_weighting")
COMMAND_FIELDS = {
    "graph": _DATA_FIELDS + _GRAPH_FIELDS,
    "reduce": _DATA_FIELDS + _GRAPH_FIELDS + ("embeddings", "lam", "hidden", "normalize_llm"),
}
_UNSET = object()  # a flag not given: distinct from None ("--flag none")


class UsageError(Exception):
    """An expected failure: printed as one line, exit code 2."""


# ----- Config <-> argparse -----------------------------------------------------------------
def _none_or(conv):
    def parse(s: str):
        return None if s.lower() in ("none", "null") else conv(s)
    parse.__name__ = conv.__name__
    return parse


def _bool(s: str) -> bool:
    if s.lower() in ("1", "true", "yes", "on"):
        return True
    if s.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"not a boolean: {s!r}")


_HINTS = typing.get_type_hints(Config)


def _add_config_flags(p: argparse.ArgumentParser, names=None) -> None:
    g = p.add_argument_group("configuration (Config fields; flags override --config and --preset)")
    for f in fields(Config):
        if names is not None and f.name not in names:
            continue
        flag = "--" + f.name.replace("_", "-")
        hint = _HINTS[f.name]
        is_union = typing.get_origin(hint) in (typing.Union, types.UnionType)
        args = typing.get_args(hint) if is_union else ()
        nullable = type(None) in args
        base = next(a for a in args if a is not type(None)) if is_union else hint
        default = f.default if f.default is not MISSING else f.default_factory()
        choices = f.metadata.get("choices")
        text = f.metadata.get("help", "")
        if choices:
            text += f"; one of {', '.join(choices)}"
        text += f" (default: {'none' if default is None else default})"
        if nullable and base is not bool:
            text += "; 'none' for none"
        if base is bool and not nullable:
            g.add_argument(flag, action=argparse.BooleanOptionalAction, default=_UNSET, help=text)
        elif typing.get_origin(base) is list:
            g.add_argument(flag, type=int, nargs="+", default=_UNSET, help=text, metavar="K")
        else:
            conv = {int: int, float: float, str: str, bool: _bool}[base]
            g.add_argument(flag, type=_none_or(conv) if nullable else conv, default=_UNSET,
                           help=text, metavar=base.__name__.upper())


def config_from_args(args, base: dict | None = None) -> Config:
    """Config from the defaults, ``--preset``, ``--config FILE``, then the flags given."""
    data = dict(base or {})
    preset = getattr(args, "preset", None)
    if preset:
        data.update(PRESETS[preset])
    if getattr(args, "config", None):
        data.update(_flatten(load_config_file(args.config)))
    for f in fields(Config):
        v = getattr(args, f.name, _UNSET)
        if v is not _UNSET:
            data[f.name] = v
    return Config.from_dict(data)


def _default_output(config: Config) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{Path(config.dataset).name}-{config.label}-seed{config.seed}-{stamp}"


def _writable_folder(path: Path) -> Path:
    """Create ``path`` and check that files can be written there, before any work."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise UsageError(f"cannot write to {path}: {e.strerror or e}; choose another "
                         "--output folder") from None
    return path


def _writable_file(path) -> Path:
    path = Path(path)
    _writable_folder(path.parent if str(path.parent) else Path("."))
    return path


def _npz_path(out) -> Path:
    """numpy appends .npz to a name without it; say so up front, so messages are right."""
    out = Path(out)
    return _writable_file(out if out.suffix == ".npz" else out.with_name(out.name + ".npz"))


# ----- subcommands -------------------------------------------------------------------------
def _load(config: Config, embeddings: bool):
    from .run import load_run_data, make_split

    data = load_run_data(config, embeddings=embeddings)
    return data, make_split(data.sequences)


def cmd_graph(args) -> int:
    import scipy.sparse as sp

    from .._atomic import atomic_open
    from ..graph.item_table import training_graph

    config = config_from_args(args, {"init": "random", "embeddings": None})
    out = _npz_path(args.out)
    data, split = _load(config, embeddings=False)
    t = time.perf_counter()
    g = training_graph(split, window=config.graph_window, weighting=config.graph_weighting,
                       n_threads=config.threads)
    with atomic_open(out) as f:
        sp.save_npz(f, sp.csr_matrix(g))
    print(f"graph of {data.name} (training part): {g.shape[0]} items, {g.nnz} non-zeros, "
          f"{time.perf_counter() - t:.2f} s -> {out}")
    return 0


def cmd_reduce(args) -> int:
    import numpy as np
    import scipy.sparse as sp

    from .._atomic import atomic_open
    from ..data import check_embeddings
    from ..graph import RecPCA
    from ..graph.item_table import training_graph

    config = config_from_args(args)
    if config.embeddings is None:
        raise UsageError("reduce needs item embeddings: drop --embeddings none or name a file")
    out = _npz_path(args.out)
    data, split = _load(config, embeddings=True)
    X = check_embeddings(data.embeddings, split.n_items)
    t = time.perf_counter()
    graph = (sp.csr_array(sp.load_npz(args.graph)) if args.graph
             else training_graph(split, window=config.graph_window,
                                 weighting=config.graph_weighting, n_threads=config.threads))
    if graph.shape != (split.n_items, split.n_items):
        raise UsageError(f"graph shape {graph.shape} does not match {split.n_items} items")
    pca = RecPCA(n_components=args.dim or config.hidden, lam=config.lam,
                 normalize=config.normalize_llm is not False, n_threads=config.threads)
    Z = pca.fit_transform(X, graph)
    with atomic_open(out) as f:
        np.savez(f, Z=np.asarray(Z, np.float32), components=pca.components_,
                 eigenvalues=pca.eigenvalues_, mean=pca.mean_, lam=config.lam)
    print(f"Rec-PCA of {data.name}: {X.shape} -> {Z.shape} (lambda {config.lam}) "
          f"in {time.perf_counter() - t:.2f} s -> {out}")
    return 0


def _run(args, config: Config) -> int:
    import numpy as np

    from ..graph.item_table import rescale_table
    from ..train import resolve_device
    from .run import run_experiment, run_summary, save_run

    device = resolve_device(config.device)  # no CUDA: fail now, not after loading data
    out = _writable_folder(Path(args.output) if args.output else _default_output(config))
    args.resolved_output = out
    resumes = (out / "checkpoint.pt").exists() and not args.no_resume
    print(f"{config.label} on {config.dataset}: up to {config.epochs} epochs (patience "
          f"{config.patience}) on {device}; run folder {out}"
          + (" (resuming its checkpoint)" if resumes else ""), flush=True)
    table = graph = None
    if getattr(args, "item_table", None):
        with np.load(args.item_table) as z:
            table = rescale_table(z["Z"], config.init_scale, config.init_std).astype(np.float32)
    if getattr(args, "graph", None):
        import scipy.sparse as sp

        graph = sp.csr_array(sp.load_npz(args.graph))
    result = run_experiment(config, output_dir=out, item_table=table, graph=graph,
                            resume=not args.no_resume)
    written = save_run(result, out)
    print("\n" + run_summary(result))
    print(f"\nresults: {written['results']}" + (f"\nplot: {written['plot']}"
                                                 if "plot" in written else ""))
    return 0


def cmd_train(args) -> int:
    config = config_from_args(args)
    if getattr(args, "item_table", None) and config.init == "random":
        raise UsageError("--item-table given with --init random: pass --init pca or recpca")
    return _run(args, config)


def cmd_run(args) -> int:
    if args.preset:
        fields_set = ", ".join(f"{k}={v}" for k, v in PRESETS[args.preset].items())
        print(f"preset {args.preset!r}: {fields_set} (flags override it)")
    return _run(args, config_from_args(args))


def cmd_evaluate(args) -> int:
    from ..train import Trainer, build_model, load_checkpoint
    from .results import metrics_table, write_json_atomic
    from .run import load_run_data, make_split

    st = load_checkpoint(args.checkpoint)
    changes = {k: v for k, v in (("device", args.device), ("protocol", args.protocol),
                                 ("mask_history", args.mask_history)) if v is not None}
    config = Config.from_dict(st["config"]).replace(progress=False, **changes)
    data = load_run_data(config, embeddings=False)
    split = make_split(data.sequences)
    model = build_model(config, split.n_items)
    model.load_state_dict(st["best_state"] or st["model"])
    trainer = Trainer(model, split, config, resume=False)
    protocols = ["full", "sampled"] if config.protocol == "both" else [config.protocol]
    metrics = {}
    for p in protocols:
        sfx = "" if p == "full" else "_sampled"
        for which in args.split:
            metrics[which + sfx] = trainer.evaluate(which, protocol=p)
    print(f"{config.label} on {data.name}, checkpoint {args.checkpoint} (epoch "
          f"{st['epoch']}, best state of epoch {st['result']['best_epoch']})")
    print(metrics_table(metrics, tuple(config.ks)))
    if args.json:
        write_json_atomic({"checkpoint": str(args.checkpoint), "config": config.to_dict(),
                           "metrics": metrics}, args.json)
    return 0


def cmd_compare(args) -> int:
    from .results import compare_runs, load_results

    paths = []
    for p in args.results:
        p = Path(p)
        if not p.exists():
            raise UsageError(f"{p} does not exist")
        paths += sorted(p.rglob("results.json")) if p.is_dir() else [p]
    if not paths:
        raise UsageError(f"no results.json found under {', '.join(args.results)}")
    runs = [load_results(p) | {"folder": str(p.parent)} for p in paths]
    print(compare_runs(runs, metrics=args.metrics, split=args.split,
                       group_seeds=not args.no_group))
    return 0


def cmd_study(args) -> int:
    from .study import StudySpec, run_study

    spec = StudySpec.from_file(args.config)
    t0 = time.time()
    run_study(spec, args.output, datasets=args.datasets, backbones=args.backbones,
              variants=args.variants, verbose=not args.quiet, train=not args.report_only,
              write_report=not args.no_report, group_size=args.group_size,
              deadline=(time.monotonic() + args.budget_s) if args.budget_s else None)
    if not args.no_report:
        print(f"\nstudy report: {Path(args.output) / 'STUDY.md'} ({time.time() - t0:.0f} s)")
    return 0


# ----- parser ------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="tfllmer-fast",
        description="TF-LLMER sequential recommenders: co-occurrence graph, Rec-PCA, "
                    "SASRec/GRU4Rec/BERT4Rec training and evaluation. With no arguments: "
                    "the demo (run --preset quick on the synthetic catalogue).")
    p.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def with_config(sp, names=None):
        sp.add_argument("--config", help="TOML, YAML or JSON file of Config fields")
        sp.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show tracebacks of errors")
        _add_config_flags(sp, names)

    g = sub.add_parser("graph", help="build the training co-occurrence graph (.npz)")
    g.add_argument("--out", required=True, help="output .npz (scipy.sparse.save_npz)")
    with_config(g, COMMAND_FIELDS["graph"])
    g.set_defaults(func=cmd_graph)

    r = sub.add_parser("reduce", help="normalise + Rec-PCA the item embeddings (.npz)")
    r.add_argument("--out", required=True, help="output .npz with Z, components, mean, ...")
    r.add_argument("--graph", help="precomputed graph .npz (default: build it)")
    r.add_argument("--dim", type=int, help="output dimension (default: --hidden)")
    with_config(r, COMMAND_FIELDS["reduce"])
    r.set_defaults(func=cmd_reduce)

    for name, func, text in (("train", cmd_train, "train and evaluate one configuration"),
                             ("run", cmd_run, "the whole pipeline (default: TF-LLMER SASRec "
                                              "on the synthetic catalogue)")):
        t = sub.add_parser(name, help=text)
        t.add_argument("--output", help="run folder (default: runs/<dataset>-<label>-...)")
        t.add_argument("--no-resume", action="store_true",
                       help="ignore an existing checkpoint in the output folder")
        t.add_argument("--preset", choices=sorted(PRESETS),
                       help="start from a named set of fields: "
                            + "; ".join(f"{k}: {', '.join(f'{f}={v}' for f, v in d.items())}"
                                        for k, d in PRESETS.items()))
        if name == "train":
            t.add_argument("--item-table", help="initial item table .npz from `reduce` (Z)")
            t.add_argument("--graph", help="precomputed training graph .npz for init=recpca")
        with_config(t)
        t.set_defaults(func=func)

    e = sub.add_parser("evaluate", help="evaluate a saved checkpoint")
    e.add_argument("checkpoint", help="checkpoint.pt of a run folder")
    e.add_argument("--split", nargs="+", default=["valid", "test"], choices=["valid", "test"],
                   help="splits to evaluate (default: both)")
    e.add_argument("--protocol", choices=["full", "sampled", "both"],
                   help="full ranking, 100 sampled negatives, or both (default: the run's)")
    e.add_argument("--mask-history", action=argparse.BooleanOptionalAction, default=None,
                   help="exclude the user's history items (default: the run's)")
    e.add_argument("--device", help="'auto', 'cpu', 'cuda' or 'cuda:N' (default: the run's)")
    e.add_argument("--json", help="also write the metrics to this JSON file")
    e.set_defaults(func=cmd_evaluate)

    c = sub.add_parser("compare", help="tabulate results.json files (or folders of runs)")
    c.add_argument("results", nargs="+", help="results.json files or folders searched for them")
    c.add_argument("--metrics", nargs="+", default=["ndcg@10", "recall@10"],
                   help="metrics to show (default: ndcg@10 recall@10)")
    c.add_argument("--split", default="test", help="split of the metrics (default: test)")
    c.add_argument("--no-group", action="store_true", help="one row per run (no seed groups)")
    c.set_defaults(func=cmd_compare)

    s = sub.add_parser("study", help="run (or resume) a study grid from a TOML/YAML file "
                                     "and write Markdown tables + plots")
    s.add_argument("--config", required=True, help="study file (see studies/)")
    s.add_argument("--output", required=True, help="study folder (runs/, STUDY.md, plots/)")
    s.add_argument("--datasets", nargs="+", help="only these dataset names (this invocation)")
    s.add_argument("--backbones", nargs="+", help="only these backbones")
    s.add_argument("--variants", nargs="+", help="only these variants")
    s.add_argument("--report-only", action="store_true",
                   help="train nothing; tabulate the finished runs")
    s.add_argument("--no-report", action="store_true",
                   help="train only (parallel shards); tabulate later with --report-only")
    s.add_argument("--quiet", action="store_true", help="no per-run output")
    s.add_argument("--group-size", type=int, default=16,
                   help="runs of one shape trained together on stacked parameters (1: alone)")
    s.add_argument("--budget-s", type=float,
                   help="start no group or epoch after this many seconds (resume later)")
    s.set_defaults(func=cmd_study)
    return p


def _warning_printer(command: str):
    def show(message, category, filename, lineno, file=None, line=None):
        print(f"tfllmer-fast {command}: warning: {message}", file=sys.stderr)
    return show


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
        print("no command given: running the demo, `tfllmer-fast run --preset quick` on the "
              "synthetic catalogue (see `tfllmer-fast --help`)")
        argv = ["run", "--preset", "quick"]
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        with warnings.catch_warnings():
            # One line per warning, as the errors: the file and line of a package-internal
            # warnings.warn mean nothing to a command-line user.
            warnings.showwarning = _warning_printer(args.command)
            return args.func(args)
    except KeyboardInterrupt:
        out = getattr(args, "resolved_output", None)
        hint = (f" (run again with --output {out} to resume)" if out is not None
                else "")
        print(f"\ninterrupted{hint}", file=sys.stderr)
        return 130
    except (UsageError, ValueError, OSError, ImportError) as e:
        if getattr(args, "debug", False):
            raise
        print(f"tfllmer-fast {args.command}: error: {_fix_for(e)}", file=sys.stderr)
        return 2


def console_main() -> None:
    """The ``tfllmer-fast`` script. This process is the CLI's own, so it may set OpenMP's
    wait policy: passive waiting keeps the C++ kernels' idle threads from spinning on the
    cores that torch needs next (5-10x slower mixed workloads on small machines). Set before
    libgomp loads; an explicit OMP_WAIT_POLICY wins."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    console_main()
