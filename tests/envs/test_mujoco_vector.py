"""The fast MuJoCo vector env equals the SyncVectorEnv of the single envs, step for step and bit for bit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.vector import AutoresetMode

from metarl import envs  # noqa: F401  (registers the metarl/ ids)
from metarl.envs.mujoco.ant import AntDirEnv
from metarl.envs.mujoco.half_cheetah import HalfCheetahVelEnv
from metarl.envs.mujoco.vector import MuJoCoVectorEnv
from metarl.envs.navigation import Navigation2DEnv
from metarl.envs.tasks import DirectionTask, GoalTask, VelocityTask

MUJOCO_IDS = [
    "metarl/HalfCheetahVel-v0",
    "metarl/HalfCheetahDir-v0",
    "metarl/AntVel-v0",
    "metarl/AntDir-v0",
    "metarl/AntGoal-v0",
    "metarl/HalfCheetahDir-v1",  # frame_skip 1
    "metarl/AntVel-v1",  # frame_skip 2
    "metarl/AntDir-v2",  # the original contact softness and initial pose
    "metarl/AntVel-v3",  # the original observation
    "metarl/AntDir-v4",  # the original start state
    "metarl/AntVel-v5",  # one RK4 step of 0.02 s per action (frame_skip 1)
    "metarl/AntDir-v6",  # -v4's model and start with -v5's integration
    "metarl/AntGoal-v3",
]
NUM_ENVS = 6
HORIZON = 30
#: Observations, rewards and every reward term are equal bit for bit (the same operations in the same order).
TOLERANCE = 0.0
#: ``distance_from_origin``: Gymnasium's single env takes the norm of one ``[2]`` vector, the vector env of
#: ``[N, 2]`` rows, and numpy computes the two differently (1 ulp apart).
NORM_TOLERANCE = 1e-15


@pytest.fixture(autouse=True)
def _in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # MuJoCo appends model-loading warnings to MUJOCO_LOG.TXT in the current folder.
    monkeypatch.chdir(tmp_path)


def make_pair(env_id: str, num_envs: int, horizon: int | None, **fast_kwargs: Any) -> tuple[Any, Any]:
    """The fast vector env and Gymnasium's SyncVectorEnv (``SAME_STEP``) with the same time limit."""
    limit = {} if horizon is None else {"max_episode_steps": horizon}
    fast = gym.make_vec(env_id, num_envs, vectorization_mode="vector_entry_point", **limit, **fast_kwargs)
    sync = gym.make_vec(
        env_id,
        num_envs,
        vectorization_mode="sync",
        vector_kwargs={"autoreset_mode": AutoresetMode.SAME_STEP},
        **limit,
    )
    return fast, sync


def assert_info_equal(fast: dict[str, Any], sync: dict[str, Any]) -> None:
    """Same keys and masks; the same values wherever a mask is set (``final_obs`` is NaN-padded here)."""
    assert set(fast) == set(sync)
    for key, value in sync.items():
        if key.startswith("_"):
            np.testing.assert_array_equal(fast[key], value, err_msg=key)
        elif key == "final_info":
            assert_info_equal(fast[key], value)
        elif key == "final_obs":
            done = sync["_final_obs"]
            np.testing.assert_allclose(fast[key][done], np.stack(value[done]), rtol=0, atol=TOLERANCE)
            assert np.isnan(fast[key][~done]).all()
        elif value.dtype == object:
            mask = sync[f"_{key}"]
            assert list(fast[key][mask]) == list(value[mask]), key
        else:
            mask = sync[f"_{key}"]
            assert fast[key].dtype == value.dtype, key
            atol = NORM_TOLERANCE if key == "distance_from_origin" else TOLERANCE
            np.testing.assert_allclose(fast[key][mask], value[mask], rtol=0, atol=atol, err_msg=key)


