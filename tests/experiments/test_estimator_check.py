"""experiments/diagnostics/estimator_check.py: task slices recompose the meta-gradient;
both estimators reported."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import torch

from metarl.agents.maml_trpo import MAMLTRPO
from metarl.agents.policies import GaussianMLPPolicy
from metarl.config import InnerConfig, MetaConfig, TRPOConfig
from metarl.core.types import EpisodeBatch, MetaBatch

REPO = Path(__file__).resolve().parents[2]
DIAGNOSTICS = REPO / "experiments" / "diagnostics"
SCRIPT = DIAGNOSTICS / "estimator_check.py"


def load_script():
    if str(DIAGNOSTICS) not in sys.path:  # where the script finds _loader when run as a file
        sys.path.insert(0, str(DIAGNOSTICS))
    spec = importlib.util.spec_from_file_location("estimator_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def episodes(seed: int, tasks: int = 3, horizon: int = 5, count: int = 4) -> EpisodeBatch:
    g = torch.Generator().manual_seed(seed)
    obs = torch.randn(tasks, horizon, count, 2, generator=g, dtype=torch.float64)
    mask = torch.ones(tasks, horizon, count, dtype=torch.float64)
    return EpisodeBatch(
        observations=obs,
        actions=torch.randn(tasks, horizon, count, 2, generator=g, dtype=torch.float64),
        rewards=obs.sum(-1) + torch.randn(tasks, horizon, count, generator=g, dtype=torch.float64),
        mask=mask,
        lengths=torch.full((tasks, count), horizon),
    )


def test_task_slices_weighted_by_size_give_the_whole_meta_gradient() -> None:
    torch.manual_seed(0)
    policy = GaussianMLPPolicy(2, 2, (5,), "tanh").double()
    learner = MAMLTRPO(policy, InnerConfig(step_size=0.3, estimator="lvc"), MetaConfig(), TRPOConfig())
    batch = MetaBatch([0, 1, 2], (episodes(0),), episodes(1))
    task_slice = load_script().task_slice
    one, two = (learner.meta_gradient(task_slice(batch, s)) for s in (slice(0, 1), slice(1, 3)))
    torch.testing.assert_close((one + 2 * two) / 3, learner.meta_gradient(batch))


def test_script_reports_both_estimators_and_their_difference(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    config = str(REPO / "experiments" / "navigation2d-quick.yaml")
    result = subprocess.run(
        [sys.executable, str(SCRIPT), config, "--threads", "1"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    found = re.findall(r"^(reinforce|lvc)\s+gradient norm ([\d.]+), split-half cosine", result.stdout, re.M)
    assert [name for name, _ in found] == ["reinforce", "lvc"], result.stdout
    assert all(float(norm) > 0 for _, norm in found)
    term = re.search(r"the added term: norm ([\d.]+)", result.stdout)
    assert term and float(term.group(1)) > 0, result.stdout
