"""Training-loss and validation curves (matplotlib is optional: no PNG without it)."""

from __future__ import annotations

import warnings
from pathlib import Path

from .._atomic import atomic_open


def new_figure(**kwargs):
    """A ``matplotlib.figure.Figure``, or None (with a warning) without matplotlib.

    A bare Figure never goes through pyplot, so no backend is selected or switched and
    nothing shows up in the caller's notebook: the figure only goes to a file."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        warnings.warn("matplotlib is not installed: no plot written (pip install matplotlib)", stacklevel=3)
        return None
    return Figure(**kwargs)


def plot_curves(
    runs: dict[str, list[dict]], path, *, metrics=("ndcg@10", "recall@10"), title: str | None = None
) -> Path | None:
    """Plot training loss and validation metrics per epoch for one or several runs.

    ``runs`` maps a label to a run's ``history`` (the per-epoch records of a results JSON:
    ``{"epoch", "train_loss", "valid": {...}}``). Returns the PNG path, or None when
    matplotlib is missing.
    """
    fig = new_figure(figsize=(4.2 * (1 + len(metrics)), 3.4))
    if fig is None:
        return None
    path = Path(path)
    axes = fig.subplots(1, 1 + len(metrics))
    for label, hist in runs.items():
        ep = [h["epoch"] for h in hist]
        axes[0].plot(ep, [h["train_loss"] for h in hist], label=label)
        for ax, m in zip(axes[1:], metrics):
            pts = [(h["epoch"], h["valid"][m]) for h in hist if h.get("valid") and m in h["valid"]]
            if pts:
                ax.plot(*zip(*pts), marker=".", label=label)
    axes[0].set_title("training loss")
    for ax, m in zip(axes[1:], metrics):
        ax.set_title(f"validation {m}")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    if len(runs) > 1:
        axes[0].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    save_figure(fig, path, dpi=110)
    return path


def save_figure(fig, path: Path, dpi: int) -> None:
    """Save atomically: a reader never sees a half-written PNG."""
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format="png", dpi=dpi)
