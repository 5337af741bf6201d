"""MuJoCo task distributions: Gymnasium API, determinism, task sampling and checking, reward terms."""

from __future__ import annotations

import copy
import pickle
from pathlib import Path

import gymnasium as gym
import mujoco
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from metarl import envs  # noqa: F401  (registers the metarl/ ids)
from metarl.envs.tasks import DirectionTask, GoalTask, VelocityTask

MUJOCO_IDS = [
    "metarl/HalfCheetahVel-v0",
    "metarl/HalfCheetahDir-v0",
    "metarl/AntVel-v0",
    "metarl/AntDir-v0",
    "metarl/AntGoal-v0",
]
OBS_DIMS = {"HalfCheetahVel": 17, "HalfCheetahDir": 17, "AntVel": 105, "AntDir": 105, "AntGoal": 107}
#: Two distinct valid tasks per id.
TWO_TASKS = {
    "HalfCheetahVel": (VelocityTask(0.5), VelocityTask(1.5)),
    "HalfCheetahDir": (DirectionTask(1.0), DirectionTask(-1.0)),
    "AntVel": (VelocityTask(0.5), VelocityTask(2.5)),
    "AntDir": (DirectionTask(1.0), DirectionTask(-1.0)),
    "AntGoal": (GoalTask(2.0, -1.0), GoalTask(-2.0, 2.5)),
}
STEPS = 20


def short_name(env_id: str) -> str:
    return env_id.removeprefix("metarl/").removesuffix("-v0")


@pytest.fixture(autouse=True)
def _in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # MuJoCo appends model-loading warnings to MUJOCO_LOG.TXT in the current folder.
    monkeypatch.chdir(tmp_path)


def rollout(env: gym.Env, seed: int, steps: int = STEPS) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """Observations, rewards and infos of ``steps`` steps of fixed random actions (stops early if it ends)."""
    actions = np.random.default_rng(123).uniform(-1, 1, size=(steps, *env.action_space.shape))
    obs, _ = env.reset(seed=seed)
    observations, rewards, infos = [obs], [], []
    for action in actions:
        obs, reward, terminated, truncated, info = env.step(action)
        observations.append(obs)
        rewards.append(reward)
        infos.append(info)
        if terminated or truncated:
            break
    return np.array(observations), np.array(rewards), infos


@pytest.mark.parametrize("env_id", MUJOCO_IDS)
def test_check_env_passes_and_spaces_have_the_documented_sizes(env_id: str) -> None:
    env = gym.make(env_id)
    check_env(env.unwrapped, skip_render_check=True)
    assert env.observation_space.shape == (OBS_DIMS[short_name(env_id)],)
    assert env.spec.max_episode_steps == 200


@pytest.mark.parametrize("env_id", MUJOCO_IDS)
def test_same_seed_and_actions_give_identical_rollouts(env_id: str) -> None:
    first = rollout(gym.make(env_id), seed=5)
    second = rollout(gym.make(env_id), seed=5)
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])
    assert len(first[1]) == STEPS  # random actions do not topple the ant this quickly


@pytest.mark.parametrize("env_id", MUJOCO_IDS)
def test_sample_tasks_depends_only_on_the_given_generator_and_respects_ranges(env_id: str) -> None:
    env = gym.make(env_id).unwrapped
    np.random.seed(1)
    first = env.sample_tasks(50, np.random.default_rng(7))
    np.random.seed(2)
    second = env.sample_tasks(50, np.random.default_rng(7))
    assert first == second and len(first) == 50
    assert first != env.sample_tasks(50, np.random.default_rng(8))
    assert all(isinstance(task, type(env.task)) for task in first)
    for name, (low, high) in env.task_ranges.items():
        values = np.array([getattr(task, name) for task in first])
        assert np.all((low <= values) & (values <= high)), name
    if "Dir" in env_id:
        assert {task.direction for task in first} == {-1.0, 1.0}
    assert env.sample_tasks(0, np.random.default_rng(0)) == []


