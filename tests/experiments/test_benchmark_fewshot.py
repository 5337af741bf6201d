"""experiments/diagnostics/benchmark_fewshot.py --quick runs and writes every ratio it reports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_quick_benchmark_writes_the_summary(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    script = str(REPO / "experiments" / "diagnostics" / "benchmark_fewshot.py")
    result = subprocess.run(
        [sys.executable, script, "--quick", "--out", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(out.read_text())["summary"]
    assert {"sinusoid_vmap_speedup_over_loop", "omniglot_grouped_speedup_over_loop"} <= set(summary)
    assert all(value > 0 for value in summary.values())
