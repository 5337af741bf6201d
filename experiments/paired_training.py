"""Two training settings run on the same seeds, compared per seed: learning curve, evaluation and cost.

    python experiments/paired_training.py --a runs/half-s0 runs/half-s1 --b runs/exact-s0 runs/exact-s1 \\
        --labels half exact --block 20 --json comparison.json

``--a`` and ``--b`` are run directories, paired in order (the same seed, so the same tasks each iteration).
For each pair it prints the difference A - B of ``--column`` (default the training return after adaptation)
averaged over blocks of ``--block`` iterations, with its standard error over the block's iterations; the
difference of the runs' evaluations (``adaptation.csv``, the same new tasks) after each step, paired over
tasks; and each run's hours, median seconds per iteration and per meta-update, and env steps. Over the seeds
it gives the mean of the per-seed block differences with the standard error over seeds (iterations within a
run are correlated, seeds are not).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import statistics
from pathlib import Path

from metarl.evaluation import paired_difference, read_adaptation_csv


def read_metrics(run: Path) -> list[dict[str, float]]:
    """``run/metrics.csv`` as floats (empty cells dropped)."""
    with (run / "metrics.csv").open(newline="") as handle:
        return [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(handle)]


def mean_se(values: list[float]) -> tuple[float, float]:
    """Mean and its standard error (nan for fewer than two values)."""
    mean = statistics.fmean(values)
    se = statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else math.nan
    return mean, se


def block_differences(a: list[dict], b: list[dict], column: str, block: int) -> list[dict]:
    """``A - B`` of ``column`` per block of ``block`` iterations both runs have (mean and s.e. over them)."""
    by_b = {int(r["iteration"]): r[column] for r in b if column in r}
    pairs = [
        (int(r["iteration"]), r[column] - by_b[int(r["iteration"])]) for r in a if int(r["iteration"]) in by_b
    ]
    out = []
    last = max(i for i, _ in pairs)
    for start in range(1, last + 1, block):
        values = [d for i, d in pairs if start <= i < start + block]
        if values:
            mean, se = mean_se(values)
            out.append({"first": start, "last": min(start + block - 1, last), "mean": mean, "stderr": se})
    return out


def cost(rows: list[dict]) -> dict:
    """Hours (sum of ``time/iteration``), medians of seconds per iteration and meta-update, env steps."""
    return {
        "iterations": len(rows),
        "hours": sum(r["time/iteration"] for r in rows) / 3600,
        "median_iteration_s": statistics.median(r["time/iteration"] for r in rows),
        "median_meta_update_s": statistics.median(r["time/meta_update"] for r in rows),
        "env_steps": sum(r.get("meta/env_steps", 0.0) for r in rows),
    }


def evaluation_differences(a: Path, b: Path, method: str) -> list[dict] | None:
    """Per step, ``A - B`` of ``method``'s evaluation on the same tasks (None if either lacks one)."""
    if not (a / "adaptation.csv").is_file() or not (b / "adaptation.csv").is_file():
        return None
    curve_a = read_adaptation_csv(a / "adaptation.csv")[0][method]
    curve_b = read_adaptation_csv(b / "adaptation.csv")[0][method]
    return [
        {
            "step": k,
            "a": float(curve_a[:, k].mean()),
            "b": float(curve_b[:, k].mean()),
            **paired_difference(curve_a[:, k], curve_b[:, k]),
        }
        for k in range(curve_a.shape[1])
    ]


def moving_average(values: list[float], window: int) -> list[float]:
    """Mean over the last ``window`` values at each point (fewer at the start)."""
    return [statistics.fmean(values[max(0, i + 1 - window) : i + 1]) for i in range(len(values))]


