"""Paired comparisons of adaptation curves evaluated on the same tasks: the figures docs/RESULTS.md quotes.

    python experiments/paired_adaptation.py docs/results/ant_dir runs/antdir/it270-compare --by direction

Each input is an ``adaptation.csv`` (or a folder holding one) that ``metarl evaluate`` or
``experiments/merge_adaptation.py`` wrote. For the first input it prints every method's mean ± standard error
per step, then, paired over tasks (mean ± standard error of the per-task difference, and on how many tasks the
difference is positive): ``--method``'s gain of each step over every earlier step, ``--method``
minus each other method at each step, and, with a second input on the same tasks, the first input's
``--method`` minus the second's. ``--by FIELD`` adds ``--method``'s mean per value of a task field (e.g. the
direction). ``--value success_rate`` compares success rates instead of returns (envs that report success, e.g.
Meta-World's). ``--json FILE`` writes the same figures as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from torch import Tensor

from metarl.evaluation import SUCCESS_COLUMN, paired_difference, read_adaptation_csv, summarize

MAX_GROUPS = 10


def _fmt(d: dict, scale: float = 1.0) -> str:
    """A paired difference; ``scale`` 100 shows success rates in percentage points."""
    return f"{scale * d['mean']:+.1f} ± {scale * d['stderr']:.1f} ({d['ahead']} of {d['n']})"


def compare(paths: list[Path], method: str, by: str | None = None, value: str = "mean_return") -> dict:
    """The figures for ``paths`` (one or two adaptation files) on the CSV column ``value``.

    Raises:
        ValueError: with a one-line message.
    """
    curves, tasks = read_adaptation_csv(paths[0], value)
    if not curves:
        raise ValueError(f"--value: {str(paths[0])!r} has no {value!r} values (its env reports no success)")
    if method not in curves:
        raise ValueError(f"--method: {method!r} is not in {str(paths[0])!r}; allowed: {sorted(curves)}")
    main: Tensor = curves[method]
    steps = main.shape[1]
    out: dict = {
        "input": str(paths[0]),
        "method": method,
        "value": value,
        "curves": {m: summarize(c) for m, c in curves.items()},
        "step_minus_step": [
            {"step": k, "minus_step": j, **paired_difference(main[:, k], main[:, j])}
            for k in range(1, steps)
            for j in range(k)
        ],
        "minus": {
            other: [paired_difference(main[:, k], c[:, k]) for k in range(min(steps, c.shape[1]))]
            for other, c in curves.items()
            if other != method
        },
    }
    if len(paths) > 1:
        second, second_tasks = read_adaptation_csv(paths[1], value)
        if second_tasks != tasks:
            raise ValueError(
                f"{str(paths[1])!r} was evaluated on other tasks than {str(paths[0])!r}: "
                "evaluate both with the same --tasks and --seed"
            )
        if method not in second:
            raise ValueError(f"--method: {method!r} is not in {str(paths[1])!r}; allowed: {sorted(second)}")
        other = second[method]
        out["minus_second"] = {
            "input": str(paths[1]),
            "steps": [paired_difference(main[:, k], other[:, k]) for k in range(min(steps, other.shape[1]))],
        }
    if by is not None:
        if by not in tasks[0]:
            raise ValueError(f"--by: {by!r} is not a task field; allowed: {sorted(tasks[0])}")
        values = sorted({t[by] for t in tasks})
        if len(values) > MAX_GROUPS:
            raise ValueError(
                f"--by: {by!r} has {len(values)} distinct values; allowed: fields with at most {MAX_GROUPS}"
            )
        groups = {v: [i for i, t in enumerate(tasks) if t[by] == v] for v in values}
        out["by"] = {
            by: {
                str(v): {"tasks": len(rows), "mean": main[rows].double().mean(dim=0).tolist()}
                for v, rows in groups.items()
            }
        }
    return out


def report(figures: dict) -> str:
    """The figures of :func:`compare` as the lines the script prints."""
    method = figures["method"]
    scale = 100.0 if figures["value"] == SUCCESS_COLUMN else 1.0  # success rates in percent
    unit = " (%)" if scale != 1.0 else ""
    lines = [f"{figures['input']} ({figures['value']}{unit}):"]
    for m, rows in figures["curves"].items():
        lines.append(
            f"  {m}: " + " / ".join(f"{scale * r['mean']:.2f} ± {scale * r['stderr']:.2f}" for r in rows)
        )
    lines.append(f"paired over tasks, {method}:")
    for d in figures["step_minus_step"]:
        lines.append(f"  step {d['step']} minus step {d['minus_step']}: {_fmt(d, scale)}")
    for other, rows in figures["minus"].items():
        lines.append(
            f"  minus {other}: " + "; ".join(f"step {k} {_fmt(d, scale)}" for k, d in enumerate(rows))
        )
    if "minus_second" in figures:
        rows = figures["minus_second"]["steps"]
        lines.append(
            f"  minus {method} of {figures['minus_second']['input']}: "
            + "; ".join(f"step {k} {_fmt(d, scale)}" for k, d in enumerate(rows))
        )
    for field, groups in figures.get("by", {}).items():
        for value, group in groups.items():
            means = " / ".join(f"{scale * m:.1f}" for m in group["mean"])
            lines.append(f"  {field} = {value} ({group['tasks']} tasks): {means}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("inputs", nargs="+", type=Path, help="one or two adaptation.csv files or folders")
    parser.add_argument("--method", default="maml", help="the curve compared (default maml)")
    parser.add_argument("--by", help="a task field to split the method's means by (e.g. direction)")
    parser.add_argument(
        "--value",
        choices=("mean_return", SUCCESS_COLUMN),
        default="mean_return",
        help="the values compared (default mean_return)",
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    if len(args.inputs) > 2:
        print(f"error: inputs: {len(args.inputs)} given; allowed: one or two", file=sys.stderr)
        return 2
    try:
        figures = compare(args.inputs, args.method, args.by, args.value)
    except ValueError as exc:
        print(f"error: {str(exc).removeprefix('--compare: ')}", file=sys.stderr)
        return 2
    print(report(figures))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
