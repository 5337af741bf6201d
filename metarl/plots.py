"""PNG figures (matplotlib is imported inside each function, so ``import metarl`` does not need it)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_adaptation(summary: dict[str, Any], path: str | Path, title: str = "") -> None:
    """Return against inner gradient steps, one line per method with its 95% interval band."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for method, rows in summary["methods"].items():
        steps = [r["step"] for r in rows]
        ax.plot(steps, [r["mean"] for r in rows], marker="o", label=method)
        ax.fill_between(steps, [r["ci95_low"] for r in rows], [r["ci95_high"] for r in rows], alpha=0.2)
    ax.set_xlabel("inner gradient steps")
    ax.set_ylabel("mean return")
    ax.set_xticks(steps)
    ax.set_title(f"{title} ({summary['num_tasks']} new tasks, 95% interval)")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_learning_curve(metrics_csv: str | Path, path: str | Path, title: str = "") -> None:
    """Mean return before and after adaptation against meta-iterations, from a run's ``metrics.csv``."""
    plt = _pyplot()
    with Path(metrics_csv).open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    iterations = [int(r["iteration"]) for r in rows]
    fig, ax = plt.subplots(figsize=(6, 4))
    for column, label in (
        ("meta/return_before", "before adaptation"),
        ("meta/return_after", "after adaptation"),
    ):
        ax.plot(iterations, [float(r[column]) for r in rows], label=label)
    ax.set_xlabel("meta-iteration")
    ax.set_ylabel("mean return")
    ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
