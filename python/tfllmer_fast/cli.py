"""``tfllmer-fast``: the command-line interface.

Subcommands: ``graph`` (training co-occurrence graph -> .npz), ``reduce`` (normalise +
Rec-PCA -> Z and the projection, .npz), ``train`` (one configuration, optionally from a
saved item table), ``evaluate`` (a saved checkpoint), ``run`` (the whole pipeline; with no
arguments TF-LLMER SASRec on the built-in synthetic catalogue), ``compare`` (tabulate
results JSONs). Every :class:`~tfllmer_fast.config.Config` field is a flag
(``--batch-size 512``, ``--no-normalize-items``, ``--embeddings none``); ``--config FILE``
(TOML/YAML) sets them first, flags override.
"""

from __future__ import annotations

import argparse
import sys
import time
import types
import typing
from dataclasses import MISSING, fields
from pathlib import Path

from ._atomic import atomic_open
from .config import Config, load_config_file


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


def _add_config_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("configuration (any Config field; overrides --config)")
    for f in fields(Config):
        flag = "--" + f.name.replace("_", "-")
        hint = _HINTS[f.name]
        is_union = typing.get_origin(hint) in (typing.Union, types.UnionType)
        args = typing.get_args(hint) if is_union else ()
        nullable = type(None) in args
        base = next(a for a in args if a is not type(None)) if is_union else hint
        origin = typing.get_origin(base)
        default = f.default if f.default is not MISSING else f.default_factory()
        helptext = f"(default: {default})"
        if base is bool and not nullable:
            g.add_argument(flag, action=argparse.BooleanOptionalAction, default=None,
                           help=helptext)
        elif origin is list:
            g.add_argument(flag, type=int, nargs="+", default=None, help=helptext)
        else:
            conv = {int: int, float: float, str: str, bool: _bool}[base]
            g.add_argument(flag, type=_none_or(conv) if nullable else conv, default=None,
                           help=helptext + (" ('none' for None)" if nullable else ""))


def config_from_args(args, base: dict | None = None) -> Config:
    """Config from ``--config FILE`` then the flags given on the command line."""
    data = dict(base or {})
    if getattr(args, "config", None):
        from .config import _flatten

        data.update(_flatten(load_config_file(args.config)))
    for f in fields(Config):
        v = getattr(args, f.name, None)
        if v is not None:
            data[f.name] = v
    return Config.from_dict(data)


def _default_output(config: Config, command: str) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{Path(config.dataset).name}-{config.label}-seed{config.seed}-{stamp}"


# ----- subcommands -------------------------------------------------------------------------
def _load(config: Config):
    from .pipeline import load_run_data, make_split

    data = load_run_data(config)
    return data, make_split(data.sequences)


def cmd_graph(args) -> int:
    import scipy.sparse as sp

    from .item_init import training_graph

    config = config_from_args(args).replace(init="random")
    data, split = _load(config)
    t = time.perf_counter()
    g = training_graph(split, window=config.graph_window, weighting=config.graph_weighting)
    out = _npz_path(args.out)
    with atomic_open(out) as f:
        sp.save_npz(f, sp.csr_matrix(g))
    print(f"graph of {data.name} (training part): {g.shape[0]} items, {g.nnz} non-zeros, "
          f"{time.perf_counter() - t:.2f} s -> {out}")
    return 0


def _npz_path(out) -> Path:
    """numpy appends .npz to a name without it; say so up front, so messages are right."""
    out = Path(out)
    return out if out.suffix == ".npz" else out.with_name(out.name + ".npz")


def cmd_reduce(args) -> int:
    import numpy as np
    import scipy.sparse as sp

    from . import RecPCA
    from .item_init import check_embeddings, training_graph

    config = config_from_args(args)
    if config.embeddings is None:
        raise SystemExit("reduce needs item embeddings (--embeddings)")
    data, split = _load(config.replace(init="recpca"))
    X = check_embeddings(data.embeddings, split.n_items)
    t = time.perf_counter()
    graph = (sp.csr_array(sp.load_npz(args.graph)) if args.graph
             else training_graph(split, window=config.graph_window,
                                 weighting=config.graph_weighting))
    if graph.shape != (split.n_items, split.n_items):
        raise SystemExit(f"graph shape {graph.shape} does not match {split.n_items} items")
    pca = RecPCA(n_components=args.dim or config.hidden, lam=config.lam,
                 normalize=config.normalize_llm is not False)
    Z = pca.fit_transform(X, graph)
    out = _npz_path(args.out)
    with atomic_open(out) as f:
        np.savez(f, Z=np.asarray(Z, np.float32), components=pca.components_,
                 eigenvalues=pca.eigenvalues_, mean=pca.mean_, lam=config.lam)
    print(f"Rec-PCA of {data.name}: {X.shape} -> {Z.shape} (lambda {config.lam}) "
          f"in {time.perf_counter() - t:.2f} s -> {out}")
    return 0


