"""The subcommands: each reads its arguments, does its job and prints one summary."""

from __future__ import annotations

import time
from pathlib import Path

from ..config import PRESETS, Config
from .flags import UsageError, config_from_args, default_output, names_list, npz_path, writable_file, writable_folder


def _load(config: Config, embeddings: bool):
    from ..run import load_run_data, make_split

    data = load_run_data(config, embeddings=embeddings)
    return data, make_split(data.sequences)


def cmd_graph(args) -> int:
    import scipy.sparse as sp

    from ..._atomic import atomic_open
    from ...graph.item_table import training_graph

    # The graph needs no embeddings, whatever a training config file passed with it says.
    config = config_from_args(args, fixed={"init": "random", "embeddings": None})
    out = npz_path(args.out)
    data, split = _load(config, embeddings=False)
    t = time.perf_counter()
    g = training_graph(split, window=config.graph_window, weighting=config.graph_weighting, n_threads=config.threads)
    with atomic_open(out) as f:
        sp.save_npz(f, sp.csr_matrix(g))
    print(
        f"graph of {data.name} (training part): {g.shape[0]} items, {g.nnz} non-zeros, "
        f"{time.perf_counter() - t:.2f} s -> {out}"
    )
    return 0


def cmd_reduce(args) -> int:
    import numpy as np
    import scipy.sparse as sp

    from ..._atomic import atomic_open
    from ...data import check_embeddings
    from ...graph import RecPCA
    from ...graph.item_table import training_graph

    config = config_from_args(args)
    if config.embeddings is None:
        raise UsageError("reduce needs item embeddings: drop --embeddings none or name a file")
    out = npz_path(args.out)
    data, split = _load(config, embeddings=True)
    X = check_embeddings(data.embeddings, split.n_items)
    t = time.perf_counter()
    graph = (
        sp.csr_array(sp.load_npz(args.graph))
        if args.graph
        else training_graph(
            split, window=config.graph_window, weighting=config.graph_weighting, n_threads=config.threads
        )
    )
    if graph.shape != (split.n_items, split.n_items):
        raise UsageError(f"graph shape {graph.shape} does not match {split.n_items} items")
    pca = RecPCA(
        n_components=args.dim or config.hidden,
        lam=config.lam,
        normalize=config.normalize_llm is not False,
        n_threads=config.threads,
    )
    Z = pca.fit_transform(X, graph=graph)
    with atomic_open(out) as f:
        np.savez(
            f,
            Z=np.asarray(Z, np.float32),
            components=pca.components_,
            eigenvalues=pca.eigenvalues_,
            mean=pca.mean_,
            lam=config.lam,
            normalize=pca.normalize,
        )
    print(
        f"Rec-PCA of {data.name}: {X.shape} -> {Z.shape} (lambda {config.lam}) "
        f"in {time.perf_counter() - t:.2f} s -> {out}"
    )
    return 0


def _run(args, config: Config) -> int:
    from ...train import resolve_device

    device = resolve_device(config.device)  # no CUDA: fail now, not after loading data
    out = Path(args.output) if args.output else default_output(config)
    created = not out.exists()
    writable_folder(out)
    args.resolved_output = out
    try:
        return _train_and_report(args, config, out, device)
    except BaseException:
        if created and out.is_dir() and not any(out.iterdir()):
            out.rmdir()  # a run that failed before writing anything leaves no folder behind
        raise


def _train_and_report(args, config: Config, out: Path, device) -> int:
    from ..._npz import open_npz
    from ...graph.item_table import table_from_reduction
    from ..run import run_experiment, run_summary, save_run

    resumes = (out / "checkpoint.pt").exists() and not args.no_resume
    print(
        f"{config.label} on {config.dataset}: up to {config.epochs} epochs (patience "
        f"{config.patience}) on {device}; run folder {out}" + (" (resuming its checkpoint)" if resumes else ""),
        flush=True,
    )
    table = graph = projection = None
    if getattr(args, "item_table", None):
        with open_npz(args.item_table) as z:
            # The projection comes along, so that add-items can give new items rows.
            table, projection = table_from_reduction(dict(z), config.init_scale, config.init_std)
    if getattr(args, "graph", None):
        import scipy.sparse as sp

        graph = sp.csr_array(sp.load_npz(args.graph))
    result = run_experiment(
        config, output_dir=out, item_table=table, graph=graph, resume=not args.no_resume, projection=projection
    )
    written = save_run(result, out)
    print("\n" + run_summary(result))
    print(f"\nresults: {written['results']}" + (f"\nplot: {written['plot']}" if "plot" in written else ""))
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
    from ...train import load_checkpoint, model_from_checkpoint
    from ..results import metrics_table, write_json_atomic
    from ..run import load_run_data, make_run_split, make_trainer
    from ..sources import check_same_items, checkpoint_config

    st = load_checkpoint(args.checkpoint)
    changes = dict(device=args.device, protocol=args.protocol, mask_history=args.mask_history, dataset=args.dataset)
    config = checkpoint_config(st, **changes).replace(progress=False)
    data = load_run_data(config, embeddings=False)
    check_same_items(st, data)
    split = make_run_split(config, data)
    # Sized by the checkpoint: one extended by add-items ranks its new items too.
    trainer = make_trainer(config, model_from_checkpoint(st), split, resume=False)
    protocols = ["full", "sampled"] if config.protocol == "both" else [config.protocol]
    metrics = {}
    for p in protocols:
        sfx = "" if p == "full" else "_sampled"
        for which in args.split:
            metrics.update(trainer.evaluate_groups(which, protocol=p, name=which + sfx))
    print(
        f"{config.label} on {data.name}, checkpoint {args.checkpoint} (epoch "
        f"{st['epoch']}, best state of epoch {st['result']['best_epoch']})"
    )
    print(metrics_table(metrics, tuple(config.ks)))
    if args.json:
        write_json_atomic(
            {"checkpoint": str(args.checkpoint), "config": config.to_dict(), "metrics": metrics}, args.json
        )
    return 0


