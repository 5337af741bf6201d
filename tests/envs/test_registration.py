"""Every registered id exists, passes Gymnasium's env checker, and samples tasks reproducibly."""

from __future__ import annotations

import importlib.util
import os
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from metarl import envs
from metarl.envs.metaworld import ENV_NAMES

HAS_METAWORLD = importlib.util.find_spec("metaworld") is not None
#: every id whose env can be built here (Meta-World needs its extra; tests/envs/test_metaworld.py covers it)
BUILDABLE_IDS = [i for i in envs.registered_ids() if HAS_METAWORLD or not i.startswith("metarl/ML")]


@pytest.fixture(autouse=True)
def _tmp_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # MuJoCo may write MUJOCO_LOG.TXT into the working directory


def test_import_registers_every_id() -> None:
    tasks = ["HalfCheetahVel", "HalfCheetahDir", "AntVel", "AntDir", "AntGoal"]
    expected = ["metarl/Navigation2D-v0"] + [f"metarl/{t}-{v}" for t in tasks for v in ("v0", "v1")]
    variants = ("v2", "v3", "v4", "v5", "v6")
    expected += [f"metarl/{t}-{v}" for t in ("AntVel", "AntDir", "AntGoal") for v in variants]
    expected += [f"metarl/ML1-{name}" for name in ENV_NAMES] + ["metarl/ML10-v3", "metarl/ML45-v3"]
    assert envs.registered_ids() == expected
    assert all(env_id in gym.registry for env_id in envs.registered_ids())


@pytest.mark.parametrize(
    ("env_id", "dt"),
    [
        ("metarl/HalfCheetahVel-v0", 0.05),
        ("metarl/HalfCheetahDir-v1", 0.01),  # the original code's control rate
        ("metarl/AntVel-v0", 0.05),
        ("metarl/AntGoal-v1", 0.02),
    ],
)
def test_v1_ids_step_at_the_original_control_rate(env_id: str, dt: float) -> None:
    single = gym.make(env_id).unwrapped
    vector = gym.make_vec(env_id, 2, vectorization_mode="vector_entry_point")
    assert single.dt == pytest.approx(dt) and vector.dt == pytest.approx(dt)
    single.close()
    vector.close()


@pytest.mark.parametrize("task", ["AntVel", "AntDir", "AntGoal"])
def test_ant_v2_ids_use_the_original_contact_softness_and_initial_pose(task: str) -> None:
    from metarl.envs.mujoco.ant import ORIGINAL_INIT_QPOS, ORIGINAL_SOLIMP

    v1, v2 = gym.make(f"metarl/{task}-v1").unwrapped, gym.make(f"metarl/{task}-v2").unwrapped
    assert v2.dt == pytest.approx(v1.dt) == pytest.approx(0.02)
    np.testing.assert_array_equal(v2.model.geom_solimp[:, :3], np.tile(ORIGINAL_SOLIMP, (v2.model.ngeom, 1)))
    gymnasium_solimp = np.tile((0.9, 0.95, 0.001), (v1.model.ngeom, 1))
    np.testing.assert_array_equal(v1.model.geom_solimp[:, :3], gymnasium_solimp)
    np.testing.assert_array_equal(v2.init_qpos, ORIGINAL_INIT_QPOS)
    assert v1.init_qpos[2] == pytest.approx(0.75)
    # the original pose keeps every ankle inside its joint limits
    ankles = v2.model.jnt_range[2::2]
    assert np.all((ankles[:, 0] <= v2.init_qpos[8::2]) & (v2.init_qpos[8::2] <= ankles[:, 1]))
    v1.close()
    v2.close()


def test_ant_v1_ids_are_not_called_out_of_date_but_v0_ids_still_are() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # pytest's own filters would show every DeprecationWarning
        envs.registration.silence_upgrade_warnings()
        gym.make("metarl/AntDir-v1").close()
        assert not [w for w in caught if "out of date" in str(w.message)]
        gym.make("metarl/AntDir-v0").close()
    assert [w for w in caught if "metarl/AntDir-v0 is out of date" in str(w.message)]


def test_frame_skip_must_be_a_positive_integer() -> None:
    with pytest.raises(ValueError, match="frame_skip must be a positive integer, got 0"):
        gym.make("metarl/HalfCheetahVel-v1", frame_skip=0)


def test_package_is_the_repository_checkout() -> None:
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    assert os.path.abspath(envs.__file__).startswith(os.path.dirname(repo))


@pytest.mark.parametrize("env_id", BUILDABLE_IDS)
def test_env_checker_passes(env_id: str) -> None:
    env = gym.make(env_id)
    check_env(env.unwrapped, skip_render_check=True)
    env.close()


@pytest.mark.parametrize("env_id", BUILDABLE_IDS)
def test_same_generator_same_tasks_and_task_attribute_exists(env_id: str) -> None:
    env = gym.make(env_id).unwrapped
    assert hasattr(env, "task") and hasattr(env, "set_task")
    assert env.sample_tasks(4, np.random.default_rng(5)) == env.sample_tasks(4, np.random.default_rng(5))
    env.close()