def _run(args, config: Config) -> int:
    import numpy as np

    from .item_init import rescale_table
    from .pipeline import run_experiment

    out = Path(args.output) if args.output else _default_output(config, args.command)
    table = None
    graph = None
    if getattr(args, "item_table", None):
        with np.load(args.item_table) as z:
            table = rescale_table(z["Z"], config.init_scale, config.init_std).astype(np.float32)
    if getattr(args, "graph", None):
        import scipy.sparse as sp

        graph = sp.csr_array(sp.load_npz(args.graph))
    run_experiment(config, output_dir=out, item_table=table, graph=graph,
                   resume=not args.no_resume)
    print(f"\nresults: {out / 'results.json'}")
    return 0


def cmd_train(args) -> int:
    config = config_from_args(args)
    if getattr(args, "item_table", None) and config.init == "random":
        raise SystemExit("--item-table given with --init random")
    return _run(args, config)


def cmd_run(args) -> int:
    return _run(args, config_from_args(args))


def cmd_evaluate(args) -> int:
    import torch

    from .pipeline import load_run_data, make_split
    from .results import metrics_table, write_json_atomic
    from .trainer import Trainer, build_model

    st = torch.load(args.checkpoint, map_location="cpu", weights_only=True)
    changes = {k: v for k, v in (("device", args.device), ("protocol", args.protocol),
                                 ("mask_history", args.mask_history)) if v is not None}
    config = Config.from_saved(st["config"]).replace(progress=False, **changes)
    data = load_run_data(config.replace(init="random"))
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
        paths += sorted(p.rglob("results.json")) if p.is_dir() else [p]
    if not paths:
        raise SystemExit("no results.json found")
    runs = [load_results(p) for p in paths]
    print(compare_runs(runs, metrics=args.metrics, split=args.split,
                       group_seeds=not args.no_group))
    return 0


def cmd_study(args) -> int:
    from .study import StudySpec, run_study

    spec = StudySpec.from_file(args.config)
    t0 = time.time()
    run_study(spec, args.output, datasets=args.datasets, backbones=args.backbones,
              variants=args.variants, verbose=not args.quiet, train=not args.report_only,
              write_report=not args.no_report)
    if not args.no_report:
        print(f"\nstudy report: {Path(args.output) / 'STUDY.md'} ({time.time() - t0:.0f} s)")
    return 0


#: Flags added when ``tfllmer-fast`` runs with no arguments.
QUICKSTART = ["--epochs", "8", "--patience", "3"]  # prefix rows: ~8 epochs reach what 20 window epochs did


# ----- parser ------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="tfllmer-fast",
        description="TF-LLMER sequential recommenders: co-occurrence graph, Rec-PCA, "
                    "SASRec/GRU4Rec/BERT4Rec training and evaluation.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def with_config(sp):
        sp.add_argument("--config", help="TOML or YAML file of Config fields")
        _add_config_flags(sp)

    g = sub.add_parser("graph", help="build the training co-occurrence graph (.npz)")
    g.add_argument("--out", required=True, help="output .npz (scipy.sparse.save_npz)")
    with_config(g)
    g.set_defaults(func=cmd_graph)

    r = sub.add_parser("reduce", help="normalise + Rec-PCA the item embeddings (.npz)")
    r.add_argument("--out", required=True, help="output .npz with Z, components, mean, ...")
    r.add_argument("--graph", help="precomputed graph .npz (default: build it)")
    r.add_argument("--dim", type=int, help="output dimension (default: --hidden)")
    with_config(r)
    r.set_defaults(func=cmd_reduce)

    for name, func, text in (("train", cmd_train, "train and evaluate one configuration"),
                             ("run", cmd_run, "the whole pipeline (default: TF-LLMER SASRec "
                                              "on the synthetic catalogue)")):
        t = sub.add_parser(name, help=text)
        t.add_argument("--output", help="run folder (default: runs/<dataset>-<label>-...)")
        t.add_argument("--no-resume", action="store_true",
                       help="ignore an existing checkpoint in the output folder")
        if name == "train":
            t.add_argument("--item-table", help="initial item table .npz from `reduce` (Z)")
            t.add_argument("--graph", help="precomputed training graph .npz for init=recpca")
        with_config(t)
        t.set_defaults(func=func)

    e = sub.add_parser("evaluate", help="evaluate a saved checkpoint")
    e.add_argument("checkpoint", help="checkpoint.pt of a run folder")
    e.add_argument("--split", nargs="+", default=["valid", "test"], choices=["valid", "test"])
    e.add_argument("--protocol", choices=["full", "sampled", "both"])
    e.add_argument("--mask-history", action=argparse.BooleanOptionalAction, default=None)
    e.add_argument("--device")
    e.add_argument("--json", help="also write the metrics to this JSON file")
    e.set_defaults(func=cmd_evaluate)

    c = sub.add_parser("compare", help="tabulate results.json files (or folders of runs)")
    c.add_argument("results", nargs="+")
    c.add_argument("--metrics", nargs="+", default=["ndcg@10", "recall@10"])
    c.add_argument("--split", default="test")
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
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_study)
    return p


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv == ["run"]:
        # No arguments (or a bare `run`): the built-in demo, TF-LLMER SASRec on the synthetic
        # catalogue with a short schedule so that it finishes in a few minutes on a laptop CPU.
        argv = ["run", *QUICKSTART]
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as e:
        print(f"tfllmer-fast {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted (run again with the same --output to resume)", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