def run_both(fast: Any, sync: Any, tasks: list[Any], steps: int, seed: int, dtype: type = np.float64) -> dict:
    """Step both envs with the same tasks and random actions in [-1, 1]; return the counts of episode ends."""
    fast.set_attr("task", tasks)
    sync.set_attr("task", tasks)
    fast_obs, fast_info = fast.reset(seed=seed)
    sync_obs, sync_info = sync.reset(seed=seed)
    np.testing.assert_allclose(fast_obs, sync_obs, rtol=0, atol=TOLERANCE)
    assert_info_equal(fast_info, sync_info)
    rng = np.random.default_rng(seed)
    counts = {"terminated": 0, "truncated": 0}
    for t in range(steps):
        actions = rng.uniform(-1, 1, size=fast.action_space.shape).astype(dtype)
        fast_out, sync_out = fast.step(actions), sync.step(actions)
        for name, a, b in zip(("obs", "reward"), fast_out[:2], sync_out[:2], strict=True):
            assert a.dtype == b.dtype, name
            np.testing.assert_allclose(a, b, rtol=0, atol=TOLERANCE, err_msg=f"{name} at step {t}")
        np.testing.assert_array_equal(fast_out[2], sync_out[2], err_msg=f"terminated at step {t}")
        np.testing.assert_array_equal(fast_out[3], sync_out[3], err_msg=f"truncated at step {t}")
        assert_info_equal(fast_out[4], sync_out[4])
        counts["terminated"] += int(sync_out[2].sum())
        counts["truncated"] += int(sync_out[3].sum())
    return counts


@pytest.mark.parametrize("env_id", MUJOCO_IDS)
def test_equals_sync_vector_env_over_whole_episodes(env_id: str) -> None:
    """Two full episodes and part of a third, per-sub-env tasks, terminations where Ant has them."""
    horizon = HORIZON
    fast, sync = make_pair(env_id, NUM_ENVS, horizon)
    tasks = sync.envs[0].unwrapped.sample_tasks(NUM_ENVS, np.random.default_rng(0))
    assert len(set(tasks)) > 1
    counts = run_both(fast, sync, tasks, steps=2 * horizon + 5, seed=11)
    assert counts["truncated"] > 0
    if "Ant" in env_id and env_id.endswith("-v0"):
        # Ant's torso leaves [0.2, 1.0] under random actions within a few dozen steps: resets after
        # terminations, mid-episode, are part of the comparison (at -v1's shorter steps, only after
        # hundreds of steps; the code path is the same).
        assert counts["terminated"] > 0
    fast.close()
    sync.close()


def test_equals_sync_vector_env_at_the_registered_horizon_with_float32_actions() -> None:
    fast, sync = make_pair("metarl/HalfCheetahVel-v0", 3, None)
    assert fast.max_episode_steps == 200
    tasks = [VelocityTask(0.0), VelocityTask(1.0), VelocityTask(2.0)]
    counts = run_both(fast, sync, tasks, steps=205, seed=3, dtype=np.float32)
    assert counts == {"terminated": 0, "truncated": 3}
    fast.close()
    sync.close()


def test_thread_count_does_not_change_results() -> None:
    results = []
    for threads in (1, 3):
        env = gym.make_vec(
            "metarl/AntGoal-v0", 4, vectorization_mode="vector_entry_point", num_threads=threads
        )
        assert env.num_threads == threads
        env.set_attr("task", [GoalTask(1.0, 1.0), GoalTask(-1.0, 2.0)] * 2)
        obs, _ = env.reset(seed=5)
        rng = np.random.default_rng(0)
        trace = [obs]
        for _ in range(20):
            obs, reward, terminated, _, _ = env.step(rng.uniform(-1, 1, size=env.action_space.shape))
            trace += [obs, reward[:, None], terminated[:, None]]
        results.append(np.concatenate(trace, axis=1))
        env.close()
    np.testing.assert_array_equal(results[0], results[1])


