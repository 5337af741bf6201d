"""2-D navigation: the numpy vector env equals a SyncVectorEnv of the single env; tasks and rewards."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode

from metarl import envs
from metarl.envs.navigation import Navigation2DEnv, Navigation2DVectorEnv, sample_goals

ENV_ID = "metarl/Navigation2D-v0"


def test_vector_env_matches_sync_vector_env_over_whole_episodes() -> None:
    n = 6
    tasks = sample_goals(n - 1, np.random.default_rng(3)) + [envs.GoalTask(0.05, 0.0)]
    fast = gym.make_vec(ENV_ID, n, vectorization_mode="vector_entry_point")
    sync = gym.make_vec(
        ENV_ID, n, vectorization_mode="sync", vector_kwargs={"autoreset_mode": AutoresetMode.SAME_STEP}
    )
    assert isinstance(fast.unwrapped, Navigation2DVectorEnv)
    for env in (fast, sync):
        env.set_attr("task", tasks)
    obs_f, _ = fast.reset(seed=0)
    obs_s, _ = sync.reset(seed=0)
    rng = np.random.default_rng(0)
    ended = 0
    for t in range(150):
        action = rng.uniform(-0.15, 0.15, size=(n, 2)).astype(np.float32)
        action[-1] = (0.05, 0.0) if t % 100 == 0 else (0.0, 0.0)  # the last sub-env reaches its goal at once
        out_f, out_s = fast.step(action), sync.step(action)
        for a, b in zip(out_f[:4], out_s[:4], strict=True):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
        ended += int(out_f[2].sum() + out_f[3].sum())
    assert ended > n  # terminations and truncations (at 100 steps) both happened


def test_reward_is_minus_euclidean_distance_and_actions_are_clipped() -> None:
    env = Navigation2DEnv(task=envs.GoalTask(0.3, -0.4))
    env.reset(seed=0)
    obs, reward, terminated, _, info = env.step(np.array([1.0, 1.0]))
    np.testing.assert_allclose(obs, [0.1, 0.1])
    assert reward == pytest.approx(-np.hypot(0.2, -0.5))
    assert not terminated and info["task"] == envs.GoalTask(0.3, -0.4)


def test_episode_ends_within_goal_radius() -> None:
    env = Navigation2DEnv(task=envs.GoalTask(0.1, 0.0))
    env.reset()
    assert env.step(np.array([0.095, 0.0]))[2]


def test_time_limit_is_the_registered_horizon() -> None:
    env = gym.make(ENV_ID)
    env.unwrapped.set_task(envs.GoalTask(0.4, 0.4))
    env.reset(seed=0)
    steps = 0
    while True:
        steps += 1
        *_, terminated, truncated, _ = env.step(np.zeros(2, np.float32))
        if terminated or truncated:
            break
    assert steps == 100 and truncated


def test_sample_tasks_uses_only_the_given_generator() -> None:
    env = Navigation2DEnv()
    np.random.seed(1)
    a = env.sample_tasks(5, np.random.default_rng(7))
    np.random.seed(2)
    b = env.sample_tasks(5, np.random.default_rng(7))
    assert a == b
    assert all(-0.5 <= t.x <= 0.5 and -0.5 <= t.y <= 0.5 for t in a)


def test_bad_tasks_are_rejected() -> None:
    with pytest.raises(TypeError, match="task must be a GoalTask"):
        Navigation2DEnv(task=(0.1, 0.2))
    vec = Navigation2DVectorEnv(3)
    with pytest.raises(ValueError, match="needs 3 values, got 2"):
        vec.set_attr("task", [envs.GoalTask(0, 0)] * 2)
    with pytest.raises(AttributeError, match="only 'task'"):
        vec.set_attr("goal", 1)
