"""Every registered id exists, passes Gymnasium's env checker, and samples tasks reproducibly."""

from __future__ import annotations

import os

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import envs


@pytest.fixture(autouse=True)
def _tmp_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # MuJoCo may write MUJOCO_LOG.TXT into the working directory


def test_import_registers_every_id() -> None:
    assert envs.registered_ids() == [
        "metarl/Navigation2D-v0",
        "metarl/HalfCheetahVel-v0",
        "metarl/HalfCheetahDir-v0",
        "metarl/AntVel-v0",
        "metarl/AntDir-v0",
        "metarl/AntGoal-v0",
    ]
    assert all(env_id in gym.registry for env_id in envs.registered_ids())


def test_package_is_the_repository_checkout() -> None:
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    assert os.path.abspath(envs.__file__).startswith(os.path.dirname(repo))


@pytest.mark.parametrize("env_id", envs.registered_ids())
def test_env_checker_passes(env_id: str) -> None:
    env = gym.make(env_id)
    check_env(env.unwrapped, skip_render_check=True)
    env.close()


@pytest.mark.parametrize("env_id", envs.registered_ids())
def test_same_generator_same_tasks_and_task_attribute_exists(env_id: str) -> None:
    env = gym.make(env_id).unwrapped
    assert hasattr(env, "task") and hasattr(env, "set_task")
    assert env.sample_tasks(4, np.random.default_rng(5)) == env.sample_tasks(4, np.random.default_rng(5))
    env.close()
