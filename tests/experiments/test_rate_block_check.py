"""experiments/diagnostics/rate_block_check.py: a Meta-SGD run directory is probed with its own config; a
checkpoint without learned rates is refused."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from metarl.app.build import build
from metarl.config import config_to_dict, load_config
from metarl.training.checkpoints import save_checkpoint

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "experiments" / "diagnostics" / "rate_block_check.py"
TINY = ["meta.batch_size=2", "meta.episodes_per_task=2", "policy.hidden_sizes=[8]"]


def write_run(run: Path, learn_step_size: bool) -> Path:
    """A run directory whose ``checkpoints/latest.pt`` holds a fresh tiny navigation policy and its config."""
    config = load_config(
        REPO / "experiments" / "navigation2d-quick.yaml", [*TINY, f"inner.learn_step_size={learn_step_size}"]
    )
    state = {"config": config_to_dict(config), "policy": build(config).learner.state_dict(), "iteration": 0}
    save_checkpoint(run / "checkpoints" / "latest.pt", state)
    return run


def run_script(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=300
    )


def test_a_meta_sgd_run_directory_reports_both_blocks_and_every_solve(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", learn_step_size=True)
    result = run_script(str(run), "--cg-iterations", "2", "3", "--probes", "2")
    assert result.returncode == 0, result.stderr
    sizes = re.search(r"^(\d+) policy parameters and (\d+) learned rates", result.stdout, re.M)
    assert sizes and sizes.group(1) == sizes.group(2), result.stdout
    assert re.findall(r"^(weights|rates): gradient norm", result.stdout, re.M) == ["weights", "rates"]
    solves = re.findall(r"^cg (\d+), damping (\S+):", result.stdout, re.M)
    assert [count for count, _ in solves] == ["2", "3", "2"] and float(solves[-1][1]) == 0.0


def test_a_checkpoint_without_learned_rates_is_refused_with_exit_2(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", learn_step_size=False)
    result = run_script(str(run / "checkpoints" / "latest.pt"))
    assert result.returncode == 2
    assert "inner.learn_step_size is false; expected true" in result.stderr
