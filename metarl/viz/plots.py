"""PNG figures (matplotlib is imported inside each function, so ``import metarl`` does not need it)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from metarl.core.errors import writing


def pyplot():
    """``matplotlib.pyplot`` on the off-screen Agg backend (imported on first use)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(plt: Any, fig: Any, ax: Any | None, path: str | Path) -> None:
    """Legend and grid on ``ax`` (unless ``None``), then ``fig`` saved to ``path`` (PNG, 120 dpi), closed."""
    if ax is not None:
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    with writing(path):
        fig.savefig(path, dpi=120)
    plt.close(fig)


def _steps_panel(ax: Any, methods: dict[str, list[dict[str, float]]], ylabel: str) -> None:
    """One line per method (mean and its 95% interval) against inner gradient steps."""
    for method, rows in methods.items():
        steps = [r["step"] for r in rows]
        ax.plot(steps, [r["mean"] for r in rows], marker="o", label=method)
        ax.fill_between(steps, [r["ci95_low"] for r in rows], [r["ci95_high"] for r in rows], alpha=0.2)
        ax.set_xticks(steps)
    ax.set_xlabel("inner gradient steps")
    ax.set_ylabel(ylabel)
    ax.legend()
    ax.grid(alpha=0.3)


def plot_adaptation(
    summary: dict[str, Any], path: str | Path, title: str = "", ylabel: str = "mean return"
) -> None:
    """Return (or another per-task value) against inner gradient steps, per method with its 95% interval.

    A summary with success rates (``summary["success"]``) gets a second panel: success rate against steps.
    """
    plt = pyplot()
    success = summary.get("success")
    panels = 2 if success else 1
    fig, axes = plt.subplots(1, panels, figsize=(5.5 * panels, 4), squeeze=False)
    _steps_panel(axes[0, 0], summary["methods"], ylabel)
    if success:
        _steps_panel(axes[0, 1], success, "success rate")
        axes[0, 1].set_ylim(-0.02, 1.02)
    fig.suptitle(f"{title} ({summary['num_tasks']} new tasks, 95% interval)")
    _save(plt, fig, None, path)  # each panel has its legend and grid


#: the columns :func:`plot_learning_curve` draws by default (meta-RL)
RETURN_COLUMNS = (("meta/return_before", "before adaptation"), ("meta/return_after", "after adaptation"))


def plot_learning_curve(
    metrics_csv: str | Path,
    path: str | Path,
    title: str = "",
    columns: tuple[tuple[str, str], ...] = RETURN_COLUMNS,
    ylabel: str = "mean return",
    log_scale: bool = False,
) -> None:
    """Columns of a run's ``metrics.csv`` (default: return before and after adaptation) per meta-iteration.

    Long runs are averaged over windows of ``iterations // 500`` rows so the figure stays readable.
    """
    plt = pyplot()
    with Path(metrics_csv).open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    window = max(1, len(rows) // 500)
    rows = rows[: len(rows) // window * window]
    iterations = [int(r["iteration"]) for r in rows[window - 1 :: window]]
    fig, ax = plt.subplots(figsize=(6, 4))
    for column, label in columns:
        values = [float(r[column]) for r in rows]
        means = [sum(values[i : i + window]) / window for i in range(0, len(values), window)]
        ax.plot(iterations, means, label=label)
    if log_scale:
        ax.set_yscale("log")
    ax.set_xlabel("meta-iteration")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    _save(plt, fig, ax, path)