def plot(args: argparse.Namespace, pairs: list[dict], summary: dict):
    """Left: each run's curve (moving average), A and B in two colours; right: A - B per block.

    Returns:
        The matplotlib figure (saved to ``args.figure``).
    """
    from metarl.viz.plots import pyplot

    fig, (left, right) = pyplot().subplots(1, 2, figsize=(10, 4))
    for runs, label, colour in ((args.a, args.labels[0], "tab:blue"), (args.b, args.labels[1], "tab:orange")):
        for j, run in enumerate(runs):
            rows = [r for r in read_metrics(run) if args.column in r]
            left.plot(
                [r["iteration"] for r in rows],
                moving_average([r[args.column] for r in rows], args.window),
                color=colour,
                alpha=0.8,
                linewidth=1.2,
                label=label if j == 0 else None,
            )
    left.set_xlabel("meta-iteration")
    left.set_ylabel(f"{args.column} (mean of {args.window})")
    left.set_title(f"{len(pairs)} seeds each")
    left.legend()
    left.grid(alpha=0.3)
    blocks = summary.get("blocks_over_seeds") or pairs[0]["blocks"]
    centres = [(d["first"] + d["last"]) / 2 for d in blocks]
    width = 0.8 * (blocks[0]["last"] - blocks[0]["first"] + 1)
    errors = [0.0 if math.isnan(d["stderr"]) else d["stderr"] for d in blocks]
    right.bar(centres, [d["mean"] for d in blocks], width=width, yerr=errors, capsize=3, color="tab:green")
    for pair in pairs:
        right.plot(centres, [d["mean"] for d in pair["blocks"]], "k.", alpha=0.6)
    right.axhline(0.0, color="black", linewidth=0.8)
    right.set_xlabel("meta-iteration (blocks)")
    right.set_ylabel(f"{args.labels[0]} - {args.labels[1]}, paired")
    right.set_title("mean over seeds ± s.e. (dots: each seed)")
    right.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(args.figure, dpi=110)
    return fig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--a", nargs="+", type=Path, required=True, help="run directories of setting A")
    parser.add_argument("--b", nargs="+", type=Path, required=True, help="the same seeds' runs of setting B")
    parser.add_argument("--labels", nargs=2, default=["A", "B"])
    parser.add_argument("--column", default="meta/return_after")
    parser.add_argument("--block", type=int, default=20)
    parser.add_argument("--method", default="maml", help="the evaluation's method compared")
    parser.add_argument("--json", type=Path, help="write every figure here too")
    parser.add_argument("--figure", type=Path, help="PNG: both settings' curves and the block differences")
    parser.add_argument("--window", type=int, default=5, help="the figure's moving-average window")
    args = parser.parse_args(argv)
    if len(args.a) != len(args.b):
        parser.error(f"--a has {len(args.a)} runs and --b {len(args.b)}: give one B run per A run")
    la, lb = args.labels
    pairs = []
    for a, b in zip(args.a, args.b, strict=True):
        rows_a, rows_b = read_metrics(a), read_metrics(b)
        pair = {
            "a": str(a),
            "b": str(b),
            "blocks": block_differences(rows_a, rows_b, args.column, args.block),
            "cost_a": cost(rows_a),
            "cost_b": cost(rows_b),
            "evaluation": evaluation_differences(a, b, args.method),
        }
        pairs.append(pair)
        print(f"{a} ({la}) - {b} ({lb}), {args.column}:")
        print(
            "  "
            + ", ".join(
                f"{d['first']}-{d['last']}: {d['mean']:+.1f} ± {d['stderr']:.1f}" for d in pair["blocks"]
            )
        )
        for label, c in ((la, pair["cost_a"]), (lb, pair["cost_b"])):
            print(
                f"  {label}: {c['hours']:.3f} h, median {c['median_iteration_s']:.2f} s/iteration "
                f"({c['median_meta_update_s']:.2f} s meta-update), {c['env_steps'] / 1e6:.1f} M env steps"
            )
        if pair["evaluation"]:
            print(
                "  evaluation, paired over tasks: "
                + ", ".join(
                    f"step {e['step']}: {e['a']:.1f} - {e['b']:.1f} = {e['mean']:+.1f} ± {e['stderr']:.1f} "
                    f"({e['ahead']} of {e['n']})"
                    for e in pair["evaluation"]
                )
            )
    summary: dict = {"labels": args.labels, "column": args.column, "pairs": pairs}
    if len(pairs) > 1:
        blocks = []
        for j, first in enumerate(pairs[0]["blocks"]):
            values = [p["blocks"][j]["mean"] for p in pairs if len(p["blocks"]) > j]
            mean, se = mean_se(values)
            blocks.append({"first": first["first"], "last": first["last"], "mean": mean, "stderr": se})
        summary["blocks_over_seeds"] = blocks
        print(f"over {len(pairs)} seeds, {la} - {lb} (standard error over seeds):")
        print(
            "  "
            + ", ".join(f"{d['first']}-{d['last']}: {d['mean']:+.1f} ± {d['stderr']:.1f}" for d in blocks)
        )
        if all(p["evaluation"] for p in pairs):
            steps = []
            for k in range(len(pairs[0]["evaluation"])):
                mean, se = mean_se([p["evaluation"][k]["mean"] for p in pairs])
                steps.append({"step": k, "mean": mean, "stderr": se})
            summary["evaluation_over_seeds"] = steps
            print(
                "  evaluation: "
                + ", ".join(f"step {e['step']}: {e['mean']:+.1f} ± {e['stderr']:.1f}" for e in steps)
            )
        for key, label in (("cost_a", la), ("cost_b", lb)):
            hours = [p[key]["hours"] for p in pairs]
            print(f"  {label}: {statistics.fmean(hours):.3f} h a run (mean of {len(hours)})")
    if args.figure:
        plot(args, pairs, summary)
        print(f"wrote {args.figure}")
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
