"""The shipped policies and few-shot models load with weights_only and evaluate right after install."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import imageio.v3 as iio
import pytest

from metarl import envs  # noqa: F401  (registers the ids)
from metarl.cli import main
from metarl.training.checkpoints import load_checkpoint

REPO = Path(__file__).resolve().parents[2]
SHIPPED = sorted((REPO / "experiments" / "pretrained").glob("*/policy.pt"))
SHIPPED_FEWSHOT = sorted((REPO / "experiments" / "pretrained").glob("*/model.pt"))


@pytest.mark.parametrize("path", SHIPPED, ids=[p.parent.name for p in SHIPPED])
def test_shipped_policy_loads_and_adapts(path: Path, tmp_path: Path) -> None:
    state = load_checkpoint(path)
    assert state["iteration"] >= 1 and "log_std" in state["policy"]
    out = tmp_path / "eval"
    # the shipped folder stands for its policy.pt; the policy's own episodes per task (evaluation.episodes,
    # 20): fewer give a noisier inner step
    args = ["evaluate", str(path.parent), "--tasks", "4", "--steps", "1", "--out", str(out)]
    assert main(args) == 0
    rows = json.loads((out / "adaptation.json").read_text())["methods"]["maml"]
    assert rows[1]["mean"] > rows[0]["mean"], "one inner step should improve the return of a trained policy"


@pytest.mark.parametrize("path", SHIPPED, ids=[p.parent.name for p in SHIPPED])
def test_shipped_policy_renders_before_and_after_one_step(
    path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gl: str
) -> None:
    """`metarl render` works on every shipped policy right after install: a GIF, one frame per env step.

    The task is the upper end of each of the env's task ranges, which is inside the distribution.
    """
    monkeypatch.chdir(tmp_path)  # MuJoCo may write MUJOCO_LOG.TXT into the working directory
    env = gym.make(load_checkpoint(path)["config"]["env"]["id"])
    task = ",".join(f"{field}={high:g}" for field, (_, high) in env.unwrapped.task_ranges.items())
    env.close()
    out = tmp_path / "rollout.gif"
    args = ["render", str(path), "--task", task, "--steps", "0,1", "--episodes", "2", "--horizon", "4"]
    assert main([*args, "--size", "32", "--out", str(out)]) == 0
    frames = iio.imread(out, index=None)
    assert frames.shape[0] == 4 and frames.shape[1] == 32 and frames.std() > 0


@pytest.mark.parametrize("path", SHIPPED_FEWSHOT, ids=[p.parent.name for p in SHIPPED_FEWSHOT])
def test_shipped_fewshot_model_loads_and_adapts(path: Path, tmp_path: Path) -> None:
    """A shipped sinusoid model: one 5-shot step of alpha lowers the mean squared error on 20 new tasks."""
    state = load_checkpoint(path)
    assert state["iteration"] == state["config"]["meta"]["iterations"]
    out = tmp_path / "eval"
    args = ["evaluate", str(path), "--tasks", "20", "--steps", "1", "--shots", "5", "--out", str(out)]
    assert main(args) == 0
    rows = json.loads((out / "adaptation.json").read_text())["methods"]["maml"]
    assert rows[1]["mean"] < 0.5 * rows[0]["mean"], "one step should at least halve a trained model's MSE"


def test_something_is_shipped() -> None:
    assert SHIPPED, "experiments/pretrained/ holds no policy"
