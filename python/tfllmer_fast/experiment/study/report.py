"""The study report: runs collected per dataset/backbone/variant (and the dataset's
baselines), the Markdown tables of :mod:`.tables`, the training-loss figure and STUDY.md."""

from __future__ import annotations

import json
import time
from pathlib import Path

from ..plots import new_figure, save_figure
from ..results import format_table, load_results
from .spec import (
    VARIANT_LABELS,
    VARIANTS,
    StudySpec,
    baseline_folder,
    finished_seeds,
    jobs_for,
    select_setting,
    setting_tag,
)
from .tables import (  # noqa: F401  (results_table, relative_improvement: part of this module's API)
    CAP_MARK,
    conditioning_table,
    loss_table,
    relative_improvement,
    repeat_table,
    results_table,
    selection_table,
    target_group_table,
)

#: What the report says where matplotlib is missing.
NO_PLOT = "(no plot: matplotlib is not installed; `pip install 'tfllmer_fast[plots]'` adds it)"


def _capped(r: dict) -> bool:
    """Stopped at the epoch cap while improving (computed for results written before the flag)."""
    if "capped_while_improving" in r:
        return bool(r["capped_while_improving"])
    cap = r.get("config", {}).get("epochs")
    return not r["stopped_early"] and r["best_epoch"] is not None and r["best_epoch"] == r["epochs_run"] == cap


def collect(spec: StudySpec, root: Path) -> dict:
    """Every finished run grouped by dataset/backbone/variant, with the selection grid."""
    sections = []
    for ds in spec.datasets:
        for backbone in spec.backbones:
            entry = {"dataset": ds.name, "backbone": backbone, "variants": {}, "baselines": _baselines(spec, ds, root)}
            for variant in [v for v in VARIANTS if v in spec.variants]:  # canonical order
                grid_jobs = jobs_for(spec, ds, backbone, variant, root, False, None)
                done = [j for j in grid_jobs if (j.folder / "results.json").exists()]
                if not done:
                    continue
                metric = grid_jobs[0].config.selection_metric
                complete = len(done) == len(grid_jobs)
                chosen, grid_rows = select_setting(done, metric)
                seeds = list(dict.fromkeys([*ds.seeds, *finished_seeds(root, ds, backbone, variant, chosen)]))
                seed_jobs = jobs_for(spec, ds, backbone, variant, root, True, chosen, seeds)
                runs = []
                for j in seed_jobs:
                    p = j.folder / "results.json"
                    if not p.exists():
                        continue
                    r = load_results(p)
                    cp = j.folder / "conditioning.json"
                    cond = json.loads(cp.read_text()) if cp.exists() else {}
                    runs.append(
                        {
                            "seed": j.seed,
                            "folder": str(j.folder.relative_to(root)),
                            "metrics": r["metrics"],
                            "best_epoch": r["best_epoch"],
                            "metrics_aligned": r.get("metrics_aligned"),
                            "aligned_chosen": r.get("aligned_map", {}).get("chosen", "aligned"),
                            "aligned_s": r["timings"].get("aligned_s"),
                            "capped": _capped(r),
                            "n_items": r.get("dataset", {}).get("n_items"),
                            "epochs_run": r["epochs_run"],
                            "stopped_early": r["stopped_early"],
                            "history": [
                                {"epoch": h["epoch"], "train_loss": h["train_loss"], "valid": h.get("valid", {})}
                                for h in r["history"]
                            ],
                            "timings": r["timings"],
                            "device": r["versions"].get("device"),
                            "threads": r.get("threads"),
                            "conditioning": cond,
                        }
                    )
                grid_times = []
                for j in done:
                    grid_times.append(load_results(j.folder / "results.json")["timings"]["total_s"])
                entry["variants"][variant] = {
                    "setting": chosen,
                    "tag": setting_tag(chosen),
                    "grid_complete": complete,
                    "selection_metric": metric,
                    "grid": grid_rows,
                    "runs": runs,
                    "grid_total_s": float(sum(grid_times)),
                }
            if entry["variants"] or entry["baselines"]:
                sections.append(entry)
    total = 0.0
    for p in (root / "runs").rglob("results.json") if (root / "runs").exists() else []:
        total += load_results(p)["timings"]["total_s"]
    return {"title": spec.title, "sections": sections, "sum_of_run_seconds": total}


def _baselines(spec: StudySpec, ds, root: Path) -> dict:
    out = {}
    for name in spec.baselines:
        p = baseline_folder(root, ds, name) / "results.json"
        if p.exists():
            r = load_results(p)
            out[name] = {
                "setting": r.get("setting", {}),
                "metrics": r["metrics"],
                "n_items": r["dataset"]["n_items"],
                "timings": r["timings"],
                "folder": str(p.parent.relative_to(root)),
            }
    return out


