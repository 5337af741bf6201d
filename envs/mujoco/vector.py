"""Fast vector envs for the MuJoCo task distributions: physics in C (``mujoco.rollout``), the rest in numpy.

Each MuJoCo id's ``vector_entry_point`` is one of the ``make_*`` factories at the end, which build a
:class:`MuJoCoVectorEnv`. The reward terms and observations are small pure functions of batched arrays that
compute what the single envs of ``half_cheetah.py`` and ``ant.py`` compute, in the same order.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import gymnasium as gym
import mujoco
import mujoco.rollout
import numpy as np
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from .ant import AntDirEnv, AntGoalEnv, AntTaskEnv, AntVelEnv
from .common import check_task
from .half_cheetah import HalfCheetahDirEnv, HalfCheetahTaskEnv, HalfCheetahVelEnv

STATE = mujoco.mjtState.mjSTATE_FULLPHYSICS
#: ``(x_velocity [N], qpos [N, nq], tasks [N, F]) -> {reward term name: [N]}``
TaskTerm = Callable[[np.ndarray, np.ndarray, np.ndarray], dict[str, np.ndarray]]
#: The ``info`` entries a reset sub-env's row keeps (Gymnasium v5's reset info, plus the task).
RESET_INFO_KEYS = ("x_position", "y_position", "distance_from_origin", "task")


def task_array(tasks: Sequence[Any]) -> np.ndarray:
    """The fields of task dataclasses in declaration order, ``[N, F]`` float64."""
    return np.array([[getattr(t, f.name) for f in dataclasses.fields(t)] for t in tasks], dtype=float)


def half_cheetah_velocity_term(x_velocity: np.ndarray, qpos: np.ndarray, tasks: np.ndarray) -> dict:
    """HalfCheetahVel: ``reward_forward = -|v_x - velocity|``."""
    return {"reward_forward": -np.abs(x_velocity - tasks[:, 0])}


def direction_term(x_velocity: np.ndarray, qpos: np.ndarray, tasks: np.ndarray) -> dict:
    """HalfCheetahDir and AntDir: ``reward_forward = direction * v_x``."""
    return {"reward_forward": tasks[:, 0] * x_velocity}


def ant_velocity_term(x_velocity: np.ndarray, qpos: np.ndarray, tasks: np.ndarray) -> dict:
    """AntVel: ``reward_forward = -|v_x - velocity| + 1``."""
    return {"reward_forward": -np.abs(x_velocity - tasks[:, 0]) + 1.0}


def ant_goal_term(x_velocity: np.ndarray, qpos: np.ndarray, tasks: np.ndarray) -> dict:
    """AntGoal: ``reward_goal = -(|x - goal_x| + |y - goal_y|) + 4``, torso position after the step."""
    return {"reward_goal": -(np.abs(qpos[:, 0] - tasks[:, 0]) + np.abs(qpos[:, 1] - tasks[:, 1])) + 4.0}


TASK_TERMS: dict[type, TaskTerm] = {
    HalfCheetahVelEnv: half_cheetah_velocity_term,
    HalfCheetahDirEnv: direction_term,
    AntVelEnv: ant_velocity_term,
    AntDirEnv: direction_term,
    AntGoalEnv: ant_goal_term,
}


@dataclasses.dataclass(frozen=True)
class Definition:
    """What a vector env takes from one single env of its id, so that no constant is written twice."""

    task_term: TaskTerm
    is_ant: bool
    frame_skip: int
    dt: float
    init_qpos: np.ndarray
    init_qvel: np.ndarray
    reset_noise_scale: float
    qpos_skipped: int  # leading qpos entries left out of the observation
    ctrl_cost_weight: float
    contact_cost_weight: float
    healthy_reward: float
    healthy_z_range: tuple[float, float]
    contact_force_range: tuple[float, float]
    main_body: int | str


def read_definition(env: HalfCheetahTaskEnv | AntTaskEnv) -> Definition:
    """Read ``env``'s definitions (Gymnasium v5 keeps its constructor arguments in private attributes)."""
    if type(env) not in TASK_TERMS:
        names = sorted(cls.__name__ for cls in TASK_TERMS)
        raise ValueError(f"env_class must be one of {names}, got {type(env).__name__}")
    is_ant = isinstance(env, AntTaskEnv)
    assert not is_ant or (env._terminate_when_unhealthy and env._include_cfrc_ext_in_observation)
    return Definition(
        task_term=TASK_TERMS[type(env)],
        is_ant=is_ant,
        frame_skip=env.frame_skip,
        dt=env.dt,
        init_qpos=env.init_qpos.copy(),
        init_qvel=env.init_qvel.copy(),
        reset_noise_scale=env._reset_noise_scale,
        qpos_skipped=(2 if is_ant else 1) * int(env._exclude_current_positions_from_observation),
        ctrl_cost_weight=env._ctrl_cost_weight,
        contact_cost_weight=env._contact_cost_weight if is_ant else 0.0,
        healthy_reward=env._healthy_reward if is_ant else 0.0,
        healthy_z_range=env._healthy_z_range if is_ant else (-np.inf, np.inf),
        contact_force_range=env._contact_force_range if is_ant else (-np.inf, np.inf),
        main_body=env._main_body if is_ant else 0,
    )