@pytest.mark.parametrize("env_id", MUJOCO_IDS)
def test_different_tasks_give_different_rewards(env_id: str) -> None:
    task_a, task_b = TWO_TASKS[short_name(env_id)]
    rewards_a = rollout(gym.make(env_id, task=task_a), seed=3)[1]
    env_b = gym.make(env_id)
    env_b.unwrapped.set_task(task_b)
    obs_b, rewards_b, infos_b = rollout(env_b, seed=3)
    assert not np.allclose(rewards_a, rewards_b)
    assert all(info["task"] == task_b for info in infos_b)


@pytest.mark.parametrize("env_id", MUJOCO_IDS)
def test_reward_is_the_sum_of_the_reward_terms_in_info(env_id: str) -> None:
    _, rewards, infos = rollout(gym.make(env_id), seed=0)
    for reward, info in zip(rewards, infos, strict=True):
        terms = [value for key, value in info.items() if key.startswith("reward_")]
        assert len(terms) == (2 if "HalfCheetah" in env_id else 4)
        assert reward == pytest.approx(sum(terms), rel=1e-12, abs=1e-12)


def test_half_cheetah_vel_reward_by_hand() -> None:
    env = gym.make("metarl/HalfCheetahVel-v0", task=VelocityTask(1.3))
    env.reset(seed=0)
    action = np.linspace(-0.9, 0.9, 6)
    x_before = env.unwrapped.data.qpos[0]
    _, reward, terminated, truncated, info = env.step(action)
    x_velocity = (env.unwrapped.data.qpos[0] - x_before) / 0.05
    assert info["x_velocity"] == pytest.approx(x_velocity)
    assert reward == pytest.approx(-abs(info["x_velocity"] - 1.3) - 0.05 * np.sum(action**2))
    assert info["reward_forward"] == pytest.approx(-abs(x_velocity - 1.3))
    assert not terminated and not truncated


def test_ant_rewards_by_hand() -> None:
    action = np.linspace(-0.8, 0.8, 8)
    for env_id, task in [("metarl/AntVel-v0", VelocityTask(2.0)), ("metarl/AntGoal-v0", GoalTask(1.0, -2.0))]:
        env = gym.make(env_id, task=task)
        env.reset(seed=0)
        _, reward, terminated, _, info = env.step(action)
        data = env.unwrapped.data
        costs = 0.005 * np.sum(action**2) + 5e-4 * np.sum(np.clip(data.cfrc_ext, -1, 1) ** 2)
        if env_id == "metarl/AntVel-v0":
            task_term = -abs(info["x_velocity"] - 2.0) + 1.0
        else:
            task_term = -(abs(data.qpos[0] - 1.0) + abs(data.qpos[1] + 2.0)) + 4.0
        assert not terminated
        assert reward == pytest.approx(task_term + 0.05 - costs)


def test_ant_terminates_when_the_torso_leaves_the_healthy_z_range() -> None:
    env = gym.make("metarl/AntDir-v0")
    env.reset(seed=0)
    base = env.unwrapped
    qpos = base.data.qpos.copy()
    qpos[2] = 1.5
    base.set_state(qpos, base.data.qvel)
    *_, terminated, _, info = env.step(np.zeros(8))
    assert terminated and info["reward_survive"] == 0.0


def test_ant_goal_observation_starts_with_the_torso_position() -> None:
    env = gym.make("metarl/AntGoal-v0")
    obs, _ = env.reset(seed=0)
    np.testing.assert_array_equal(obs[:2], env.unwrapped.data.qpos[:2])
    for _ in range(5):
        obs, *_ = env.step(env.action_space.sample())
    np.testing.assert_array_equal(obs[:2], env.unwrapped.data.qpos[:2])
    assert np.any(obs[:2] != 0.0)


