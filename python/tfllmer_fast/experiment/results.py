"""Run results: the JSON written by every run, versions, and text tables."""

from __future__ import annotations

import json
import math
import platform
import sys
from pathlib import Path

import numpy as np

from .._atomic import atomic_open


def write_json_atomic(obj, path) -> None:
    """Write JSON atomically (temporary file in the same folder, then ``os.replace``)."""
    with atomic_open(path, "w") as f:
        json.dump(obj, f, indent=2, default=_json_default)
        f.write("\n")


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def load_results(path) -> dict:
    """The content of a run's ``results.json``."""
    with open(path) as f:
        return json.load(f)


def versions(device=None) -> dict:
    """Versions of the stack and the device name, for reproducibility."""
    import torch

    from .._build import build_info
    from .._version import __version__

    out = {
        "tfllmer_fast": __version__,
        "build_info": build_info(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
        "cpu_threads": torch.get_num_threads(),
    }
    try:
        import scipy

        out["scipy"] = scipy.__version__
    except ImportError:  # pragma: no cover
        pass
    if device is not None:
        dev = torch.device(device)
        if dev.type == "cuda":
            out["device"] = torch.cuda.get_device_name(dev)
            out["cuda"] = torch.version.cuda
        else:
            out["device"] = f"cpu ({platform.processor() or platform.machine()})"
    return out


def format_table(rows: list[dict], columns: list[str], *, floatfmt: str = ".4f") -> str:
    """A Markdown table of ``rows`` (dicts); floats formatted with ``floatfmt``."""

    def fmt(v):
        if isinstance(v, float):
            return format(v, floatfmt)
        return "" if v is None else str(v)

    cells = [[fmt(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) if cells else len(c) for i, c in enumerate(columns)]
    line = lambda vals: "| " + " | ".join(v.ljust(w) for v, w in zip(vals, widths)) + " |"
    out = [line(columns), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(r) for r in cells]
    return "\n".join(out)


def metrics_table(metrics: dict[str, dict], ks=(5, 10, 20)) -> str:
    """Rows = splits and their target groups (valid, valid_head, test, test_cold, ...),
    columns = the number of targets and recall/ndcg/mrr at each K."""
    cols = [f"{m}@{k}" for m in ("recall", "ndcg", "mrr") for k in ks]
    rows = []
    for split, vals in metrics.items():
        row = {"split": split, "targets": vals.get("n_targets")}
        row.update({c: vals.get(c) for c in cols})
        rows.append(row)
    return format_table(rows, ["split", "targets", *cols])


#: Item groups of the evaluation (see tfllmer_fast.data.cold.item_groups), in table order.
GROUPS = ("warm", "cold", "head", "tail")
#: The groups ``compare`` shows by default: the item groups, repeat / explore (see
#: tfllmer_fast.data.cold.target_groups) and the explore targets among cold items.
COMPARE_GROUPS = (*GROUPS, "repeat", "explore", "cold_explore")


def chance_metrics(n_items: int, ks=(5, 10, 20)) -> dict[str, float]:
    """Expected metrics of a uniformly random full ranking of ``n_items`` candidates."""
    out = {}
    for k in ks:
        r = np.arange(min(k, n_items))
        out[f"recall@{k}"] = len(r) / n_items
        out[f"ndcg@{k}"] = float(np.sum(1.0 / np.log2(r + 2.0)) / n_items)
        out[f"mrr@{k}"] = float(np.sum(1.0 / (r + 1.0)) / n_items)
    return out


def mean_std(values) -> tuple[float, float | None]:
    """Mean and sample standard deviation (n-1); std is None for a single value."""
    v = np.asarray(values, dtype=float)
    if v.size == 0:
        return float("nan"), None
    return float(v.mean()), (float(v.std(ddof=1)) if v.size > 1 else None)


def fmt_mean_std(values, digits: int = 4) -> str:
    """``"mean ± sample std"`` of ``values`` (the mean alone for one value, "–" for none)."""
    m, s = mean_std(values)
    if math.isnan(m):
        return "–"
    return f"{m:.{digits}f}" if s is None else f"{m:.{digits}f} ± {s:.{digits}f}"


def compare_runs(
    results: list[dict],
    metrics=("ndcg@10", "recall@10"),
    split="test",
    group_seeds: bool = True,
    groups=COMPARE_GROUPS,
) -> str:
    """Table of several runs; runs whose configs differ only in the seed are grouped as
    mean ± std (sample std, n-1) with the number of seeds. ``groups``: the target groups
    shown beside all targets (those some run reports); a best epoch marked † is the last
    one allowed (the run stopped at the epoch cap while improving)."""
    # Runs with aligned rows for cold items (cold-start protocol) get a second row.
    expanded = []
    for r in results:
        expanded.append(r)
        if "metrics_aligned" in r:
            expanded.append(
                {**r, "label": (r.get("label") or "run") + " (aligned rows)", "metrics": r["metrics_aligned"]}
            )
    results = expanded
    present = [g for g in groups if any(f"{split}_{g}" in r.get("metrics", {}) for r in results)]
    groups: dict[str, list[dict]] = {}
    for r in results:
        cfg = dict(r.get("config", {}))
        key = r.get("label") or cfg.get("name") or "run"
        if group_seeds:
            cfg.pop("seed", None)
            cfg.pop("name", None)
            key = (
                key
                + "\x00"
                + json.dumps(
                    {k: cfg[k] for k in sorted(cfg) if k not in ("device", "threads", "progress")}, default=str
                )
            )
        else:
            key = key + "\x00" + str(len(groups))
        groups.setdefault(key, []).append(r)
    rows = []
    for key, runs in groups.items():
        row = {
            "run": key.split("\x00")[0],
            "dataset": runs[0].get("dataset", {}).get("name") or runs[0].get("config", {}).get("dataset"),
            "model": runs[0].get("config", {}).get("model"),
            "seeds": len(runs),
        }
        for m in metrics:
            vals = np.array(
                [r["metrics"][split][m] for r in runs if m in r.get("metrics", {}).get(split, {})], dtype=float
            )
            row[f"{split} {m}"] = fmt_mean_std(vals) if vals.size else None
            for g in present:
                group_split = f"{split}_{g}"
                vals = np.array(
                    [r["metrics"][group_split][m] for r in runs if m in r.get("metrics", {}).get(group_split, {})],
                    dtype=float,
                )
                row[f"{g} {m}"] = fmt_mean_std(vals) if vals.size else None
        sizes = [r["metrics"].get(f"{split}_{g}", {}).get("n_targets") for g in present for r in runs[:1]]
        row["targets " + "/".join(present)] = "/".join(str(x) for x in sizes) if present else None
        row["folder"] = ", ".join(r["folder"] for r in runs if r.get("folder")) or None
        ep = [f"{r['best_epoch']}{'†' if r.get('capped_while_improving') else ''}" for r in runs if r.get("best_epoch")]
        row["best epoch"] = ", ".join(ep)
        sec = [r.get("timings", {}).get("per_epoch_s") for r in runs]
        sec = [s for s in sec if s is not None]
        row["s/epoch"] = f"{np.median(sec):.2f}" if sec else None
        rows.append(row)
    cols = [
        "run",
        "dataset",
        "model",
        "seeds",
        *[f"{split} {m}" for m in metrics],
        *[f"{g} {m}" for g in present for m in metrics],
        *(["targets " + "/".join(present)] if present else []),
        "best epoch",
        "s/epoch",
    ]
    if any(r["folder"] for r in rows):
        cols.append("folder")
    return format_table(rows, cols)