@pytest.mark.parametrize("task", ["AntVel", "AntDir", "AntGoal"])
def test_ant_v3_ids_observe_as_the_original_code(task: str) -> None:
    env = gym.make(f"metarl/{task}-v3").unwrapped
    assert env.dt == pytest.approx(0.02) and env.observation_space.shape == (125,)
    env.reset(seed=0)
    obs = env.step(np.full(8, 0.5))[0]
    data, torso = env.data, env.model.body("torso").id
    np.testing.assert_array_equal(obs[:15], data.qpos)  # x and y included
    np.testing.assert_array_equal(obs[15:29], data.qvel)
    np.testing.assert_array_equal(obs[29:113], np.clip(data.cfrc_ext, -1, 1).ravel())  # the world's row too
    np.testing.assert_array_equal(obs[113:122], data.xmat[torso])
    # the torso's subtree is the whole robot: its centre of mass is the mass-weighted mean of the bodies'
    mass = env.model.body_mass[1:]
    np.testing.assert_allclose(obs[122:], mass @ data.xipos[1:] / mass.sum(), rtol=0, atol=1e-12)
    assert env.observation_space.contains(obs)


@pytest.mark.parametrize("task", ["AntVel", "AntDir", "AntGoal"])
def test_ant_v4_ids_start_as_the_original_code(task: str) -> None:
    from metarl.envs.mujoco.ant import ORIGINAL_INIT_QPOS

    v2, v4 = gym.make(f"metarl/{task}-v2").unwrapped, gym.make(f"metarl/{task}-v4").unwrapped
    np.testing.assert_array_equal(v4.model.geom_solimp, v2.model.geom_solimp)  # -v2's model and pose
    np.testing.assert_array_equal(v4.init_qpos, ORIGINAL_INIT_QPOS)

    def offsets(env) -> tuple[np.ndarray, np.ndarray]:
        starts = [
            env.reset(seed=seed) and (env.data.qpos.copy(), env.data.qvel.copy()) for seed in range(300)
        ]
        qpos, qvel = map(np.stack, zip(*starts, strict=True))
        return qpos - env.init_qpos, qvel - env.init_qvel

    (p2, v2_vel), (p4, v4_vel) = offsets(v2), offsets(v4)
    # positions: N(0, 0.01^2) against Gymnasium's U(-0.1, 0.1) (std 0.0577); velocities 0.1 N(0, 1) in both
    assert abs(p4.std() - 0.01) < 0.0005 and abs(p2.std() - 0.1 / np.sqrt(3)) < 0.002
    assert abs(v4_vel.std() - 0.1) < 0.005 and abs(v2_vel.std() - 0.1) < 0.005


@pytest.mark.parametrize("task", ["AntVel", "AntDir", "AntGoal"])
def test_ant_v5_ids_take_one_rk4_step_of_the_original_timestep(task: str) -> None:
    import mujoco

    from metarl.envs.mujoco.ant import ORIGINAL_TIMESTEP

    v1, v5 = gym.make(f"metarl/{task}-v1").unwrapped, gym.make(f"metarl/{task}-v5").unwrapped
    assert v5.model.opt.timestep == ORIGINAL_TIMESTEP == 0.02 and v5.frame_skip == 1
    assert v5.model.opt.integrator == mujoco.mjtIntegrator.mjINT_RK4
    assert v5.dt == v1.dt == 0.02 and v5.metadata["render_fps"] == 50
    # everything else is -v1's: the same model but for the timestep, the same start state
    np.testing.assert_array_equal(v5.model.geom_solimp, v1.model.geom_solimp)
    np.testing.assert_array_equal(v5.init_qpos, v1.init_qpos)
    obs5, _ = v5.reset(seed=3)
    obs1, _ = v1.reset(seed=3)
    np.testing.assert_array_equal(obs5, obs1)
    # one env step is one physics step of 0.02 s: a hand-made RK4 step of the model lands on the same state
    data = mujoco.MjData(v5.model)
    data.qpos[:], data.qvel[:] = v5.data.qpos, v5.data.qvel
    action = np.full(v5.action_space.shape, 0.3)
    data.ctrl[:] = action
    mujoco.mj_step(v5.model, data)
    v5.step(action)
    np.testing.assert_array_equal(v5.data.qpos, data.qpos)
    assert v5.data.time == pytest.approx(0.02)


@pytest.mark.parametrize("task", ["AntVel", "AntDir", "AntGoal"])
def test_ant_v6_ids_are_v4s_model_and_start_with_v5s_integration(task: str) -> None:
    v4, v5, v6 = (gym.make(f"metarl/{task}-{v}").unwrapped for v in ("v4", "v5", "v6"))
    np.testing.assert_array_equal(v6.model.geom_solimp, v4.model.geom_solimp)
    np.testing.assert_array_equal(v6.init_qpos, v4.init_qpos)
    assert (v6.model.opt.timestep, v6.model.opt.integrator, v6.frame_skip, v6.dt) == (
        v5.model.opt.timestep,
        v5.model.opt.integrator,
        1,
        0.02,
    )
    # the same start state as -v4 (its noise), then one RK4 step of 0.02 s per action as -v5
    obs6, _ = v6.reset(seed=3)
    obs4, _ = v4.reset(seed=3)
    np.testing.assert_array_equal(obs6, obs4)
    action = np.full(v6.action_space.shape, 0.3)
    v6.step(action)
    v4.step(action)
    assert v6.data.time == pytest.approx(0.02) and not np.array_equal(v6.data.qpos, v4.data.qpos)
