"""Print the figures docs/RESULTS.md quotes for one run directory.

python experiments/diagnostics/summarize_run.py runs/<run> [--last 10]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from _loader import read_metrics, read_run_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--last", type=int, default=10, help="iterations averaged at the end")
    args = parser.parse_args()
    config = read_run_config(args.run)
    rows = read_metrics(args.run)
    tail = rows[-args.last :]

    def mean(column: str, part: list[dict[str, str]]) -> float:
        return sum(float(r[column]) for r in part) / len(part)

    hours = sum(float(r["time/iteration"]) for r in rows) / 3600
    steps = sum(float(r["meta/env_steps"]) for r in rows) if "meta/env_steps" in rows[0] else None
    print(f"run {args.run}: {config['env']['id']}, {len(rows)} iterations, {hours:.2f} h of iterations")
    if steps is None:
        m = config["meta"]
        episodes = len(rows) * (config["inner"]["steps"] + 1) * m["batch_size"] * m["episodes_per_task"]
        print(f"env steps: not logged by this run (meta/env_steps came later); {episodes} episodes")
    else:
        print(f"env steps: {steps:.3g}")
    for column in ("meta/return_before", "meta/return_after"):
        first, last = mean(column, rows[: args.last]), mean(column, tail)
        print(f"{column}: first {args.last} {first:.2f}, last {args.last} {last:.2f}")
    adaptation = args.run / "adaptation.json"
    if adaptation.is_file():
        summary = json.loads(adaptation.read_text())
        for method, steps_rows in summary["methods"].items():
            cells = " | ".join(f"{r['mean']:.2f} ± {r['stderr']:.2f}" for r in steps_rows)
            print(f"adaptation {method} ({summary['num_tasks']} new tasks), steps 0..: {cells}")


if __name__ == "__main__":
    main()
