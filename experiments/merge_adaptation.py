"""Join adaptation files evaluated on the same tasks (e.g. a run's and its oracle's) without evaluating again.

    python experiments/merge_adaptation.py runs/antvel/compare runs/antvel-oracle --out runs/antvel/merged

Each input is an ``adaptation.csv`` or a folder holding one. A method in several inputs keeps the first one's
curve (and success rates, where the env reports success); every curve keeps the values of the evaluation that
wrote it. The inputs' ``adaptation.json`` files
(where present) give the env id, seed and step sizes, the first input's where they disagree. The output is the
CSV, JSON and figure that ``metarl evaluate --compare`` writes, without evaluating the first run again.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from metarl.evaluation import (
    SUCCESS_COLUMN,
    adaptation_csv_path,
    read_adaptation_csv,
    same_tasks,
    write_adaptation_files,
)


def merge(paths: list[Path], out_dir: Path) -> dict:
    """Write the union of the inputs' curves to ``out_dir``; ``ValueError`` when their tasks differ."""
    curves: dict = {}
    successes: dict = {}
    tasks = None
    for path in paths:
        csv_path = adaptation_csv_path(path)
        other_curves, task_fields = read_adaptation_csv(csv_path)
        if tasks is None:  # the first input's tasks, as objects with its task fields
            task_type = dataclasses.make_dataclass("Task", [(f, float) for f in task_fields[0]])
            tasks = [task_type(**fields) for fields in task_fields]
        elif not same_tasks(task_fields, tasks):
            raise ValueError(
                f"{str(csv_path)!r} was evaluated on other tasks than "
                f"{str(adaptation_csv_path(paths[0]))!r}: evaluate both with the same --tasks and --seed"
            )
        other_successes, _ = read_adaptation_csv(csv_path, SUCCESS_COLUMN)
        for method, curve in other_curves.items():
            if method not in curves and method in other_successes:
                successes[method] = other_successes[method]
            curves.setdefault(method, curve)
    steps = {c.shape[1] for c in curves.values()}
    if len(steps) != 1:
        raise ValueError(f"the inputs have different numbers of inner steps ({sorted(steps)}); allowed: one")
    meta: dict = {}
    for path in paths:  # env id, seed, step sizes, ...: the first input's, then what only later ones hold
        json_path = adaptation_csv_path(path).with_name("adaptation.json")
        if json_path.is_file():
            for key, value in json.loads(json_path.read_text()).items():
                if key not in ("methods", "num_tasks", "success"):
                    meta.setdefault(key, value)
    return write_adaptation_files(out_dir, curves, tasks, meta, successes=successes)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("inputs", nargs="+", type=Path, help="adaptation.csv files or folders holding one")
    parser.add_argument("--out", type=Path, required=True, help="folder for the joined files")
    args = parser.parse_args(argv)
    try:
        summary = merge(args.inputs, args.out)
    except ValueError as exc:
        # read_adaptation_csv's messages start with the evaluate flag's name, which means nothing here
        print(f"error: {str(exc).removeprefix('--compare: ')}", file=sys.stderr)
        return 2
    for method, rows in summary["methods"].items():
        curve = ", ".join(f"{r['step']}: {r['mean']:.2f} ± {r['stderr']:.2f}" for r in rows)
        print(f"{method}: {curve}")
    print(f"wrote {args.out}/adaptation.csv, adaptation.json, adaptation.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
