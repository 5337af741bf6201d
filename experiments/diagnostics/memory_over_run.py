"""Resident memory of a real ``metarl train`` over a few hundred iterations, per collector backend.

Starts ``python -m metarl.cli train CONFIG`` for each backend, reads the resident set size (``VmRSS``) of the
training process and of its worker processes from ``/proc`` while it trains, and matches each reading to the
iterations in ``metrics.csv`` so far. Writes a JSON file (every reading, and per backend the memory after the
warm-up, at the end and the least-squares slope in MiB per 100 iterations) and a PNG of memory against
iteration. A leak shows as a slope; the verdict compares it with ``--bound``.

    python experiments/diagnostics/memory_over_run.py experiments/navigation2d-quick.yaml --iterations 300 \\
        --backends local subprocess --out docs/results/memory-navigation2d.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
PAGE_MIB = os.sysconf("SC_PAGE_SIZE") / 2**20


def rss_mib(pid: int) -> float:
    """Resident memory of process ``pid`` in MiB (0 once it is gone)."""
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_MIB
    except (OSError, IndexError, ValueError):
        return 0.0


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (workers, their children)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        children = [p for p, pp in parents.items() if pp == parent]
        found += children
        frontier += children
    return found


def rows_written(run: Path) -> int:
    try:
        return max(0, len((run / "metrics.csv").read_text().splitlines()) - 1)
    except FileNotFoundError:
        return 0


def measure(config: str, backend: str, iterations: int, changes: list[str], period: float) -> dict:
    """One run: ``[iteration, main MiB, workers MiB]`` at each new iteration, and the run's seconds."""
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        settings = [
            f"meta.iterations={iterations}",
            f"collector.backend={backend}",
            "logging.progress=false",
            "evaluation.tasks=2",
            "evaluation.steps=0",
            *changes,
        ]
        args = [sys.executable, "-m", "metarl.cli", "train", config, "--run-dir", str(run)]
        for item in settings:
            args += ["--set", item]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
        begin = time.perf_counter()
        process = subprocess.Popen(
            args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        readings: list[list[float]] = []
        seen = 0
        while process.poll() is None:
            done = rows_written(run)
            if done > seen and done <= iterations:
                seen = done
                workers = sum(rss_mib(p) for p in descendants(process.pid))
                readings.append([done, round(rss_mib(process.pid), 2), round(workers, 2)])
            time.sleep(period)
        if process.returncode != 0:
            raise SystemExit(
                f"{backend}: metarl train exited {process.returncode}: {process.stderr.read()[-2000:]}"
            )
        return {"readings": readings, "seconds": round(time.perf_counter() - begin, 1), "settings": settings}


def summarize(readings: list[list[float]], warmup: int) -> dict:
    """Memory after ``warmup`` iterations, at the end, and the slope after it (MiB per 100 iterations)."""
    data = np.array(readings)
    after = data[data[:, 0] >= warmup]
    total = after[:, 1] + after[:, 2]
    out = {"warm_iteration": int(after[0, 0]), "last_iteration": int(after[-1, 0])}
    for name, values in (("main", after[:, 1]), ("workers", after[:, 2]), ("total", total)):
        slope = np.polyfit(after[:, 0], values, 1)[0] * 100 if len(after) > 2 else float("nan")
        out[name] = {
            "warm_mib": round(float(values[0]), 1),
            "last_mib": round(float(values[-1]), 1),
            "max_mib": round(float(values.max()), 1),
            "slope_mib_per_100_iterations": round(float(slope), 3),
        }
    return out


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for backend, item in result["backends"].items():
        data = np.array(item["readings"])
        ax.plot(data[:, 0], data[:, 1] + data[:, 2], label=f"{backend}: training process + workers")
        if data[:, 2].any():
            ax.plot(data[:, 0], data[:, 1], linestyle="--", label=f"{backend}: training process")
    ax.set_xlabel("iteration")
    ax.set_ylabel("resident memory (MiB)")
    ax.set_title(f"{Path(result['config']).name}, {result['date']}")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config")
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--backends", nargs="+", default=["local", "subprocess"])
    parser.add_argument("--warmup", type=int, default=20, help="iterations before the slope is fitted")
    parser.add_argument(
        "--bound", type=float, default=1.0, help="largest slope passed, MiB per 100 iterations"
    )
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="more config changes")
    parser.add_argument("--period", type=float, default=0.05, help="seconds between looks at metrics.csv")
    parser.add_argument("--out", type=Path, required=True, help="JSON file; the PNG goes beside it")
    args = parser.parse_args(argv)
    if args.iterations <= args.warmup + 2:
        parser.error(
            f"--iterations: got {args.iterations}, expected more than --warmup + 2 = {args.warmup + 2}"
        )
    result: dict = {
        "config": args.config,
        "iterations": args.iterations,
        "warmup": args.warmup,
        "bound_mib_per_100_iterations": args.bound,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": " ".join(["python experiments/diagnostics/memory_over_run.py", *sys.argv[1:]])
        if argv is None
        else "",
        "backends": {},
    }
    for backend in args.backends:
        item = measure(args.config, backend, args.iterations, args.set, args.period)
        item["summary"] = summarize(item["readings"], args.warmup)
        item["flat"] = item["summary"]["total"]["slope_mib_per_100_iterations"] <= args.bound
        result["backends"][backend] = item
        s = item["summary"]["total"]
        print(
            f"{backend}: {s['warm_mib']:.1f} MiB at iteration {item['summary']['warm_iteration']}, "
            f"{s['last_mib']:.1f} at {item['summary']['last_iteration']}, slope "
            f"{s['slope_mib_per_100_iterations']:+.2f} MiB per 100 iterations "
            f"({'flat' if item['flat'] else 'GROWS'}: bound {args.bound}); {item['seconds']} s"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    plot(result, args.out.with_suffix(".png"))
    print(f"wrote {args.out} and {args.out.with_suffix('.png')}")
    return 0 if all(item["flat"] for item in result["backends"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
