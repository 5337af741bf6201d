"""experiments/diagnostics/iteration_times.py: medians and ratios of two runs' iteration times."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "experiments" / "diagnostics" / "iteration_times.py"


def write_run(run: Path, sampling: list[float], meta_update: list[float]) -> Path:
    run.mkdir()
    header = "iteration,meta/env_steps,time/sampling,time/meta_update,time/iteration"
    rows = [
        f"{i},1000,{s},{m},{s + m}" for i, (s, m) in enumerate(zip(sampling, meta_update, strict=True), 1)
    ]
    (run / "metrics.csv").write_text("\n".join([header, *rows]) + "\n")
    return run


def run_script(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=env)


def test_medians_and_the_first_run_over_each_are_written(tmp_path: Path) -> None:
    before = write_run(tmp_path / "before", [10.0, 30.0, 12.0], [8.0, 6.0, 100.0])  # medians 12 and 8
    after = write_run(tmp_path / "after", [10.0, 12.0, 11.0], [2.0, 4.0, 3.0])  # medians 11 and 3
    out = tmp_path / "times.json"
    done = run_script(str(before), str(after), "--out", str(out))
    assert done.returncode == 0, done.stderr
    runs = json.loads(out.read_text())["runs"]
    assert runs["before"]["medians"]["time/sampling"] == 12.0
    assert runs["after"]["medians"]["time/meta_update"] == 3.0
    assert runs["after"]["first_over_this"]["time/meta_update"] == 8.0 / 3.0
    assert runs["after"]["first_over_this"]["time/iteration"] == 36.0 / 14.0  # medians of s + m: 36 and 14
    assert runs["before"]["first_over_this"]["time/sampling"] == 1.0
    assert "before/after 2.57x" in done.stdout


def test_a_folder_without_metrics_or_a_wrong_number_of_names_exits_2_with_one_line(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", [1.0], [1.0])
    missing = run_script(str(run), str(tmp_path))
    assert missing.returncode == 2 and "has no metrics.csv" in missing.stderr
    names = run_script(str(run), "--names", "a", "b")
    assert names.returncode == 2 and "--names: 2 names for 1 runs" in names.stderr
    assert len(missing.stderr.strip().splitlines()) == len(names.stderr.strip().splitlines()) == 1
