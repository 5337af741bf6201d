"""Plot one metrics.csv column of several runs on one figure (e.g. two branches of a run).

    python experiments/compare_curves.py "fixed=runs/a/metrics.csv" "grown=runs/b/metrics.csv" \
        --column meta/return_after --window 5 --out comparison.png
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

from metarl.viz.plots import pyplot


def moving_average(values: np.ndarray, window: int) -> np.ndarray:
    """Mean over the last ``window`` values at each point (fewer at the start); ``[n] -> [n]``."""
    sums = np.cumsum(np.insert(values, 0, 0.0))
    counts = np.minimum(np.arange(1, len(values) + 1), window)
    return (sums[1:] - sums[np.arange(1, len(values) + 1) - counts]) / counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", help="LABEL=PATH/metrics.csv")
    parser.add_argument("--column", default="meta/return_after")
    parser.add_argument("--window", type=int, default=5, help="moving-average window in iterations")
    parser.add_argument("--title", default="")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    fig, ax = pyplot().subplots(figsize=(7, 4))
    for spec in args.runs:
        label, _, path = spec.partition("=")
        with open(path, newline="") as handle:
            rows = [r for r in csv.DictReader(handle) if r.get(args.column)]
        x = np.array([int(r["iteration"]) for r in rows])
        y = np.array([float(r[args.column]) for r in rows])
        ax.plot(x, moving_average(y, args.window), label=label)
    ax.set_xlabel("meta-iteration")
    ax.set_ylabel(f"{args.column} (mean of {args.window})")
    ax.set_title(args.title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
