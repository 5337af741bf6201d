"""SIGKILL a training process at random moments, resume each time: the same metrics and parameters.

A real ``metarl train`` process (Navigation2D, quick config, tiny sizes) is killed several times, at random
moments while it trains (and once early, perhaps before its first checkpoint), and resumed with
``--resume`` after each kill. Its ``metrics.csv`` (all but the ``time/`` columns) and its final parameters
must equal those of a run that was never stopped.
"""

from __future__ import annotations

import random
import shutil
import signal
import time
from pathlib import Path

import pytest
import torch
from conftest import metric_rows, rows_written  # noqa: E402
from conftest import start_metarl as start  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
SETTINGS = [
    "meta.batch_size=2",
    "meta.episodes_per_task=2",
    "meta.iterations=8",
    "policy.hidden_sizes=[16]",
    "evaluation.tasks=2",
    "evaluation.steps=1",
    "evaluation.episodes=2",
    "logging.progress=false",
    "logging.tensorboard=false",
    "logging.checkpoint_every=2",
]


def command(run: Path) -> list[str]:
    args = ["train", str(REPO / "experiments" / "navigation2d-quick.yaml"), "--run-dir", str(run)]
    for item in SETTINGS:
        args += ["--set", item]
    return args


@pytest.mark.slow  # over 20 s here; CI runs the slow tests after the default run
def test_sigkill_at_random_moments_then_resume_gives_the_uninterrupted_run(tmp_path: Path) -> None:
    reference = tmp_path / "reference"
    done = start(command(reference), tmp_path)
    assert done.wait(timeout=240) == 0, done.stderr.read()

    run = tmp_path / "killed"
    rng = random.Random(2026)
    process = start(command(run), tmp_path)
    kills = []
    for attempt in range(4):
        if attempt == 0:
            time.sleep(rng.uniform(0.5, 4.0))  # any moment, perhaps before the first checkpoint
        else:  # a moment while it trains: after it wrote some rows, before it finished
            target = rows_written(run) + rng.randint(1, 2)
            deadline = time.monotonic() + 120
            while process.poll() is None and rows_written(run) < target and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(rng.uniform(0.0, 0.3))
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait()
            kills.append(rows_written(run))
        if (run / "config.yaml").is_file():
            process = start(["train", "--resume", str(run)], tmp_path)
        else:  # killed before the run directory held anything: start it again
            shutil.rmtree(run, ignore_errors=True)
            process = start(command(run), tmp_path)
    assert process.wait(timeout=240) == 0, process.stderr.read()
    assert len(kills) >= 3, f"only {len(kills)} kills landed ({kills})"

    assert metric_rows(run) == metric_rows(reference)
    for name in ("latest.pt", "best.pt"):
        ours = torch.load(run / "checkpoints" / name, weights_only=True)
        theirs = torch.load(reference / "checkpoints" / name, weights_only=True)
        assert ours["iteration"] == theirs["iteration"]
        for key, value in theirs["policy"].items():
            assert torch.equal(ours["policy"][key], value), (name, key)
