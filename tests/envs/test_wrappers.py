"""TaskInObservation: the oracle's view of a task env."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from metarl import envs
from metarl.envs.wrappers import TaskInObservation, task_features


@pytest.mark.parametrize(
    ("task", "expected"),
    [
        (envs.VelocityTask(1.5), [1.5]),
        (envs.DirectionTask(-1.0), [-1.0]),
        (envs.GoalTask(0.2, -0.3), [0.2, -0.3]),
    ],
)
def test_task_features_are_the_fields_in_order(task, expected) -> None:
    np.testing.assert_allclose(task_features(task), expected, rtol=1e-6)
    assert task_features(task).dtype == np.float32


def test_task_features_reject_non_dataclass() -> None:
    with pytest.raises(TypeError, match="dataclass"):
        task_features(1.5)


@pytest.mark.parametrize(
    "env_id", ["metarl/Navigation2D-v0", "metarl/HalfCheetahVel-v0", "metarl/AntGoal-v0"]
)
def test_wrapped_env_passes_env_checker_and_appends_the_task(env_id: str) -> None:
    env = TaskInObservation(gym.make(env_id))
    check_env(env, skip_render_check=True)
    obs, _ = env.reset(seed=3)
    base = env.unwrapped
    k = task_features(base.task).shape[0]
    assert obs.shape == env.observation_space.shape
    np.testing.assert_array_equal(obs[-k:], task_features(base.task))
    obs, *_ = env.step(env.action_space.sample())
    np.testing.assert_array_equal(obs[-k:], task_features(base.task))


def test_seeded_resets_draw_the_same_tasks_and_unseeded_ones_move_on() -> None:
    def tasks(seed: int) -> list:
        env = TaskInObservation(gym.make("metarl/HalfCheetahVel-v0"))
        out = [env.reset(seed=seed)[0][-1]]
        out += [env.reset()[0][-1] for _ in range(4)]
        return out

    first, again, other = tasks(0), tasks(0), tasks(1)
    assert first == again
    assert first != other
    assert len(set(first)) == len(first), "every reset draws a new task"


def test_fixed_task_is_kept_without_resampling() -> None:
    env = TaskInObservation(gym.make("metarl/HalfCheetahVel-v0"), resample_tasks=False)
    env.unwrapped.set_task(envs.VelocityTask(0.7))
    for seed in range(3):
        assert env.reset(seed=seed)[0][-1] == pytest.approx(0.7)


def test_wrapping_a_plain_env_names_what_is_missing() -> None:
    with pytest.raises(TypeError, match="not a task env"):
        TaskInObservation(gym.make("Pendulum-v1"))