def cmd_compare(args) -> int:
    from ..results import compare_runs, load_results

    paths = []
    for p in args.results:
        p = Path(p)
        if not p.exists():
            raise UsageError(f"{p} does not exist")
        paths += sorted(p.rglob("results.json")) if p.is_dir() else [p]
    if not paths:
        raise UsageError(f"no results.json found under {', '.join(args.results)}")
    runs = [load_results(p) | {"folder": str(p.parent)} for p in paths]
    groups = {} if args.groups is None else {"groups": names_list(args.groups)}
    print(compare_runs(runs, metrics=args.metrics, split=args.split, group_seeds=not args.no_group, **groups))
    return 0


def cmd_add_items(args) -> int:
    import numpy as np

    from ...data.tables import load_new_items
    from ...train import load_checkpoint, save_checkpoint
    from ...train.new_items import add_items

    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise UsageError(f"{out} exists; choose another --out or pass --overwrite")
    if out.resolve() == Path(args.checkpoint).resolve():
        raise UsageError("--out must not be the input checkpoint (it would be replaced)")
    writable_file(out)
    st = load_checkpoint(args.checkpoint)
    ids, X, texts = load_new_items(
        args.items, ids=args.ids, id_col=args.id_col, text_cols=args.text_cols, allow_pickle=args.allow_pickle
    )
    if texts is not None:
        X = _embed_new_texts(st, texts)
    new = add_items(st, X, ids, method=args.method, seed=args.seed)
    save_checkpoint({k: v for k, v in new.items() if k != "format"}, out)
    k = int(np.asarray(X).shape[0])
    note = " (the chance reference: no LLM information)" if args.method == "random" else ""
    first = new["items"]["n_items"] - k
    print(
        f"added {k} item(s) with {args.method} rows{note}: ids {first}..{first + k - 1} of "
        f"{new['items']['n_items']} -> {out}"
    )
    return 0


def _embed_new_texts(st: dict, texts):
    """New items' embeddings from their text, with the encoder the model's table came from:
    only the MiniLM embeddings of item text (never a file of other vectors, nor the
    synthetic catalogue's) can be computed again here."""
    from ...data import embed_texts

    cfg = st["config"]
    if cfg.get("embeddings") != "minilm" or cfg.get("dataset") == "synthetic":
        raise UsageError(
            f"this model's item table came from embeddings={cfg.get('embeddings')!r} of {cfg.get('dataset')!r}, "
            "not MiniLM text embeddings: give the new items' embeddings from that same encoder, not text"
        )
    return embed_texts(texts, show_progress=False)


def cmd_study(args) -> int:
    from ..study import StudySpec, run_study

    spec = StudySpec.from_file(args.config)
    try:
        seeds = names_list(args.seeds, int)
    except ValueError:
        raise UsageError(f"--seeds takes integers (e.g. --seeds 1,2), got {' '.join(args.seeds)}") from None
    t0 = time.time()
    run_study(
        spec,
        args.output,
        datasets=names_list(args.datasets),
        backbones=names_list(args.backbones),
        variants=names_list(args.variants),
        seeds=seeds,
        verbose=not args.quiet,
        train=not args.report_only,
        write_report=not args.no_report,
        deadline=(time.monotonic() + args.budget_s) if args.budget_s else None,
    )
    if not args.no_report:
        print(f"\nstudy report: {Path(args.output) / 'STUDY.md'} ({time.time() - t0:.0f} s)")
    return 0
