"""Fast vector envs for the MuJoCo task distributions: physics in C (``mujoco.rollout``), the rest in numpy.

Each MuJoCo id's ``vector_entry_point`` is one of the ``make_*`` factories at the end, which build a
:class:`MuJoCoVectorEnv`. What differs between HalfCheetah and Ant (observation, ``info``, rewards) is in
``robots.py``; the reward terms are the functions of ``rewards.py`` that the single envs call too.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import gymnasium as gym
import mujoco
import mujoco.rollout
import numpy as np
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from .ant import AntDirEnv, AntGoalEnv, AntVelEnv
from .common import check_task, task_fields
from .half_cheetah import HalfCheetahDirEnv, HalfCheetahVelEnv
from .robots import Physics, batched_robot, check_env_class

STATE = mujoco.mjtState.mjSTATE_FULLPHYSICS
#: The ``info`` entries a reset sub-env's row keeps (Gymnasium v5's reset info, plus the task).
RESET_INFO_KEYS = ("x_position", "y_position", "distance_from_origin", "task")


def task_array(tasks: Sequence[Any]) -> np.ndarray:
    """The fields of task dataclasses in declaration order, ``[N, F]`` float64."""
    return np.array([task_fields(t) for t in tasks], dtype=float)


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
    num_threads`` rows, ``skip_checks``: shapes are fixed at construction). The robot's
    :class:`~envs.mujoco.robots.BatchedRobot`, picked once, then computes observations, rewards,
    terminations and ``info`` for all rows at once, with the single envs' reward functions. The model and
    definitions are read from one single env of the id, built here, through public attributes only:
    ``frame_skip``, ``dt``, the initial state, and the class's ``parameters`` (reward weights, noise scale,
    healthy range), ``task_terms`` and ``task_type``.

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
    (tested equal bit for bit, but ``distance_from_origin``: 1 ulp, a norm numpy computes per row). The
    alternative, a thread pool stepping a persistent ``MjData`` per sub-env, is exact with warm-start on but
    was slower (``../shared/REFERENCE.md``, section 5).

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
        **env_kwargs: Passed to ``env_class`` (the registered ids pass ``frame_skip``, and ``-v2`` ids
            ``original_model``).

    Attributes:
        dt: Seconds per env step, the single env's ``dt``.

    Raises:
        ValueError: ``env_class`` is not a HalfCheetah or Ant task env, or a count or the autoreset mode is
            not valid.
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
        check_env_class(env_class)
        for name, value in (("num_envs", num_envs), ("max_episode_steps", max_episode_steps)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
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
        if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
            raise ValueError(f"num_threads must be a positive integer or None, got {num_threads!r}")
        self._env = env = env_class(**env_kwargs)  # the model (warm-start disabled) and the definitions
        self._robot = robot = batched_robot(env)
        self.dt: float = env.dt
        self._init_qpos, self._init_qvel = env.init_qpos.copy(), env.init_qvel.copy()
        self.num_envs, self.max_episode_steps, self.num_threads = num_envs, max_episode_steps, threads
        self.single_observation_space, self.single_action_space = env.observation_space, env.action_space
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self._model = model = self._env.model
        # a robot that needs_last_substep (Ant) has its last physics step taken here, not by the rollout
        self._substeps = env.frame_skip - 1 if robot.needs_last_substep else env.frame_skip
        nstate = mujoco.mj_stateSize(model, STATE)
        self._qpos = slice(1, 1 + model.nq)  # a state row starts with the time
        self._qvel = slice(1 + model.nq, 1 + model.nq + model.nv)
        self._state = np.zeros((num_envs, nstate))
        self._substates = np.zeros((num_envs, self._substeps, nstate))
        # the actions, one row per rollout substep (at least one: the last substep reads row 0)
        self._controls = np.zeros((num_envs, max(self._substeps, 1), model.nu))
        self._xy = np.zeros((num_envs, 2))  # the main body's x, y as the single env's data holds them
        self._cfrc = np.zeros((num_envs, model.nbody, 6))
        self._xmat = np.zeros((num_envs, 9))  # the main body's orientation and subtree centre of mass
        self._com = np.zeros((num_envs, 3))
        self._needs_frame = robot.needs_body_frame  # read once, not per sub-env and step
        self._scratch = [mujoco.MjData(model) for _ in range(threads)]
        self._body = self._scratch[0].body(robot.main_body).id
        self._pool = mujoco.rollout.Rollout(nthread=threads if threads > 1 else 0)
        self._models = [model] * num_envs
        self._executor = ThreadPoolExecutor(threads) if robot.needs_last_substep and threads > 1 else None
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
        info = {**self._robot.position_info(self._physics().qpos), "task": self._task_objects}
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
        robot = self._robot
        active = ~self._finished
        rows = np.flatnonzero(active)
        self._controls[:] = actions[:, None, :]
        position_before = robot.position(self._physics()).copy()
        time_before = self._state[:, 0].copy()
        self._simulate(rows)
        after = self._physics()
        rewards, terminated, terms = robot.outputs(position_before, after, actions, self._tasks)
        step_info = {**robot.position_info(after.qpos), **terms, "task": self._task_objects}
        observations = robot.observe(after)
        unstable = unstable_rows(self._state, time_before, self.dt, observations, rewards) & active
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
                step_info.update(robot.position_info(after.qpos))  # unchanged where not done
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
        if self._substeps:  # none when an Ant takes one physics step per action (-v5): the last is all
            self._pool.rollout(
                self._models[:k], self._scratch, state, controls[:, : self._substeps], nstep=self._substeps,
                state=substates, skip_checks=True, chunk_size=chunk,
            )  # fmt: skip
        if self._robot.needs_last_substep:
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

    def _physics(self) -> Physics:
        # Views into the state rows and the arrays the last substep and resets fill in.
        qpos, qvel = self._state[:, self._qpos], self._state[:, self._qvel]
        return Physics(qpos, qvel, self._xy, self._cfrc, self._xmat, self._com)

    def _observe(self) -> np.ndarray:
        return self._robot.observe(self._physics())

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
            start = self._substates[j, -1] if self._substeps else self._state[i]
            mujoco.mj_setState(self._model, data, start, STATE)
            data.ctrl[:] = self._controls[i, 0]
            mujoco.mj_step(self._model, data)
            mujoco.mj_rnePostConstraint(self._model, data)
            mujoco.mj_getState(self._model, data, self._state[i], STATE)
            self._keep_body_data(i, data)

    def _keep_body_data(self, i: int, data: mujoco.MjData) -> None:
        # What the robot reads of the single env's data besides the state, for sub-env i.
        self._xy[i], self._cfrc[i] = data.xpos[self._body, :2], data.cfrc_ext
        if self._needs_frame:
            self._xmat[i], self._com[i] = data.xmat[self._body], data.subtree_com[self._body]

    def _reset_rows(self, rows: np.ndarray) -> None:
        # As MujocoEnv.reset: mj_resetData, reset_model's draws in its order, set_state's mj_forward.
        data = self._scratch[0]
        for i in rows:
            rng = self._rngs[i]
            assert rng is not None  # reset() gives every sub-env it resets a generator first
            qpos, qvel = self._robot.initial_state(rng, self._init_qpos, self._init_qvel)
            mujoco.mj_resetData(self._model, data)
            data.qpos[:], data.qvel[:] = qpos, qvel
            mujoco.mj_forward(self._model, data)
            mujoco.mj_getState(self._model, data, self._state[i], STATE)
            self._keep_body_data(i, data)
        self._elapsed[rows] = 0


#: Vector entry points, one per task: ``make_*(num_envs, max_episode_steps, num_threads=None, **env_kwargs)``.
make_half_cheetah_vel = functools.partial(MuJoCoVectorEnv, HalfCheetahVelEnv)
make_half_cheetah_dir = functools.partial(MuJoCoVectorEnv, HalfCheetahDirEnv)
make_ant_vel = functools.partial(MuJoCoVectorEnv, AntVelEnv)
make_ant_dir = functools.partial(MuJoCoVectorEnv, AntDirEnv)
make_ant_goal = functools.partial(MuJoCoVectorEnv, AntGoalEnv)
