"""`metarl benchmark --quick` runs every backend through the same collector and writes well-formed JSON.

Speed itself is not asserted here (shared 2-core machines are noisy); docs/BENCHMARKS.md holds the figures.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from metarl import envs
from metarl.app.measure import (
    BACKENDS,
    FISHER_VARIANTS,
    SB3VectorEnv,
    make_backend,
    measure_in_subprocess,
    peak_memory_mib,
)
from metarl.cli import main
from metarl.collection import VectorCollector


@pytest.fixture(autouse=True)
def _tmp_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


@pytest.mark.slow  # over 20 s here; CI runs the slow tests after the default run
def test_quick_benchmark_writes_json_with_every_backend(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bench.json"
    assert main(["benchmark", "--env", "metarl/HalfCheetahVel-v0", "--quick", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert set(result["collectors"]) == set(BACKENDS)
    for name, row in result["collectors"].items():
        assert "error" not in row, (name, row)
        assert row["steps_per_s"] > 0
    assert result["physics_steps_per_s"] > 0
    row = result["meta_iterations"]["quick"]
    assert {"sampling", "adaptation", "meta_update", "total", "peak_mib", "physics_s"} <= set(row)
    # the Fisher-vector product variants are timed on the same meta-batch in the same run
    assert set(row["fisher"]) == set(FISHER_VARIANTS)
    assert all(f["product_s"] > 0 and f["meta_update_s"] > 0 for f in row["fisher"].values())
    # double backprop is the same product as jfj, so it takes the same step
    assert row["fisher"]["jfj"]["step_cosine_with_exact"] == pytest.approx(1.0)
    assert row["fisher"]["double_backprop"]["step_cosine_with_exact"] == pytest.approx(1.0, abs=1e-3)
    assert all(f["step_norm"] > 0 for f in row["fisher"].values())
    assert "physics limit" in capsys.readouterr().out


def test_sb3_backends_give_the_same_batch_as_gymnasium_sync() -> None:
    """The adapter sets tasks on the base envs (SB3's set_attr would hit the outer wrapper) and maps dones."""
    tasks = [envs.VelocityTask(0.5), envs.VelocityTask(1.5)]
    batches = []
    for backend in ("gymnasium-sync", "sb3-dummy"):
        collector = VectorCollector(make_backend("metarl/HalfCheetahVel-v0", 4, backend), 2, 2, 15)
        g = torch.Generator().manual_seed(0)
        batches.append(
            collector.collect(tasks, lambda o, g=g: torch.randn(o.shape[:-1] + (6,), generator=g), 3)
        )
        collector.close()
    assert isinstance(make_backend("metarl/HalfCheetahVel-v0", 1, "sb3-dummy"), SB3VectorEnv)
    np.testing.assert_allclose(batches[0].rewards, batches[1].rewards, rtol=0, atol=1e-6)
    assert not torch.allclose(batches[0].rewards[0], batches[0].rewards[1])


def test_unknown_env_for_benchmark_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["benchmark", "--env", "metarl/HalfCheetahVell-v0", "--quick"]) == 2
    assert "did you mean" in capsys.readouterr().err


def test_backend_comparison_writes_json_and_every_backend_returns_the_local_batch(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import importlib.util

    backends = ["local", "subprocess"] + (["ray"] if importlib.util.find_spec("ray") else [])
    out = tmp_path / "backends.json"
    argv = ["benchmark", "--env", "metarl/Navigation2D-v0", "--quick", "--backends", *backends]
    assert main([*argv, "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert list(result["backends"]) == backends
    for name, row in result["backends"].items():
        assert "error" not in row, (name, row)
        assert row["steps_per_s"] > 0 and row["same_as_local"] is True
    assert "--backends" in result["command"] and "x local" in capsys.readouterr().out


def _allocate_and_report(mib: int) -> float:
    block = np.ones(mib * 2**20 // 8)  # touched, so resident
    assert block.sum() > 0
    return peak_memory_mib()


def test_peak_memory_of_a_spawned_worker_is_its_own_not_the_parents() -> None:
    hold = np.ones(600 * 2**20 // 8)  # the parent's peak is now at least 600 MiB above a fresh interpreter's
    parent = peak_memory_mib()
    child = measure_in_subprocess(_allocate_and_report, 100)
    assert hold.sum() > 0
    assert child < parent - 300  # ru_maxrss would report at least the parent's peak here
    assert child > 100  # the child's own 100 MiB block is counted
