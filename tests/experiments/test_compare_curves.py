"""experiments/compare_curves.py: the moving average, and a figure from two metrics files."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "experiments" / "compare_curves.py"


def load_script():
    spec = importlib.util.spec_from_file_location("compare_curves", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_moving_average_takes_the_last_window_values_and_fewer_at_the_start() -> None:
    average = load_script().moving_average(np.array([1.0, 2.0, 3.0, 4.0, 10.0]), 3)
    np.testing.assert_allclose(average, [1.0, 1.5, 2.0, 3.0, 17.0 / 3.0])


def test_two_runs_go_on_one_figure(tmp_path: Path) -> None:
    for name, offset in (("a", 0.0), ("b", 5.0)):
        rows = ["iteration,meta/return_after"] + [f"{i},{i + offset}" for i in range(1, 8)]
        (tmp_path / f"{name}.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "cmp.png"
    runs = [f"a={tmp_path / 'a.csv'}", f"b={tmp_path / 'b.csv'}"]
    subprocess.run(
        [sys.executable, str(SCRIPT), *runs, "--out", str(out)],
        check=True,
        capture_output=True,
    )
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
