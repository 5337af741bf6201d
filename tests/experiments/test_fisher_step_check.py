"""experiments/diagnostics/fisher_step_check.py: every variant builds a step; each exact one (fraction 1, the
config's CG iterations) is the exact step."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from metarl.config import load_config

REPO = Path(__file__).resolve().parents[2]


def test_every_product_at_fraction_one_gives_the_exact_step(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    script = str(REPO / "experiments" / "diagnostics" / "fisher_step_check.py")
    config = str(REPO / "experiments" / "navigation2d-quick.yaml")
    result = subprocess.run(
        [
            sys.executable,
            script,
            config,
            "--threads",
            "1",
            "--fractions",
            "1.0",
            "--closed-form-fractions",
            "1.0",
        ]
        + ["--cg-iterations", str(load_config(config).trpo.cg_iterations), "--no-jacobian"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    cosines = dict(re.findall(r"^(.+?)\s+[\d.]+ s .*cosine with exact ([\d.-]+)", result.stdout, re.M))
    without_jacobian = float(cosines.pop("fisher without J"))
    iterations = load_config(config).trpo.cg_iterations
    exact = {
        "exact",
        "tasks 1.0",
        "episodes 1.0",
        "query episodes 1.0",
        "closed_form tasks 1.0",
        f"cg {iterations}",
    }
    assert set(cosines) == exact
    assert all(float(c) > 0.999 for c in cosines.values()), cosines
    assert -1.0 <= without_jacobian <= 1.0