def control_cost(actions: np.ndarray, weight: float) -> np.ndarray:
    """``weight * |a|^2`` per sub-env, ``[N]``, in the actions' dtype (as the single env's)."""
    return weight * np.sum(np.square(actions), axis=1)


def position_info(d: Definition, qpos: np.ndarray) -> dict[str, np.ndarray]:
    """The position entries of step and reset ``info`` (Gymnasium v5's), each ``[N]``."""
    info = {"x_position": qpos[:, 0].copy()}
    if d.is_ant:
        info.update(y_position=qpos[:, 1].copy(), distance_from_origin=np.linalg.norm(qpos[:, :2], axis=1))
    return info


def observe(d: Definition, qpos: np.ndarray, qvel: np.ndarray, cfrc_ext: np.ndarray) -> np.ndarray:
    """Observations ``[N, obs_dim]``: ``qpos`` less the skipped entries, ``qvel``, and for Ant more.

    For Ant, the clipped external contact forces of all bodies but the world (``cfrc_ext: [N, nbody, 6]``).
    """
    parts = [qpos[:, d.qpos_skipped :], qvel]
    if d.is_ant:
        parts.append(np.clip(cfrc_ext[:, 1:], *d.contact_force_range).reshape(len(qpos), -1))
    return np.concatenate(parts, axis=1)