@pytest.mark.parametrize("env_id", MUJOCO_IDS)
def test_vector_entry_point_builds_the_fast_env(env_id: str) -> None:
    env = gym.make_vec(env_id, 2, vectorization_mode="vector_entry_point")
    assert isinstance(env, MuJoCoVectorEnv)
    assert env.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
    assert env.max_episode_steps == gym.spec(env_id).max_episode_steps
    single = gym.make(env_id)
    assert env.single_observation_space == single.observation_space
    assert env.single_action_space == single.action_space
    assert env.get_attr("task") == (single.unwrapped.task,) * 2
    env.close()


def test_same_seed_same_rollout_and_seed_list() -> None:
    env = gym.make_vec("metarl/AntVel-v0", 3, vectorization_mode="vector_entry_point")
    first, _ = env.reset(seed=4)
    again, _ = env.reset(seed=[4, 5, 6])
    np.testing.assert_array_equal(first, again)
    other, _ = env.reset(seed=[4, None, 9])
    np.testing.assert_array_equal(other[0], first[0])
    assert not np.array_equal(other[2], first[2])
    env.close()


def test_set_attr_checks_tasks_like_the_single_env() -> None:
    env = gym.make_vec("metarl/HalfCheetahVel-v0", 3, vectorization_mode="vector_entry_point")
    env.set_attr("task", VelocityTask(0.5))
    assert env.get_attr("task") == (VelocityTask(0.5),) * 3
    with pytest.raises(TypeError, match=r"task must be a VelocityTask, got DirectionTask\(direction=1.0\)"):
        env.set_attr("task", [VelocityTask(1.0), DirectionTask(1.0), VelocityTask(1.0)])
    with pytest.raises(ValueError, match=r"task field 'velocity' must be finite, got inf"):
        env.set_attr("task", [VelocityTask(1.0), VelocityTask(float("inf")), VelocityTask(1.0)])
    with pytest.raises(ValueError, match=r"set_attr\('task'\) needs 3 values, got 2"):
        env.set_attr("task", [VelocityTask(1.0)] * 2)
    with pytest.raises(AttributeError, match="has no per-sub-env attribute 'goal'; only 'task'"):
        env.set_attr("goal", [VelocityTask(1.0)] * 3)
    with pytest.raises(AttributeError, match="only 'task'"):
        env.get_attr("goal")
    assert env.get_attr("task") == (VelocityTask(0.5),) * 3  # failed calls change nothing
    env.close()


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError, match="num_envs must be a positive integer, got 0"):
        MuJoCoVectorEnv(HalfCheetahVelEnv, 0, 200)
    with pytest.raises(ValueError, match="num_threads must be a positive integer or None, got 0"):
        MuJoCoVectorEnv(HalfCheetahVelEnv, 2, 200, num_threads=0)
    with pytest.raises(ValueError, match="env_class must be one of .*, got Navigation2DEnv"):
        MuJoCoVectorEnv(Navigation2DEnv, 2, 200)
    env = MuJoCoVectorEnv(HalfCheetahVelEnv, 2, 200)
    with pytest.raises(gym.error.ResetNeeded, match="call reset"):
        env.step(np.zeros((2, 6)))
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"actions must have shape \(2, 6\), got \(6,\)"):
        env.step(np.zeros(6))
    with pytest.raises(ValueError, match="seed must be an int, None or 2 seeds, got 3"):
        env.reset(seed=[1, 2, 3])
    env.close()


