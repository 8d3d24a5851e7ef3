"""The study report: runs collected per dataset/backbone/variant, Markdown tables, the
training-loss figure and STUDY.md."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from ..plots import new_figure, save_figure
from ..results import GROUPS, chance_metrics, fmt_mean_std, format_table, load_results, mean_std
from .spec import VARIANT_LABELS, VARIANTS, StudySpec, jobs_for, select_setting, setting_tag


def relative_improvement(value: float, baseline: float) -> float:
    """(value - baseline) / baseline in percent (NaN when the baseline is 0 or missing)."""
    if baseline is None or not np.isfinite(baseline) or baseline == 0:
        return float("nan")
    return 100.0 * (value - baseline) / baseline


def fmt_pct(x: float) -> str:
    return "–" if not np.isfinite(x) else f"{x:+.1f}%"


def collect(spec: StudySpec, root: Path) -> dict:
    """Every finished run grouped by dataset/backbone/variant, with the selection grid."""
    sections = []
    for ds in spec.datasets:
        for backbone in spec.backbones:
            entry = {"dataset": ds.name, "backbone": backbone, "variants": {}}
            for variant in [v for v in VARIANTS if v in spec.variants]:  # canonical order
                grid_jobs = jobs_for(spec, ds, backbone, variant, root, False, None)
                done = [j for j in grid_jobs if (j.folder / "results.json").exists()]
                if not done:
                    continue
                metric = grid_jobs[0].config.selection_metric
                complete = len(done) == len(grid_jobs)
                chosen, grid_rows = select_setting(done, metric)
                seed_jobs = jobs_for(spec, ds, backbone, variant, root, True, chosen)
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
            if entry["variants"]:
                sections.append(entry)
    total = 0.0
    for p in (root / "runs").rglob("results.json") if (root / "runs").exists() else []:
        total += load_results(p)["timings"]["total_s"]
    return {"title": spec.title, "sections": sections, "sum_of_run_seconds": total}


def _metric_values(runs, split, metric):
    return [r["metrics"][split][metric] for r in runs if metric in r["metrics"].get(split, {})]


def results_table(section: dict, ks=(10, 20)) -> str:
    """Test metrics (mean ± std over seeds) and relative improvement over ID-only/LLMInit."""
    vs = section["variants"]
    base = {
        b: {m: mean_std(_metric_values(vs[b]["runs"], "test", m))[0] for m in ("ndcg@10", "recall@10")}
        for b in ("id", "llminit")
        if b in vs and vs[b]["runs"]
    }
    cols = ["variant", "setting", "seeds"]
    for k in ks:
        cols += [f"NDCG@{k}", f"Recall@{k}"]
    cols += ["ΔN@10 vs ID", "ΔR@10 vs ID", "ΔN@10 vs LLMInit", "ΔR@10 vs LLMInit", "best epoch / run", "s/epoch"]
    rows = []
    for v, info in vs.items():
        runs = info["runs"]
        if not runs:
            continue
        tag = info["tag"] if info.get("grid_complete", True) else f"{info['tag']} (grid unfinished)"
        row = {"variant": VARIANT_LABELS[v], "setting": tag, "seeds": str(len(runs))}
        for k in ks:
            row[f"NDCG@{k}"] = fmt_mean_std(_metric_values(runs, "test", f"ndcg@{k}"))
            row[f"Recall@{k}"] = fmt_mean_std(_metric_values(runs, "test", f"recall@{k}"))
        for b, name in (("id", "ID"), ("llminit", "LLMInit")):
            for m, short in (("ndcg@10", "N"), ("recall@10", "R")):
                mine = mean_std(_metric_values(runs, "test", m))[0]
                row[f"Δ{short}@10 vs {name}"] = (
                    fmt_pct(relative_improvement(mine, base[b][m])) if b in base and v != b else "–"
                )
        row["best epoch / run"] = ", ".join(f"{r['best_epoch']}/{r['epochs_run']}" for r in runs)
        sec = [r["timings"]["per_epoch_s"] for r in runs if r.get("timings", {}).get("per_epoch_s") is not None]
        row["s/epoch"] = f"{np.median(sec):.2f}" if sec else "–"
        rows.append(row)
    return format_table(rows, cols)


def target_group_table(section: dict, metrics=("ndcg@10", "recall@10"), split: str = "test") -> str:
    """Test metrics by target group (warm, cold, head, tail; mean ± std over seeds) for
    every variant and row method, beside the chance level of a uniform random ranking.

    Rows: ``projection`` = the model as trained (cold rows keep their initial projected
    rows: they get no update); ``aligned`` = the cold rows replaced by the ridge map of the
    trained warm rows. ID-only models only have random rows: the chance reference.
    """
    vs = section["variants"]
    present = [g for g in GROUPS if any(f"{split}_{g}" in r["metrics"] for info in vs.values() for r in info["runs"])]
    if not present:
        return ""
    cols = ["variant", "rows", "seeds"]
    cols += [f"{g} {short}" for g in present for short in _short(metrics)]
    rows = []
    n_targets = {}
    for v, info in vs.items():
        runs = info["runs"]
        if not runs:
            continue
        methods = [("projection", "metrics")]
        if any(r.get("metrics_aligned") for r in runs):
            methods.append(("aligned", "metrics_aligned"))
        for method, key in methods:
            label = "random (chance ref.)" if v == "id" else method
            row = {"variant": VARIANT_LABELS[v], "rows": label, "seeds": str(len(runs))}
            for g in present:
                for m, short in zip(metrics, _short(metrics)):
                    vals = [
                        r[key][f"{split}_{g}"][m] for r in runs if r.get(key) and m in r[key].get(f"{split}_{g}", {})
                    ]
                    row[f"{g} {short}"] = fmt_mean_std(vals)
                n_targets.setdefault(g, runs[0]["metrics"].get(f"{split}_{g}", {}).get("n_targets"))
            rows.append(row)
    n_items = next((r.get("n_items") for info in vs.values() for r in info["runs"] if r.get("n_items")), None)
    if n_items:
        ch = chance_metrics(n_items, ks=sorted({int(m.split("@")[1]) for m in metrics}))
        row = {"variant": "uniform random ranking", "rows": "chance", "seeds": "–"}
        for g in present:
            for m, short in zip(metrics, _short(metrics)):
                row[f"{g} {short}"] = f"{ch[m]:.4f}"
        rows.append(row)
    sizes = ", ".join(f"{g} {n_targets.get(g)}" for g in present)
    return format_table(rows, cols) + f"\n\nTest targets per group (first seed): {sizes}."


def _short(metrics):
    return [m.replace("ndcg", "N").replace("recall", "R") for m in metrics]


def selection_table(section: dict) -> str:
    rows = []
    for v, info in section["variants"].items():
        if len(info["grid"]) < 2:  # nothing was selected
            continue
        for g in info["grid"]:
            rows.append(
                {
                    "variant": VARIANT_LABELS[v],
                    "setting": g["tag"],
                    f"valid {info['selection_metric']}": f"{g['valid']:.4f}",
                    "chosen": "**yes**" if g["chosen"] else "",
                    "complete": "" if info["grid_complete"] else "grid unfinished",
                }
            )
    if not rows:
        return ""
    cols = ["variant", "setting", next(k for k in rows[0] if k.startswith("valid")), "chosen"]
    if any(r["complete"] for r in rows):
        cols.append("complete")
    return format_table(rows, cols)


def _fmt_sci(x) -> str:
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "–"
    return f"{x:.3g}"


def conditioning_table(section: dict) -> str:
    """Hessian figures (first seed of the chosen setting) at init and after training."""
    rows = []
    for v, info in section["variants"].items():
        if not info["runs"]:
            continue
        cond = info["runs"][0]["conditioning"]
        row = {"variant": VARIANT_LABELS[v]}
        for stage in ("init", "trained"):
            c = cond.get(stage, {})
            row[f"{stage} λmax"] = _fmt_sci(c.get("lambda_max"))
            row[f"{stage} λmin"] = _fmt_sci(c.get("lambda_min"))
            row[f"{stage} κ"] = _fmt_sci(c.get("condition_number"))
            if "gauss_newton" in c:
                row[f"{stage} κ"] += f" (GN {_fmt_sci(c['gauss_newton']['condition_number'])})"
        row["item-norm cv (init → trained)"] = (
            f"{_fmt_sci(cond.get('init', {}).get('item_norm_cv'))} → "
            f"{_fmt_sci(cond.get('trained', {}).get('item_norm_cv'))}"
        )
        rows.append(row)
    cols = [
        "variant",
        "init λmax",
        "init λmin",
        "init κ",
        "trained λmax",
        "trained λmin",
        "trained κ",
        "item-norm cv (init → trained)",
    ]
    return format_table(rows, cols) if rows else ""


def loss_table(section: dict) -> str:
    """Training loss at epochs 1, 5, 10, at the last epoch every variant ran (a comparison at
    equal training time) and at each run's best epoch (first seed): the Figure-1 question."""
    hists = {v: info["runs"][0] for v, info in section["variants"].items() if info["runs"]}
    if not hists:
        return ""
    common = min(len(r["history"]) for r in hists.values())
    rows = []
    for v, run in hists.items():
        loss = {h["epoch"]: h["train_loss"] for h in run["history"]}
        best = run["best_epoch"]
        row = {"variant": VARIANT_LABELS[v]}
        for e in (1, 5, 10):
            row[f"ep {e}"] = f"{loss[e]:.4f}" if e in loss else "–"
        row[f"ep {common} (all ran)"] = f"{loss[common]:.4f}" if common in loss else "–"
        row["at best epoch"] = f"{loss[best]:.4f} (ep {best})" if best in loss else "–"
        rows.append(row)
    cols = ["variant", "ep 1", "ep 5", "ep 10", f"ep {common} (all ran)", "at best epoch"]
    return format_table(rows, cols)


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
    first = summary["sections"][0]["variants"] if summary["sections"] else {}
    metric = next(iter(first.values()))["selection_metric"] if first else "ndcg@10"
    lines += [
        "Test metrics: mean ± sample std over seeds (one value when one seed); full "
        f"ranking, leave-one-out; settings chosen on validation {metric} only. "
        "Δ = relative change of the mean.",
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
        png = root / "plots" / f"loss-{g['dataset']}-{g['backbone']}.png"
        if plot_section(g, png) is not None:
            lines += [f"![training loss, {head}](plots/{png.name})", ""]
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