def half_cheetah_rewards(
    d: Definition, x_before: np.ndarray, qpos: np.ndarray, actions: np.ndarray, tasks: np.ndarray
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Rewards ``[N]``, terminations ``[N]`` (never) and step info of HalfCheetah (root x before: ``[N]``)."""
    x_velocity = (qpos[:, 0] - x_before) / d.dt
    forward = d.task_term(x_velocity, qpos, tasks)["reward_forward"]
    ctrl_cost = control_cost(actions, d.ctrl_cost_weight)
    info = {"x_velocity": x_velocity, "reward_forward": forward, "reward_ctrl": -ctrl_cost}
    return forward - ctrl_cost, np.zeros(len(qpos), dtype=bool), info


def ant_rewards(
    d: Definition, xy_velocity: np.ndarray, qpos: np.ndarray, qvel: np.ndarray, cfrc_ext: np.ndarray,
    actions: np.ndarray, tasks: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:  # fmt: skip
    """Rewards ``[N]``, terminations ``[N]`` and step info of Ant (torso velocity ``xy_velocity: [N, 2]``)."""
    low, high = d.healthy_z_range
    finite = np.isfinite(qpos).all(axis=1) & np.isfinite(qvel).all(axis=1)
    healthy = finite & (low <= qpos[:, 2]) & (qpos[:, 2] <= high)
    forces = np.clip(cfrc_ext, *d.contact_force_range)
    terms = {
        **d.task_term(xy_velocity[:, 0], qpos, tasks),
        "reward_survive": healthy * d.healthy_reward,
        "reward_ctrl": -control_cost(actions, d.ctrl_cost_weight),
        "reward_contact": -(d.contact_cost_weight * np.sum(np.square(forces), axis=(1, 2))),
    }
    info = {"x_velocity": xy_velocity[:, 0].copy(), "y_velocity": xy_velocity[:, 1].copy(), **terms}
    return sum(terms.values()), ~healthy, info


def unstable_rows(
    state: np.ndarray, time_before: np.ndarray, dt: float, observations: np.ndarray, rewards: np.ndarray
) -> np.ndarray:
    """Sub-envs ``[N]`` whose simulation became unstable during the step that ended at ``state [N, nstate]``.

    MuJoCo resets the data of a simulation whose state or acceleration becomes NaN, inf or huge (it warns
    "the simulation is unstable"), which shows as a clock that did not advance by ``dt``; a state,
    observation or reward that is not finite counts too.
    """
    clock = ~np.isclose(state[:, 0], time_before + dt, rtol=0.0, atol=dt * 1e-3)
    finite = np.isfinite(state).all(axis=1) & np.isfinite(observations).all(axis=1) & np.isfinite(rewards)
    return clock | ~finite


def masked_info(info: dict[str, Any], masks: dict[str, np.ndarray]) -> dict[str, Any]:
    """Gymnasium's vector ``info``: ``key`` and its mask ``_key`` for each key some sub-env holds."""
    kept = [key for key in info if masks[key].any()]
    return {**{key: info[key] for key in kept}, **{f"_{key}": masks[key] for key in kept}}


class MuJoCoVectorEnv(VectorEnv):
    """``num_envs`` sub-envs of one MuJoCo task distribution stepped together in C, equal to the single env.

    How it works: the physics state of each sub-env (``mjSTATE_FULLPHYSICS``) is a row of ``[N, nstate]``.
    A step writes the actions as controls and advances all rows by one env step (``frame_skip`` physics
    steps) with a persistent ``mujoco.rollout.Rollout`` pool (``num_threads`` threads, chunks of ``N /
    num_threads`` rows, ``skip_checks``: shapes are fixed at construction). This module's pure numpy
    functions then compute observations, rewards, terminations and ``info`` for all rows at once. The model
    and definitions (``frame_skip``, ``dt``, initial state, noise scale, reward weights, healthy range, task
    type and ranges) are read from one single env of the id, built here.

    Ant needs quantities ``mujoco.rollout`` does not return: the contact forces ``cfrc_ext`` (observation,
    contact cost) and the torso's ``xpos`` (``v_x``). The single env reads both after ``mj_step`` and
    ``mj_rnePostConstraint``; Ant integrates with RK4, so they come from the last RK4 stage of the last
    physics step, which neither sensors (evaluated at the step's start) nor ``mj_forward`` on a returned
    state reproduce (measured: off by up to 0.05 in ``xpos`` and 350 in ``cfrc_ext``). So for Ant the rollout
    runs ``frame_skip - 1`` physics steps, and the last one is taken per sub-env with ``mj_step`` and
    ``mj_rnePostConstraint`` on a scratch ``MjData`` per thread, on a thread pool (``mj_step`` releases the
    GIL): the single env's own computation, no physics repeated, about 7 us of Python per sub-env and step.

    Solver warm-start: ``mujoco.rollout`` neither takes nor returns each row's warm-start, so with it on,
    trajectories drift from plain stepping. The task models disable it (``mjDSBL_WARMSTART``), the single
    envs and this one alike, so a step depends only on the state and action and the results are exact
    (tested to 1e-9; observed equal to 2e-16). The alternative, a thread pool stepping a persistent ``MjData``
    per sub-env, is exact with warm-start on but was slower (``../shared/REFERENCE.md``, section 5).

    Unstable simulations: a sub-env whose simulation MuJoCo had to reset during a step (NaN, inf or huge
    state or acceleration) or whose state, observation or reward is not finite (:func:`unstable_rows`) ends
    its episode there as terminated, with reward 0 for that step, ``info["unstable"]`` true in its row, and
    a reset as usual; the collector counts these (``collector/unstable_resets``).

    Autoreset mode ``SAME_STEP`` (the default): a sub-env that terminates or reaches ``max_episode_steps``
    (truncation, as ``TimeLimit``; both can be true) is reset within the step that ended it, its last
    observation in ``info["final_obs"]`` (NaN rows for the others) and its step info in
    ``info["final_info"]``. ``info`` is laid out as ``SyncVectorEnv``'s: entries ``key: [N]`` with masks
    ``_key``, and a reset sub-env's row holds its reset info (positions, task) with its reward terms masked
    out. A reset draws the initial state as the single env's ``reset_model`` does, from a generator per
    sub-env seeded as ``SyncVectorEnv`` seeds sub-env ``i`` (``seed + i``). Tasks are set per sub-env with
    ``set_attr("task", list)``.

    Autoreset mode ``DISABLED`` (what the collector asks for): a sub-env that terminates or truncates is
    *finished* and stays so until ``reset`` (all sub-envs, or those of ``options["reset_mask"]``). Later steps
    do not simulate it: its row keeps its last observation, gets reward 0, ``terminated`` and ``truncated``
    false and no ``info`` entries. A batch of episodes therefore costs only the steps of the episodes
    themselves; an untrained Ant falls early, and most of the physics ``SAME_STEP`` spends on episodes
    begun after a reset, which a collector throws away, is skipped.

    Args:
        env_class: The single env class, e.g. :class:`~envs.mujoco.ant.AntVelEnv`.
        num_envs: The number of sub-envs ``N``.
        max_episode_steps: The time limit.
        num_threads: Threads that step the physics (default: one per core available to this process).
        autoreset_mode: ``SAME_STEP`` or ``DISABLED`` (an :class:`AutoresetMode` or its value).
        **env_kwargs: Passed to ``env_class`` (the registered ids pass ``frame_skip``).
    """

    metadata: dict[str, Any] = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": []}

    def __init__(
        self,
        env_class: type,
        num_envs: int,
        max_episode_steps: int,
        num_threads: int | None = None,
        autoreset_mode: AutoresetMode | str = AutoresetMode.SAME_STEP,
        **env_kwargs: Any,
    ) -> None:
        for name, value in (("num_envs", num_envs), ("max_episode_steps", max_episode_steps)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        modes = (AutoresetMode.SAME_STEP, AutoresetMode.DISABLED)
        if autoreset_mode not in modes and autoreset_mode not in [m.value for m in modes]:
            raise ValueError(
                f"autoreset_mode must be one of {[m.value for m in modes]}, got {autoreset_mode!r}"
            )
        self._disabled = AutoresetMode(autoreset_mode) == AutoresetMode.DISABLED
        # frozen_when_finished: in DISABLED mode, stepping a finished sub-env is allowed and changes nothing
        self.metadata = {
            **type(self).metadata,
            "autoreset_mode": AutoresetMode(autoreset_mode),
            "frozen_when_finished": True,
        }
        threads = len(os.sched_getaffinity(0)) if num_threads is None else num_threads
        if not isinstance(threads, int) or threads < 1:
            raise ValueError(f"num_threads must be a positive integer or None, got {num_threads!r}")
        self._env = env = env_class(**env_kwargs)  # the model (warm-start disabled) and the definitions
        self._def = d = read_definition(env)
        self.num_envs, self.max_episode_steps, self.num_threads = num_envs, max_episode_steps, threads
        self.single_observation_space, self.single_action_space = env.observation_space, env.action_space
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self._model = model = self._env.model
        self._substeps = d.frame_skip - 1 if d.is_ant else d.frame_skip  # Ant takes its last one here
        nstate = mujoco.mj_stateSize(model, STATE)
        self._qpos = slice(1, 1 + model.nq)  # a state row starts with the time
        self._qvel = slice(1 + model.nq, 1 + model.nq + model.nv)
        self._state = np.zeros((num_envs, nstate))
        self._substates = np.zeros((num_envs, self._substeps, nstate))
        self._controls = np.zeros((num_envs, self._substeps, model.nu))
        self._xy = np.zeros((num_envs, 2))  # Ant: the torso's x, y as the single env's data holds them
        self._cfrc = np.zeros((num_envs, model.nbody, 6))
        self._scratch = [mujoco.MjData(model) for _ in range(threads)]
        self._body = self._scratch[0].body(d.main_body).id
        self._pool = mujoco.rollout.Rollout(nthread=threads if threads > 1 else 0)
        self._models = [model] * num_envs
        self._executor = ThreadPoolExecutor(threads) if d.is_ant and threads > 1 else None
        self._rngs: list[np.random.Generator | None] = [None] * num_envs
        self._elapsed = np.zeros(num_envs, dtype=np.int64)
        self._finished = np.zeros(num_envs, dtype=bool)  # DISABLED mode: ended, not stepped until a reset
        self._needs_reset = True
        self.set_attr("task", self._env.task)

    def reset(
        self, *, seed: int | Sequence[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset every sub-env; ``seed`` as in ``SyncVectorEnv`` (an int: ``seed + i`` for sub-env ``i``).

        In ``DISABLED`` mode, ``options["reset_mask"]`` (``[N]`` bool) resets only those sub-envs; the
        others keep their state, and the returned info covers the reset ones.

        Raises:
            ValueError: A seed list of the wrong length, or ``options["reset_mask"]`` in ``SAME_STEP`` mode
                or of the wrong shape.
        """
        if isinstance(seed, int | np.integer):
            super().reset(seed=int(seed))
            seed = [int(seed) + i for i in range(self.num_envs)]
        seeds = [None] * self.num_envs if seed is None else list(seed)
        if len(seeds) != self.num_envs:
            raise ValueError(f"seed must be an int, None or {self.num_envs} seeds, got {len(seeds)}")
        reset = np.ones(self.num_envs, dtype=bool)
        if options and "reset_mask" in options:
            if not self._disabled:
                raise ValueError(
                    f"{type(self).__name__}.reset takes options['reset_mask'] in DISABLED mode only"
                )
            reset = np.asarray(options["reset_mask"])
            if reset.dtype != bool or reset.shape != (self.num_envs,):
                raise ValueError(f"options['reset_mask'] must be a bool array of shape ({self.num_envs},)")
            if self._needs_reset and not reset.all():
                raise gym.error.ResetNeeded("the first reset must reset every sub-env")
        for i, sub_seed in enumerate(seeds):
            if reset[i] and (sub_seed is not None or self._rngs[i] is None):
                self._rngs[i] = seeding.np_random(sub_seed)[0]
        self._reset_rows(np.flatnonzero(reset))
        self._finished &= ~reset
        self._needs_reset = False
        info = {**position_info(self._def, self._state[:, self._qpos]), "task": self._task_objects}
        return self._observe(), masked_info(info, dict.fromkeys(info, reset))

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]:
        """Advance every sub-env (in ``DISABLED`` mode, every unfinished one) by one env step.

        One env step is ``frame_skip`` physics steps.

        Args:
            actions: ``[N, act_dim]`` joint torques; MuJoCo clamps them to ``[-1, 1]`` and the control cost
                uses them as given, in their dtype (as the single env).

        Returns:
            observations ``[N, obs_dim]``, rewards, terminations, truncations ``[N]`` and info.
        """
        if self._needs_reset:
            raise gym.error.ResetNeeded("call reset() before step()")
        actions = np.asarray(actions)
        if actions.shape != self.action_space.shape:
            raise ValueError(f"actions must have shape {self.action_space.shape}, got {actions.shape}")
        d = self._def
        active = ~self._finished
        rows = np.flatnonzero(active)
        self._controls[:] = actions[:, None, :]
        x_before, xy_before = self._state[:, 1].copy(), self._xy.copy()
        x_before_time = self._state[:, 0].copy()
        self._simulate(rows)
        qpos, qvel = self._state[:, self._qpos], self._state[:, self._qvel]
        if d.is_ant:
            xy_velocity = (self._xy - xy_before) / d.dt
            outputs = ant_rewards(d, xy_velocity, qpos, qvel, self._cfrc, actions, self._tasks)
        else:
            outputs = half_cheetah_rewards(d, x_before, qpos, actions, self._tasks)
        rewards, terminated, terms = outputs
        step_info = {**position_info(d, qpos), **terms, "task": self._task_objects}
        observations = self._observe()
        unstable = unstable_rows(self._state, x_before_time, d.dt, observations, rewards) & active
        if unstable.any():  # see the class docstring: ended, reset, reported; never fed to the learner
            terminated = terminated | unstable
            rewards = np.where(unstable, 0.0, rewards)
        self._elapsed[rows] += 1
        truncated = self._elapsed >= self.max_episode_steps
        terminated, truncated = terminated & active, truncated & active
        rewards = np.where(active, rewards, 0.0)
        done = terminated | truncated
        if self._disabled:  # finished rows stay as they are until reset() (class docstring)
            self._finished |= done
            masks = dict.fromkeys(step_info, active)
            extra: dict[str, Any] = {}
        else:
            masks = {key: np.ones_like(done) if key in RESET_INFO_KEYS else ~done for key in step_info}
            extra = {}
            if done.any():
                final_info = masked_info(step_info, dict.fromkeys(step_info, done))
                extra = {"final_obs": np.where(done[:, None], observations, np.nan), "final_info": final_info}
                extra.update(_final_obs=done, _final_info=done)
                self._reset_rows(np.flatnonzero(done))
                observations = self._observe()
                step_info.update(position_info(d, self._state[:, self._qpos]))  # unchanged where not done
        if unstable.any():
            extra.update(unstable=unstable, _unstable=np.ones_like(unstable))
        return observations, rewards, terminated, truncated, {**masked_info(step_info, masks), **extra}

    def _simulate(self, rows: np.ndarray) -> None:
        """Advance the sub-envs ``rows`` by one env step in place (all of them: no copies)."""
        k = len(rows)
        if k == 0:
            return
        everything = k == self.num_envs
        state = self._state if everything else self._state[rows]
        controls = self._controls if everything else self._controls[rows]
        substates = self._substates[:k]
        chunk = -(-k // self.num_threads)
        self._pool.rollout(
            self._models[:k], self._scratch, state, controls, nstep=self._substeps,
            state=substates, skip_checks=True, chunk_size=chunk,
        )  # fmt: skip
        if self._def.is_ant:
            self._take_last_substep(rows, chunk)
        else:
            self._state[rows] = substates[:, -1]

    def get_attr(self, name: str) -> tuple[Any, ...]:
        """Read ``task`` (one per sub-env); other names are not stored per sub-env."""
        if name != "task":
            raise AttributeError(f"{type(self).__name__} has no per-sub-env attribute {name!r}; only 'task'")
        return self._task_list

    def set_attr(self, name: str, values: list[Any] | tuple[Any, ...] | Any) -> None:
        """Set ``task``, one value per sub-env or one for all, checked as the single env checks it.

        Raises:
            AttributeError: ``name`` is not ``"task"``.
            ValueError: A list of the wrong length, or a task field that is not finite.
            TypeError: A value is not of the env's task type.
        """
        if name != "task":
            raise AttributeError(f"{type(self).__name__} has no per-sub-env attribute {name!r}; only 'task'")
        values = list(values) if isinstance(values, list | tuple) else [values] * self.num_envs
        if len(values) != self.num_envs:
            raise ValueError(f"set_attr('task') needs {self.num_envs} values, got {len(values)}")
        tasks = tuple(check_task(task, self._env.task_type) for task in values)
        self._task_list, self._tasks = tasks, task_array(tasks)
        self._task_objects = np.empty(self.num_envs, dtype=object)
        self._task_objects[:] = tasks

    def close_extras(self, **kwargs: Any) -> None:
        """Stop the thread pools and close the single env."""
        self._pool.close()
        if self._executor is not None:
            self._executor.shutdown()
        self._env.close()

    def _observe(self) -> np.ndarray:
        return observe(self._def, self._state[:, self._qpos], self._state[:, self._qvel], self._cfrc)

    def _take_last_substep(self, rows: np.ndarray, chunk: int) -> None:
        # The single env's last physics step and mj_rnePostConstraint, per sub-env (see the class docstring);
        # row j of the rollout's output is sub-env rows[j].
        chunks = [
            (lo, min(lo + chunk, len(rows)), self._scratch[t])
            for t, lo in enumerate(range(0, len(rows), chunk))
        ]
        if self._executor is None or len(chunks) == 1:
            for lo, hi, data in chunks:
                self._step_rows(rows, lo, hi, data)
        else:
            list(self._executor.map(lambda c: self._step_rows(rows, *c), chunks))

    def _step_rows(self, rows: np.ndarray, lo: int, hi: int, data: mujoco.MjData) -> None:
        for j in range(lo, hi):
            i = rows[j]
            mujoco.mj_setState(self._model, data, self._substates[j, -1], STATE)
            data.ctrl[:] = self._controls[i, 0]
            mujoco.mj_step(self._model, data)
            mujoco.mj_rnePostConstraint(self._model, data)
            mujoco.mj_getState(self._model, data, self._state[i], STATE)
            self._xy[i], self._cfrc[i] = data.xpos[self._body, :2], data.cfrc_ext

    def _reset_rows(self, rows: np.ndarray) -> None:
        # As MujocoEnv.reset: mj_resetData, reset_model's draws in its order, set_state's mj_forward.
        d, data, scale = self._def, self._scratch[0], self._def.reset_noise_scale
        for i in rows:
            qpos = d.init_qpos + self._rngs[i].uniform(low=-scale, high=scale, size=len(d.init_qpos))
            qvel = d.init_qvel + scale * self._rngs[i].standard_normal(len(d.init_qvel))
            mujoco.mj_resetData(self._model, data)
            data.qpos[:], data.qvel[:] = qpos, qvel
            mujoco.mj_forward(self._model, data)
            mujoco.mj_getState(self._model, data, self._state[i], STATE)
            self._xy[i], self._cfrc[i] = data.xpos[self._body, :2], data.cfrc_ext
        self._elapsed[rows] = 0


#: Vector entry points, one per task: ``make_*(num_envs, max_episode_steps, num_threads=None, **env_kwargs)``.
make_half_cheetah_vel = functools.partial(MuJoCoVectorEnv, HalfCheetahVelEnv)
make_half_cheetah_dir = functools.partial(MuJoCoVectorEnv, HalfCheetahDirEnv)
make_ant_vel = functools.partial(MuJoCoVectorEnv, AntVelEnv)
make_ant_dir = functools.partial(MuJoCoVectorEnv, AntDirEnv)
make_ant_goal = functools.partial(MuJoCoVectorEnv, AntGoalEnv)