@pytest.mark.parametrize("env_id", ["metarl/HalfCheetahVel-v0", "metarl/AntVel-v0"])
def test_an_unstable_simulation_ends_its_episode_resets_and_is_counted(env_id: str) -> None:
    from metarl.collection import VectorCollector

    env = gym.make_vec(env_id, 3, vectorization_mode="vector_entry_point")
    env.reset(seed=0)
    qvel = slice(1 + env._model.nq, 1 + env._model.nq + env._model.nv)
    env._state[1, qvel] = 1e30  # MuJoCo resets such a simulation ("the simulation is unstable")
    env._state[2, 1 + env._model.nq] = np.nan
    with pytest.warns(RuntimeWarning, match="unstable"):
        obs, rewards, terminated, _, info = env.step(np.zeros((3, env._model.nu)))
    assert info["unstable"].tolist() == [False, True, True]
    assert terminated[1:].all() and np.isfinite(obs).all() and np.isfinite(rewards).all()
    assert rewards[1:].tolist() == [0.0, 0.0]
    # the collector ends those episodes and counts them
    collector = VectorCollector(env, 1, 3, 5)
    env.reset(seed=0)

    calls = []

    def corrupting_policy(observations: torch.Tensor) -> torch.Tensor:
        if not calls:  # sub-env 0 becomes unstable in its first step
            env._state[0, qvel] = np.nan
        calls.append(1)
        return torch.zeros(1, 3, env._model.nu)

    with pytest.warns(RuntimeWarning, match="unstable"):
        batch = collector.collect([env.get_attr("task")[0]], corrupting_policy, seed=0)
    assert batch.lengths.tolist() == [[1, 5, 5]]
    assert torch.isfinite(batch.observations).all() and torch.isfinite(batch.rewards).all()
    assert collector.pop_stats()["collector/unstable_resets"] == 1.0
    assert collector.pop_stats()["collector/unstable_resets"] == 0.0
    collector.close()


@pytest.mark.parametrize("env_id", ["metarl/HalfCheetahVel-v0", "metarl/AntVel-v0"])
def test_the_single_env_reports_an_unstable_simulation_like_the_vector_env(env_id: str) -> None:
    env = gym.make(env_id).unwrapped
    env.reset(seed=0)
    _, _, terminated, _, info = env.step(np.zeros(env.action_space.shape))
    assert not terminated and "unstable" not in info
    env.data.qvel[:] = 1e30
    with pytest.warns(RuntimeWarning, match="unstable"):
        obs, reward, terminated, _, info = env.step(np.zeros(env.action_space.shape))
    assert terminated and reward == 0.0 and info["unstable"] and np.isfinite(obs).all()


@pytest.mark.parametrize("env_id", ["metarl/AntVel-v0", "metarl/HalfCheetahDir-v0"])
def test_disabled_autoreset_steps_like_same_step_until_each_episode_ends_then_freezes(env_id: str) -> None:
    n, horizon = 8, 150
    kwargs: dict[str, Any] = {"vectorization_mode": "vector_entry_point", "max_episode_steps": horizon}
    same = gym.make_vec(env_id, n, **kwargs)
    frozen = gym.make_vec(env_id, n, autoreset_mode=AutoresetMode.DISABLED, **kwargs)
    assert frozen.metadata["autoreset_mode"] == AutoresetMode.DISABLED
    same.reset(seed=3)
    last, _ = frozen.reset(seed=3)
    rng = np.random.default_rng(0)
    alive, ended_early = np.ones(n, dtype=bool), np.zeros(n, dtype=bool)
    for _ in range(horizon + 5):
        actions = rng.uniform(-1, 1, size=same.action_space.shape)
        s_obs, s_reward, s_term, s_trunc, s_info = same.step(actions)
        f_obs, f_reward, f_term, f_trunc, f_info = frozen.step(actions)
        # running episodes: the same step as SAME_STEP's (whose ended rows hold the reset's observation)
        np.testing.assert_allclose(f_reward[alive], s_reward[alive], rtol=0, atol=TOLERANCE)
        np.testing.assert_array_equal(f_term[alive], s_term[alive])
        np.testing.assert_array_equal(f_trunc[alive], s_trunc[alive])
        done = (s_term | s_trunc) & alive
        going = alive & ~done
        np.testing.assert_allclose(f_obs[going], s_obs[going], rtol=0, atol=TOLERANCE)
        if done.any():
            np.testing.assert_allclose(f_obs[done], s_info["final_obs"][done], rtol=0, atol=TOLERANCE)
        # finished episodes: not simulated, nothing reported
        finished = ~alive
        np.testing.assert_array_equal(f_obs[finished], last[finished])
        assert (f_reward[finished] == 0).all() and not (f_term | f_trunc)[finished].any()
        assert not any(mask[finished].any() for key, mask in f_info.items() if key.startswith("_"))
        ended_early |= s_term & alive
        alive, last = going, f_obs
    assert not alive.any()
    if "Ant" in env_id:  # random actions topple some ants: the case where skipping finished rows pays
        assert ended_early.any()
    same.close()
    frozen.close()


