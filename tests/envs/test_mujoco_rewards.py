"""The reward functions of envs/mujoco/rewards.py: one step and a batch of steps give the same bits."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from metarl import envs  # noqa: F401  (registers the metarl/ ids)
from metarl.envs.mujoco.rewards import ant_reward_terms, half_cheetah_reward, is_healthy
from metarl.envs.mujoco.vector import task_array

WEIGHTS = {"healthy_reward": 0.05, "ctrl_cost_weight": 0.005, "contact_cost_weight": 5e-4}


@pytest.fixture(autouse=True)
def _in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # MuJoCo appends model-loading warnings to MUJOCO_LOG.TXT in the current folder.
    monkeypatch.chdir(tmp_path)


@pytest.mark.parametrize(
    ("env_id", "batch_size"),
    [("metarl/HalfCheetahDir-v0", 4), ("metarl/AntGoal-v0", 4), ("metarl/AntVel-v0", 1)],
)
def test_the_reward_functions_give_the_same_bits_for_one_step_and_for_a_batch(
    env_id: str, batch_size: int
) -> None:
    rng = np.random.default_rng(0)
    env = gym.make(env_id).unwrapped
    x_velocity, qpos = rng.normal(size=batch_size), rng.normal(size=(batch_size, env.model.nq))
    tasks = task_array(env.sample_tasks(batch_size, rng))
    actions, forces = rng.uniform(-1, 1, (batch_size, env.model.nu)), rng.normal(size=(batch_size, 14, 6))
    batch = env.task_terms(x_velocity, qpos, *tasks.T)
    healthy = is_healthy(qpos, qpos, (-0.5, 0.5))
    ant = ant_reward_terms(batch, healthy, actions, forces, **WEIGHTS)
    cheetah = half_cheetah_reward({"reward_forward": x_velocity}, actions, 0.05)
    for i in range(batch_size):
        one = env.task_terms(x_velocity[i], qpos[i], *tasks[i])
        assert one.keys() == batch.keys() and all(one[k] == batch[k][i] for k in one)
        assert is_healthy(qpos[i], qpos[i], (-0.5, 0.5)) == healthy[i]
        one_ant = ant_reward_terms(one, healthy[i], actions[i], forces[i], **WEIGHTS)
        assert all(one_ant[k] == ant[k][i] for k in one_ant)
        one_cheetah = half_cheetah_reward({"reward_forward": x_velocity[i]}, actions[i], 0.05)
        assert one_cheetah[0] == cheetah[0][i]
        assert all(one_cheetah[1][k] == cheetah[1][k][i] for k in one_cheetah[1])
    env.close()


WEIGHTS = {"healthy_reward": 0.05, "ctrl_cost_weight": 0.005, "contact_cost_weight": 5e-4}
