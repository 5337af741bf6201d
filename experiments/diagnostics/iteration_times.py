"""Where each run's iterations spend their time: median seconds per part, and each run against the first.

Reads ``metrics.csv`` of each run directory (the same config trained by two code versions or two settings,
one after the other on one machine) and writes the medians of ``time/sampling``, ``time/adaptation``,
``time/meta_update`` and ``time/iteration`` over the iterations, the median env steps, and the ratios of the
first run's medians to each other's (above 1: that run is faster).

    python experiments/diagnostics/iteration_times.py runs/before runs/after --names before after \\
        --out docs/results/benchmark-x.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from _loader import read_metrics

PARTS = ("time/sampling", "time/adaptation", "time/meta_update", "time/iteration")


def medians(rows: list[dict[str, str]]) -> dict[str, float]:
    """Median of each of :data:`PARTS` present in the rows, and of ``meta/env_steps``."""
    columns = [c for c in (*PARTS, "meta/env_steps") if c in rows[0]]
    return {c: statistics.median(float(r[c]) for r in rows) for c in columns}


def compare(runs: dict[str, list[dict[str, str]]]) -> dict[str, dict[str, dict[str, float] | float]]:
    """Per run: its :func:`medians` and ``first_over_this`` (the first run's median over this one's)."""
    table = {name: medians(rows) for name, rows in runs.items()}
    first = next(iter(table.values()))
    return {
        name: {
            "iterations": float(len(runs[name])),
            "medians": row,
            "first_over_this": {
                c: first[c] / row[c] for c in PARTS if c in row and c in first and row[c] > 0
            },
        }
        for name, row in table.items()
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, nargs="+", help="run directories, the reference first")
    parser.add_argument("--names", nargs="+", help="a name per run (default: the folder names)")
    parser.add_argument("--out", type=Path, help="JSON file to write")
    args = parser.parse_args()
    names = args.names or [run.name for run in args.runs]
    if len(names) != len(args.runs):
        print(
            f"error: --names: {len(names)} names for {len(args.runs)} runs; give one per run", file=sys.stderr
        )
        return 2
    runs = {}
    for name, run in zip(names, args.runs, strict=True):
        if not (run / "metrics.csv").is_file():
            print(f"error: runs: {str(run)!r} has no metrics.csv; give run directories", file=sys.stderr)
            return 2
        runs[name] = read_metrics(run)
    result = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "runs": compare(runs)}
    for name, row in result["runs"].items():
        parts = ", ".join(f"{c.split('/')[1]} {v:.2f} s" for c, v in row["medians"].items() if c in PARTS)
        ratio = row["first_over_this"].get("time/iteration", 1.0)
        print(f"{name}: {parts} (median of {row['iterations']:.0f}); {names[0]}/{name} {ratio:.2f}x")
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
