"""experiments/diagnostics/memory_over_run.py: the slope it fits, the processes it counts,
and one short real run."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "experiments" / "diagnostics" / "memory_over_run.py"


def load_script():
    spec = importlib.util.spec_from_file_location("memory_over_run", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_slope_after_warm_up_is_the_growth_per_100_iterations() -> None:
    # 300 MiB that grow 2.5 MiB per 100 iterations in the training process, workers flat at 50 MiB, and a
    # start-up jump before the warm-up that the fit must ignore
    readings = [[i, (100.0 if i < 10 else 300.0 + 0.025 * i), 50.0] for i in range(1, 201)]
    summary = load_script().summarize(readings, warmup=10)
    assert summary["warm_iteration"] == 10 and summary["last_iteration"] == 200
    assert summary["main"]["slope_mib_per_100_iterations"] == pytest.approx(2.5, abs=1e-6)
    assert summary["workers"]["slope_mib_per_100_iterations"] == pytest.approx(0.0, abs=1e-9)
    assert summary["total"]["warm_mib"] == pytest.approx(350.25, abs=0.1)
    assert summary["total"]["last_mib"] == pytest.approx(355.0, abs=0.1)


def test_descendants_finds_a_grandchild_and_rss_reads_this_process() -> None:
    script = load_script()
    child = subprocess.Popen([sys.executable, "-c", "import subprocess, sys, time; "
                              "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)']); "
                              "time.sleep(30)"])  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while len(script.descendants(child.pid)) < 1:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert child.pid in script.descendants(os.getpid())
        assert all(p != child.pid for p in script.descendants(child.pid))
    finally:
        for pid in script.descendants(child.pid):
            os.kill(pid, 9)
        child.kill()
        child.wait()
    assert 10 < script.rss_mib(os.getpid()) < 100_000
    assert script.rss_mib(2**22 + 7) == 0.0  # no such process


def test_a_short_run_writes_its_readings_summary_and_figure(tmp_path: Path) -> None:
    out = tmp_path / "memory.json"
    tiny = [
        "meta.batch_size=2",
        "meta.episodes_per_task=2",
        "policy.hidden_sizes=[8]",
        "logging.tensorboard=false",
    ]
    config = str(REPO / "experiments" / "navigation2d-quick.yaml")
    command = [sys.executable, str(SCRIPT), config, "--iterations", "8", "--warmup", "2",
               "--backends", "local", "--bound", "1000", "--out", str(out)]  # fmt: skip
    for item in tiny:
        command += ["--set", item]
    result = subprocess.run(command, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr
    data = json.loads(out.read_text())
    readings = data["backends"]["local"]["readings"]
    assert [r[0] for r in readings] == sorted({r[0] for r in readings}) and readings[-1][0] == 8
    assert all(r[1] > 50 for r in readings)  # a torch process holds well over 50 MiB
    assert data["backends"]["local"]["flat"] is True
    assert out.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