def test_disabled_autoreset_resets_the_masked_sub_envs_only() -> None:
    env = gym.make_vec(
        "metarl/HalfCheetahVel-v0", 3, vectorization_mode="vector_entry_point", max_episode_steps=2,
        autoreset_mode=AutoresetMode.DISABLED,
    )  # fmt: skip
    full, _ = env.reset(seed=5)
    for _ in range(2):
        _, _, _, truncated, _ = env.step(np.zeros(env.action_space.shape))
    assert truncated.all()
    mask = np.array([True, False, True])
    ended = env.step(np.zeros(env.action_space.shape))[0]
    obs, info = env.reset(seed=5, options={"reset_mask": mask})
    np.testing.assert_array_equal(obs[mask], full[mask])  # sub-env i reset with seed + i, as a full reset
    np.testing.assert_array_equal(obs[~mask], ended[~mask])
    np.testing.assert_array_equal(info["_task"], mask)
    after, reward, _, _, _ = env.step(np.ones(env.action_space.shape))
    assert reward[1] == 0 and reward[0] != 0 and reward[2] != 0
    np.testing.assert_array_equal(after[1], ended[1])
    with pytest.raises(ValueError, match="reset_mask"):
        env.reset(options={"reset_mask": np.ones(2, dtype=bool)})
    env.close()
    same_step = gym.make_vec("metarl/HalfCheetahVel-v0", 3, vectorization_mode="vector_entry_point")
    with pytest.raises(ValueError, match="DISABLED mode only"):
        same_step.reset(options={"reset_mask": mask})
    same_step.close()


def _lateral_terms(x_velocity: Any, qpos: np.ndarray, direction: Any) -> dict[str, Any]:
    return {"reward_forward": direction * qpos[..., 1]}


class AntLateralEnv(AntDirEnv):
    """A task distribution the package does not ship: only ``task_terms`` differs from AntDir."""

    task_terms = staticmethod(_lateral_terms)


def test_a_subclass_with_its_own_task_terms_gets_the_fast_path_and_equals_the_single_env() -> None:
    fast = MuJoCoVectorEnv(AntLateralEnv, 3, 20)
    sync = gym.vector.SyncVectorEnv(
        [lambda: gym.wrappers.TimeLimit(AntLateralEnv(), 20)] * 3, autoreset_mode=AutoresetMode.SAME_STEP
    )
    tasks = [DirectionTask(1.0), DirectionTask(-1.0), DirectionTask(0.5)]
    run_both(fast, sync, tasks, steps=25, seed=2)
    fast.close()
    sync.close()


def test_bad_env_classes_and_counts_are_named() -> None:
    with pytest.raises(ValueError, match=r"env_class must be one of \['AntTaskEnv', 'HalfCheetahTaskEnv'\]"):
        MuJoCoVectorEnv("AntVelEnv", 2, 200)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="num_envs must be a positive integer, got True"):
        MuJoCoVectorEnv(HalfCheetahVelEnv, True, 200)
    with pytest.raises(ValueError, match="autoreset_mode must be one of"):
        MuJoCoVectorEnv(HalfCheetahVelEnv, 2, 200, autoreset_mode="NextStep")