def plot_section(section: dict, path) -> Path | None:
    """Figure 1: training loss (left) and validation NDCG@10 (right) of every variant."""
    fig = new_figure(figsize=(8.4, 3.2))
    if fig is None:
        return None
    axes = fig.subplots(1, 2)
    for v, info in section["variants"].items():
        if not info["runs"]:
            continue
        hist = info["runs"][0]["history"]
        ep = [h["epoch"] for h in hist]
        axes[0].plot(ep, [h["train_loss"] for h in hist], label=VARIANT_LABELS[v], lw=1.3)
        metric = info["selection_metric"]
        pts = [(h["epoch"], h["valid"][metric]) for h in hist if metric in h.get("valid", {})]
        if pts:
            axes[1].plot(*zip(*pts), lw=1.3, label=VARIANT_LABELS[v])
    axes[0].set_title("training loss (CE per target)", fontsize=9)
    axes[1].set_title("validation NDCG@10", fontsize=9)
    for ax in axes:
        ax.set_xlabel("epoch", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    seed = next(iter(section["variants"].values()))["runs"][0]["seed"]
    fig.suptitle(f"{section['dataset']} / {section['backbone']} (seed {seed})", fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_figure(fig, path, dpi=80)
    return path


def render_report(spec: StudySpec, summary: dict, root: Path) -> str:
    """Markdown: per dataset/backbone the results, the loss table and plot, the conditioning
    and the selection grid; then the timing of the runs."""
    lines = [f"# {spec.title}", ""]
    first = next((g["variants"] for g in summary["sections"] if g["variants"]), {})
    metric = next(iter(first.values()))["selection_metric"] if first else "ndcg@10"
    lines += [
        "Test metrics: mean ± sample std over seeds (one value when one seed); full "
        f"ranking, leave-one-out; settings chosen on validation {metric} only. "
        "Δ = relative change of the mean. The baselines (popularity, last item, LLM-kNN) "
        "are ranked by the same evaluation code and need no training; "
        f"{CAP_MARK} marks runs that stopped at the epoch cap while still improving.",
        "",
    ]
    for g in summary["sections"]:
        head = f"{g['dataset']} / {g['backbone']}"
        lines += [f"## {head}", "", results_table(g), ""]
        gt = target_group_table(g)
        if gt:
            lines += [
                "Test NDCG@10 (N) and Recall@10 (R) by target group (head: the most "
                "frequent warm items holding the head share of training interactions; "
                "tail: the other warm items; cold: items never trained on):",
                "",
                gt,
                "",
            ]
        cost = [
            (r["aligned_s"], r["timings"]["session_s"])
            for info in g["variants"].values()
            for r in info["runs"]
            if r.get("aligned_s") is not None and r["timings"].get("session_s")
        ]
        if cost:
            med = sorted(c[0] / c[1] for c in cost)[len(cost) // 2]
            lines += [
                f"Fitting and evaluating the aligned map took {sum(c[0] for c in cost):.0f} s over "
                f"{len(cost)} runs (median {100 * med:.0f} % of a run's session).",
                "",
            ]
        rt = repeat_table(g)
        if rt:
            lines += [
                "Test NDCG@10 (N) and Recall@10 (R) by whether the target occurs in the user's "
                "history (repeat) or not (explore), overall and among warm and cold items:",
                "",
                rt,
                "",
            ]
        if not g["variants"]:
            continue
        png = root / "plots" / f"loss-{g['dataset']}-{g['backbone']}.png"
        if plot_section(g, png) is not None:
            lines += [f"![training loss, {head}](plots/{png.name})", ""]
        else:
            lines += [NO_PLOT, ""]
        lines += ["Training loss (first seed):", "", loss_table(g), ""]
        lines += [
            "Conditioning of the CE w.r.t. the sequence representations (fixed batch of "
            "256 training windows, first seed):",
            "",
            conditioning_table(g),
            "",
        ]
        sel = selection_table(g)
        lines += [
            "Selection grid (first seed, validation):",
            "",
            sel or "(one setting per variant here: nothing was selected)",
            "",
        ]
    lines += ["## Time", "", f"Sum of run wall times: {summary['sum_of_run_seconds'] / 60:.1f} min.", ""]
    inv = summary.get("invocations", [])
    if inv:
        import calendar

        starts = [calendar.timegm(time.strptime(i["started"], "%Y-%m-%dT%H:%M:%SZ")) for i in inv]
        ends = [s + i["wall_s"] for s, i in zip(starts, inv)]
        lines += [
            f"Span from the first start to the last end of the invocations: "
            f"{(max(ends) - min(starts)) / 60:.1f} min (invocations may overlap: "
            "parallel processes).",
            "",
        ]
        rows = [
            {
                "started (UTC)": i["started"],
                "wall": f"{i['wall_s'] / 60:.1f} min",
                "runs trained": str(i["runs_trained"]),
                "filter": ", ".join(f"{k}={v}" for k, v in i["filter"].items() if v) or "–",
            }
            for i in inv
        ]
        lines += [format_table(rows, ["started (UTC)", "wall", "runs trained", "filter"]), ""]
    dev = {r["device"] for g in summary["sections"] for v in g["variants"].values() for r in v["runs"]}
    lines += [f"Devices: {', '.join(sorted(d for d in dev if d))}.", ""]
    return "\n".join(lines)
