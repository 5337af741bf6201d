"""experiments/diagnostics/summarize_run.py: the figures it prints for a run directory written here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "experiments" / "diagnostics" / "summarize_run.py"


def write_run(run: Path, env_steps: bool) -> Path:
    """Four iterations of 900 s each, returns rising by 1 per iteration; an adaptation summary."""
    run.mkdir()
    config = {
        "env": {"id": "metarl/X-v0"},
        "inner": {"steps": 1},
        "meta": {"batch_size": 3, "episodes_per_task": 5},
    }
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    header = "iteration,meta/return_before,meta/return_after,time/iteration" + (
        ",meta/env_steps" if env_steps else ""
    )
    rows = [f"{i},{i},{i + 10},900" + (",1000" if env_steps else "") for i in range(1, 5)]
    (run / "metrics.csv").write_text("\n".join([header, *rows]) + "\n")
    summary = {
        "num_tasks": 2,
        "methods": {"maml": [{"mean": 1.0, "stderr": 0.5}, {"mean": 3.25, "stderr": 0.25}]},
    }
    (run / "adaptation.json").write_text(json.dumps(summary))
    return run


def summarize(run: Path) -> list[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, str(SCRIPT), str(run), "--last", "2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def test_first_and_last_means_hours_steps_and_the_adaptation_row(tmp_path: Path) -> None:
    lines = summarize(write_run(tmp_path / "run", env_steps=True))
    assert lines[0] == f"run {tmp_path / 'run'}: metarl/X-v0, 4 iterations, 1.00 h of iterations"
    assert lines[1] == "env steps: 4e+03"
    assert lines[2] == "meta/return_before: first 2 1.50, last 2 3.50"
    assert lines[3] == "meta/return_after: first 2 11.50, last 2 13.50"
    assert lines[4] == "adaptation maml (2 new tasks), steps 0..: 1.00 ± 0.50 | 3.25 ± 0.25"


def test_a_run_without_env_steps_counts_its_episodes(tmp_path: Path) -> None:
    lines = summarize(write_run(tmp_path / "run", env_steps=False))
    # 4 iterations x (1 inner step + the query) x 3 tasks x 5 episodes
    assert lines[1] == "env steps: not logged by this run (meta/env_steps came later); 120 episodes"