@pytest.mark.parametrize("env_id", MUJOCO_IDS)
def test_bad_tasks_are_rejected(env_id: str) -> None:
    env = gym.make(env_id).unwrapped
    good, _ = TWO_TASKS[short_name(env_id)]
    wrong_type = GoalTask(0.0, 0.0) if not isinstance(good, GoalTask) else VelocityTask(1.0)
    with pytest.raises(TypeError, match=f"task must be a {type(good).__name__}, got"):
        env.set_task(wrong_type)
    field, (low, high) = next(iter(env.task_ranges.items()))
    with pytest.raises(ValueError, match=rf"task field '{field}' must be finite, got nan"):
        env.task = type(good)(**{**vars(good), field: float("nan")})
    with pytest.raises(TypeError, match="must be a real number"):
        env.set_task(type(good)(**{**vars(good), field: "1.0"}))
    with pytest.raises(TypeError, match="task must be a"):
        gym.make(env_id, task=wrong_type)
    with pytest.raises(ValueError, match="n must be a non-negative integer, got -1"):
        env.sample_tasks(-1, np.random.default_rng(0))
    assert env.task == type(env).default_task  # failed assignments leave the task unchanged


@pytest.mark.parametrize("env_id", MUJOCO_IDS)
def test_solver_warmstart_is_disabled(env_id: str) -> None:
    model = gym.make(env_id).unwrapped.model
    assert model.opt.disableflags & int(mujoco.mjtDisableBit.mjDSBL_WARMSTART)


@pytest.mark.parametrize("env_id", MUJOCO_IDS)
def test_set_attr_sets_one_task_per_sub_env(env_id: str) -> None:
    tasks = list(TWO_TASKS[short_name(env_id)])
    vec = gym.make_vec(env_id, 2, vectorization_mode="sync")
    vec.set_attr("task", tasks)
    assert list(vec.get_attr("task")) == tasks
    assert [env.unwrapped.task for env in vec.envs] == tasks
    vec.reset(seed=0)
    _, _, _, _, info = vec.step(np.zeros(vec.action_space.shape))
    assert list(info["task"]) == tasks
    vec.close()


@pytest.mark.parametrize("env_id", MUJOCO_IDS)
def test_deepcopy_keeps_the_class_and_current_task(env_id: str) -> None:
    env = gym.make(env_id).unwrapped
    _, task = TWO_TASKS[short_name(env_id)]
    env.set_task(task)
    clone = copy.deepcopy(env)
    assert type(clone) is type(env) and clone.task == task


@pytest.mark.parametrize(
    "env_id",
    [
        "metarl/HalfCheetahVel-v1",
        "metarl/AntDir-v1",
        "metarl/AntVel-v2",
        "metarl/AntGoal-v2",
        "metarl/AntDir-v3",
        "metarl/AntVel-v4",
    ],
)
@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
def test_a_copy_keeps_the_control_rate_and_the_original_model(env_id: str, how: str) -> None:
    env = gym.make(env_id).unwrapped
    clone = copy.deepcopy(env) if how == "deepcopy" else pickle.loads(pickle.dumps(env))
    assert (clone.frame_skip, clone.dt) == (env.frame_skip, env.dt) and env.frame_skip in (1, 2)
    np.testing.assert_array_equal(clone.model.geom_solimp, env.model.geom_solimp)
    np.testing.assert_array_equal(clone.init_qpos, env.init_qpos)
    action = np.full(env.action_space.shape, 0.3)
    steps = [(e.reset(seed=3), e.step(action)[:2]) for e in (env, clone)]
    np.testing.assert_array_equal(steps[0][1][0], steps[1][1][0])
    assert steps[0][1][1] == steps[1][1][1]


@pytest.mark.parametrize("env_id", MUJOCO_IDS)
def test_tasks_outside_the_training_range_are_accepted_for_extrapolation(env_id: str) -> None:
    env = gym.make(env_id).unwrapped
    good, _ = TWO_TASKS[short_name(env_id)]
    field, (low, high) = next(iter(env.task_ranges.items()))
    outside = type(good)(**{**vars(good), field: high + 0.5})
    env.set_task(outside)
    env.reset(seed=0)
    assert env.step(env.action_space.sample())[4]["task"] == outside
