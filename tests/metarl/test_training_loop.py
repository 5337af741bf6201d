"""The one training loop over a toy ``Work``: checkpoints when due, rows, resume, stop, write errors."""

from __future__ import annotations

import csv
import os
import signal
from typing import Any

import pytest

from metarl.core.errors import Stopped, WriteError
from metarl.training.checkpoints import load_checkpoint
from metarl.training.loop import LoopSettings, RunPaths, run_loop


class CountingRun:
    """A ``Work`` whose state is a counter; ``signal_at`` sends SIGINT to itself in that iteration."""

    def __init__(self, signal_at: int | None = None) -> None:
        self.count = 0
        self.calls: list[str] = []
        self.signal_at = signal_at

    def restore(self, state: dict[str, Any]) -> None:
        self.calls.append("restore")
        self.count = int(state["count"])

    def iterate(self, iteration: int) -> dict[str, float]:
        self.calls.append(f"iterate {iteration}")
        self.count += iteration
        if iteration == self.signal_at:
            os.kill(os.getpid(), signal.SIGINT)
        return {"meta/count": float(self.count)}

    def record(self, iteration: int, metrics: dict[str, float]) -> None:
        self.calls.append(f"record {iteration}")

    def state(self, iteration: int) -> dict[str, Any]:
        self.calls.append(f"checkpoint {iteration}")
        return {"iteration": iteration, "policy": {}, "config": {}, "count": self.count}

    def progress_text(self, iteration: int, metrics: dict[str, float]) -> str | None:
        return None


class CrashingRun(CountingRun):
    """Fails after iteration 3's row is written."""

    def record(self, iteration: int, metrics: dict[str, float]) -> None:
        if iteration == 3:
            raise RuntimeError("crash")


def _settings(iterations: int = 5, checkpoint_every: int = 2) -> LoopSettings:
    return LoopSettings(iterations, checkpoint_every, tensorboard=False, progress=False)


def _rows(paths: RunPaths) -> list[dict[str, str]]:
    """``metrics.csv`` without its time columns."""
    with paths.metrics.open(newline="") as handle:
        return [{k: v for k, v in row.items() if not k.startswith("time/")} for row in csv.DictReader(handle)]


def test_the_loop_writes_a_row_per_iteration_and_checkpoints_when_due_and_after_the_last(tmp_path):
    run, paths = CountingRun(), RunPaths(tmp_path)
    metrics = run_loop(run, paths, _settings())
    assert [r["iteration"] for r in _rows(paths)] == ["1", "2", "3", "4", "5"]
    assert set(metrics) == {"meta/count", "time/iteration"}
    assert [c for c in run.calls if c.startswith("checkpoint")] == [
        "checkpoint 2",
        "checkpoint 4",
        "checkpoint 5",
    ]
    assert run.calls[:3] == ["iterate 1", "record 1", "iterate 2"]
    state = load_checkpoint(paths.latest)
    assert (state["iteration"], state["count"]) == (5, 15)


def test_a_resume_restores_the_run_and_drops_the_rows_after_the_checkpoint(tmp_path):
    paths, whole = RunPaths(tmp_path), RunPaths(tmp_path / "whole")
    whole.root.mkdir()  # the app makes the run directory
    with pytest.raises(RuntimeError, match="crash"):  # after row 3, while latest.pt holds iteration 2
        run_loop(CrashingRun(), paths, _settings(iterations=5, checkpoint_every=2))
    assert len(_rows(paths)) == 3
    run_loop(CountingRun(), whole, _settings(iterations=5, checkpoint_every=2))
    resumed = CountingRun()
    run_loop(resumed, paths, _settings(iterations=5, checkpoint_every=2), resume=True)
    assert resumed.calls[:2] == ["restore", "iterate 3"]
    assert _rows(paths) == _rows(whole)
    assert load_checkpoint(paths.latest)["count"] == load_checkpoint(whole.latest)["count"]


def test_a_signal_finishes_the_iteration_checkpoints_it_and_stops(tmp_path):
    run, paths = CountingRun(signal_at=3), RunPaths(tmp_path)
    with pytest.raises(Stopped):
        run_loop(run, paths, _settings(iterations=8, checkpoint_every=10))
    assert run.calls[-1] == "checkpoint 3"
    assert load_checkpoint(paths.latest)["iteration"] == 3
    assert len(_rows(paths)) == 3


def test_a_failed_write_names_the_checkpoint_kept_and_the_resume_command(tmp_path):
    class FailingRun(CountingRun):
        def record(self, iteration: int, metrics: dict[str, float]) -> None:
            if iteration == 3:
                raise WriteError(tmp_path / "x", OSError(28, "No space left on device"))

    paths = RunPaths(tmp_path)
    with pytest.raises(
        WriteError, match=f"{paths.latest} holds iteration 2; .* metarl train --resume {tmp_path}"
    ):
        run_loop(FailingRun(), paths, _settings(iterations=5, checkpoint_every=2))
