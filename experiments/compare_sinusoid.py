"""Compare the sinusoid adaptation curves of several runs: the table and figure docs/RESULTS.md quotes.

The paper reports the mean over tasks, but one diverging task makes that infinite, so the table also gives the
median and counts the tasks whose error is not finite or above ``--blowup`` (diverged).

Usage: python experiments/compare_sinusoid.py NAME=RUN_OR_CSV ... [--steps 1 5 10] [--out figure.png]
"""

from __future__ import annotations

import argparse
import csv
import math
from pathlib import Path

import numpy as np


def read_curves(path: Path) -> np.ndarray:
    """``[tasks, steps + 1]`` mean squared errors from an ``adaptation.csv`` (or a run folder holding one)."""
    if path.is_dir():
        path = path / "adaptation.csv"
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    tasks = 1 + max(int(r["task_index"]) for r in rows)
    steps = 1 + max(int(r["step"]) for r in rows)
    curves = np.full((tasks, steps), np.nan)
    for r in rows:
        curves[int(r["task_index"]), int(r["step"])] = float(r["mse"])
    return curves


def describe(values: np.ndarray, blowup: float) -> str:
    """Mean [95% normal interval], median and diverged count of one step's per-task errors."""
    with np.errstate(invalid="ignore", over="ignore"):
        mean = float(values.mean())
        half = 1.96 * float(values.std(ddof=1)) / math.sqrt(len(values))
    median = float(np.median(np.where(np.isfinite(values), values, np.inf)))
    diverged = int((~np.isfinite(values) | (values > blowup)).sum())
    if not math.isfinite(mean + half):
        return f"mean not finite, median {median:.3f}, diverged {diverged}"
    return f"{mean:.3f} [{mean - half:.3f}, {mean + half:.3f}], median {median:.3f}, diverged {diverged}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="NAME=PATH, PATH a run folder or an adaptation.csv")
    parser.add_argument("--steps", nargs="+", type=int, default=[1, 5, 10])
    parser.add_argument("--blowup", type=float, default=10.0, help="MSE above which a task has diverged")
    parser.add_argument("--out", type=Path, help="figure: mean and median MSE per step, log scale")
    args = parser.parse_args()
    named = [item.rsplit("=", 1) for item in args.runs]  # the name may hold "=" (K=10), the path not
    curves = {name: read_curves(Path(path)) for name, path in named}
    for name, curve in curves.items():
        print(f"{name} ({curve.shape[0]} tasks)")
        for step in args.steps:
            print(f"  step {step}: {describe(curve[:, step], args.blowup)}")
    if args.out:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
        for name, curve in curves.items():
            steps = np.arange(curve.shape[1])
            with np.errstate(invalid="ignore", over="ignore"):
                left.plot(steps, curve.mean(axis=0), marker="o", label=name)
            right.plot(steps, np.median(np.where(np.isfinite(curve), curve, np.inf), axis=0), marker="o")
        for ax, what in ((left, "mean"), (right, "median")):
            ax.set_yscale("log")
            ax.set_ylim(0.05, 20)
            ax.set_xlabel("inner gradient steps")
            ax.set_title(f"{what} over tasks")
            ax.grid(alpha=0.3, which="both")
        left.set_ylabel("mean squared error (log scale)")
        left.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(args.out, dpi=120)
        plt.close(fig)


if __name__ == "__main__":
    main()
