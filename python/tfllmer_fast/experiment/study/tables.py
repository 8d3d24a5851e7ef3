"""The study report's Markdown tables: test metrics per variant with the changes over ID-only
and LLMInit, the target groups (item groups; repeat / explore), the selection grid, the
conditioning and the training loss. The trivial baselines have rows in every metric table,
and a cell of a run that stopped at the epoch cap while improving carries :data:`CAP_MARK`."""

from __future__ import annotations

import numpy as np

from ..results import GROUPS, chance_metrics, fmt_mean_std, format_table, mean_std
from .spec import VARIANT_LABELS


def relative_improvement(value: float, baseline: float) -> float:
    """(value - baseline) / baseline in percent (NaN when the baseline is 0 or missing)."""
    if baseline is None or not np.isfinite(baseline) or baseline == 0:
        return float("nan")
    return 100.0 * (value - baseline) / baseline


def fmt_pct(x: float) -> str:
    return "–" if not np.isfinite(x) else f"{x:+.1f}%"


#: Marks a cell whose runs (one seed or more) stopped at the epoch cap while improving.
CAP_MARK = "†"
CAP_NOTE = (
    f"{CAP_MARK} stopped at the epoch cap while improving (the best validation at the last epoch "
    "allowed) in at least one seed: those models were still improving."
)
BASELINE_LABELS = {
    "popularity": "popularity (baseline)",
    "last-item": "last item (baseline)",
    "llm-knn": "LLM-kNN (baseline)",
}
#: Columns of the repeat / explore table: (results key suffix, header); "" = all targets.
REPEAT_COLUMNS = (("", "all"), ("repeat", "repeat"), ("explore", "explore"), ("warm_explore", "warm explore"),
                  ("cold_explore", "cold explore"))  # fmt: skip


def _metric_values(runs, split, metric, key="metrics"):
    return [r[key][split][metric] for r in runs if r.get(key) and metric in r[key].get(split, {})]


def _mark(runs) -> str:
    return CAP_MARK if any(r.get("capped") for r in runs) else ""


def _entries(section: dict):
    """(label, variant key or None, runs, tag) of every variant with runs, then every
    baseline (one deterministic run, no seeds)."""
    for v, info in section["variants"].items():
        if info["runs"]:
            tag = info.get("tag", "default")
            tag = tag if info.get("grid_complete", True) else f"{tag} (grid unfinished)"
            yield VARIANT_LABELS[v], v, info["runs"], tag
    for name, b in section.get("baselines", {}).items():
        tag = ", ".join(f"{k} {v}" for k, v in b.get("setting", {}).items()) or "–"
        yield BASELINE_LABELS.get(name, name), None, [b], tag


def results_table(section: dict, ks=(10, 20)) -> str:
    """Test metrics (mean ± std over seeds) and relative improvement over ID-only/LLMInit,
    every variant and baseline; cap marks and their note below the table."""
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
    for label, v, runs, tag in _entries(section):
        mark = _mark(runs)
        row = {"variant": label, "setting": tag, "seeds": str(len(runs)) if v else "–"}
        for k in ks:
            row[f"NDCG@{k}"] = fmt_mean_std(_metric_values(runs, "test", f"ndcg@{k}")) + mark
            row[f"Recall@{k}"] = fmt_mean_std(_metric_values(runs, "test", f"recall@{k}")) + mark
        for b, name in (("id", "ID"), ("llminit", "LLMInit")):
            for m, short in (("ndcg@10", "N"), ("recall@10", "R")):
                mine = mean_std(_metric_values(runs, "test", m))[0]
                row[f"Δ{short}@10 vs {name}"] = (
                    fmt_pct(relative_improvement(mine, base[b][m])) if b in base and v != b else "–"
                )
        row["best epoch / run"] = (
            ", ".join(f"{r['best_epoch']}/{r['epochs_run']}{CAP_MARK if r.get('capped') else ''}" for r in runs)
            if v
            else "–"
        )
        sec = [r["timings"]["per_epoch_s"] for r in runs if r.get("timings", {}).get("per_epoch_s") is not None]
        row["s/epoch"] = f"{np.median(sec):.2f}" if sec else "–"
        rows.append(row)
    out = format_table(rows, cols)
    return out + ("\n\n" + CAP_NOTE if any(_mark(runs) for _, _, runs, _ in _entries(section)) else "")


def target_group_table(section: dict, metrics=("ndcg@10", "recall@10"), split: str = "test", columns=None) -> str:
    """Test metrics by target group (mean ± std over seeds) for every variant, row method
    and baseline, beside the chance level of a uniform random ranking.

    ``columns``: (results key suffix, header) pairs, "" = all targets (default: the item
    groups warm, cold, head, tail). Only columns some run reports are shown. Rows:
    ``projection`` = the model as trained (cold rows keep their initial projected rows: they
    get no update); ``aligned`` = the cold rows replaced by the ridge map of the trained warm
    rows (or by the projection itself where the map lost to it on validation). ID-only
    models only have random rows: the chance reference.
    """
    columns = [(g, g) for g in GROUPS] if columns is None else list(columns)
    entries = list(_entries(section))

    def key_of(g):
        return f"{split}_{g}" if g else split

    present = [(g, h) for g, h in columns if any(key_of(g) in r["metrics"] for _, _, runs, _ in entries for r in runs)]
    if not any(g for g, _ in present):
        return ""
    cols = ["variant", "rows", "seeds"] + [f"{h} {short}" for _, h in present for short in _short(metrics)]
    rows, n_targets = [], {}
    for label, v, runs, _ in entries:
        methods = [("projection" if v else "–", "metrics")]
        chosen = [r.get("aligned_chosen") for r in runs if r.get("metrics_aligned")]
        if chosen:
            kept = sum(c == "projection" for c in chosen)
            methods.append(
                ("aligned" + (f" ({kept}/{len(chosen)} kept projection)" if kept else ""), "metrics_aligned")
            )
        mark = _mark(runs)
        for method, key in methods:
            row = {"variant": label + mark, "rows": "random (chance ref.)" if v == "id" else method}
            row["seeds"] = str(len(runs)) if v else "–"
            for g, h in present:
                for m, short in zip(metrics, _short(metrics)):
                    row[f"{h} {short}"] = fmt_mean_std(_metric_values(runs, key_of(g), m, key))
                n_targets.setdefault(h, runs[0]["metrics"].get(key_of(g), {}).get("n_targets"))
            rows.append(row)
    n_items = next((r.get("n_items") for _, _, runs, _ in entries for r in runs if r.get("n_items")), None)
    if n_items:
        ch = chance_metrics(n_items, ks=sorted({int(m.split("@")[1]) for m in metrics}))
        row = {"variant": "uniform random ranking", "rows": "chance", "seeds": "–"}
        for _, h in present:
            for m, short in zip(metrics, _short(metrics)):
                row[f"{h} {short}"] = f"{ch[m]:.4f}"
        rows.append(row)
    sizes = ", ".join(f"{h} {n_targets.get(h)}" for _, h in present)
    note = "\n\n" + CAP_NOTE if any(_mark(runs) for _, _, runs, _ in entries) else ""
    return format_table(rows, cols) + f"\n\nTest targets per group (first seed): {sizes}." + note


def repeat_table(section: dict, metrics=("ndcg@10", "recall@10"), split: str = "test") -> str:
    """:func:`target_group_table` over all targets, the targets that occur in the user's
    history (repeat), the others (explore) and the explore targets among warm and cold
    items."""
    return target_group_table(section, metrics, split, columns=REPEAT_COLUMNS)


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
