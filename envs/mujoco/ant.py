"""Ant task distributions of MAML (Finn et al., 2017, arXiv:1703.03400, section 5.3).

The three tasks are velocity, direction and goal position.

All three envs are Gymnasium's ``Ant-v5`` with the original code's cost weights and survive reward and a
task-dependent reward term. See :class:`AntTaskEnv` for what they share and how they differ from Gymnasium and
from cbfinn/maml_rl.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np
from gymnasium.envs.mujoco.ant_v5 import AntEnv
from gymnasium.envs.mujoco.mujoco_env import DEFAULT_SIZE
from gymnasium.spaces import Box

from ..tasks import DirectionTask, GoalTask, VelocityTask
from .common import TaskEnvMixin, check_frame_skip, check_num_tasks, disable_warmstart, task_fields
from .rewards import (
    ant_reward_terms,
    direction_terms,
    goal_terms,
    is_healthy,
    offset_velocity_terms,
    original_ant_observation,
    original_initial_state,
)

#: 0.5 * 1e-2 in the original code (actions are not rescaled: the control range is [-1, 1]).
CTRL_COST_WEIGHT = 0.005
#: 0.5 * 1e-3 in the original code; the same as Gymnasium v5's default.
CONTACT_COST_WEIGHT = 5e-4
SURVIVE_REWARD = 0.05
#: The original model's contact softness (rllab's ``ant.xml`` default geom class, on every geom and the
#: floor): ``solimp`` 0.8 0.8 0.01, where MuJoCo's default and Gymnasium's model have 0.9 0.95 0.001.
ORIGINAL_SOLIMP = (0.8, 0.8, 0.01)
#: The original model's initial pose (rllab's ``init_qpos``): torso at z 0.55, upright, hips at 0 and ankles
#: at +-1 rad, inside their limits (Gymnasium's pose: z 0.75 and every joint at 0, outside the ankles' limits
#: of 30-70 degrees, so each episode starts with the limits snapping the legs into range). Order: the free
#: joint (x, y, z, quaternion) then hip and ankle of legs 1-4.
ORIGINAL_INIT_QPOS = (0.0, 0.0, 0.55, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, -1.0, 0.0, -1.0, 0.0, 1.0)
#: The original start state's position noise (rllab's ``reset_mujoco``: ``init_qpos + 0.01 * N(0, 1)``, where
#: Gymnasium draws ``U(-0.1, 0.1)``; the velocity noise ``0.1 * N(0, 1)`` is the same in both).
ORIGINAL_QPOS_NOISE = 0.01
#: The original model's physics timestep (rllab's ``ant.xml``: ``timestep="0.02"``, RK4, no ``frame_skip``
#: entry, so one RK4 step of 0.02 s per action); Gymnasium's model steps 0.01 s.
ORIGINAL_TIMESTEP = 0.02


@dataclasses.dataclass(frozen=True)
class AntParameters:
    """The arguments these envs give Gymnasium's ``AntEnv``; the fast vector env reads them here.

    Gymnasium's defaults, but for the three weights. The envs also pass ``terminate_when_unhealthy`` and
    ``include_cfrc_ext_in_observation`` as true, which the fast vector env assumes.

    Args:
        ctrl_cost_weight: The weight of ``|a|^2`` in the control cost.
        contact_cost_weight: The weight of the sum of squared clipped contact forces.
        healthy_reward: The survive reward per healthy step.
        healthy_z_range: The torso heights (``qpos[2]``) that count as healthy.
        contact_force_range: The range the contact forces are clipped to (observation and contact cost).
        reset_noise_scale: The scale of the initial state's noise.
        main_body: The body whose position gives ``v_x`` (the torso).
    """

    ctrl_cost_weight: float = CTRL_COST_WEIGHT
    contact_cost_weight: float = CONTACT_COST_WEIGHT
    healthy_reward: float = SURVIVE_REWARD
    healthy_z_range: tuple[float, float] = (0.2, 1.0)
    contact_force_range: tuple[float, float] = (-1.0, 1.0)
    reset_noise_scale: float = 0.1
    main_body: int = 1


class AntTaskEnv(TaskEnvMixin, AntEnv):
    """Gymnasium's Ant-v5 with a settable task; subclasses set the tasks and ``task_terms``.

    - Reward: ``task term + 0.05 (survive) - 0.005 * |a|^2 - 5e-4 * sum(clip(cfrc_ext, -1, 1)^2)``.
      ``info`` holds the task term (``reward_forward`` or ``reward_goal``), ``reward_survive``,
      ``reward_ctrl`` and ``reward_contact`` (the reward is the sum of the ``reward_*`` entries), Gymnasium's
      ``x_position``, ``y_position``, ``distance_from_origin``, ``x_velocity``, ``y_velocity``, and ``task``.
    - ``v_x`` is Gymnasium's ``x_velocity``: the displacement of the torso's position along x over the step,
      divided by ``dt = timestep * frame_skip`` s (model timestep 0.01 s, RK4; ``-v5``: 0.02 s).
    - Control rate: ``frame_skip`` physics steps per env step; 5 in ``-v0`` ids (Gymnasium's, ``dt`` 0.05 s),
      2 in ``-v1`` ids (``dt`` 0.02 s, the original code's: rllab's ``ant.xml`` has timestep 0.02 and no
      ``frame_skip`` entry, so one RK4 step of 0.02 s per action).
    - Observation: Gymnasium v5's default, ``qpos[2:]``, ``qvel`` and the clipped external contact forces of
      the 13 bodies, shape ``(105,)`` (:class:`AntGoalEnv` adds ``qpos[:2]``). With
      ``original_observation`` (``-v3`` ids) the original code's ``(125,)``: the full ``qpos``, ``qvel``, the
      clipped contact forces of all 14 bodies (the world's are zero), the torso's orientation matrix and the
      centre of mass of the torso's subtree (the whole robot), as rllab's ``ant_env.py`` built it
      (:func:`~envs.mujoco.rewards.original_ant_observation`).
    - Action: 8 joint torques in ``[-1, 1]``. Initial state: Gymnasium's pose (``-v2``, ``-v4``: the
      original's) with Gymnasium's noise (scale 0.1; ``-v4``: the original's, :data:`ORIGINAL_QPOS_NOISE`).
    - Termination: when the state is not finite or the torso's z leaves ``[0.2, 1.0]``. Horizon: 200 steps
      (set at registration).

    Differences from Gymnasium's Ant-v5: the task term replaces ``v_x``; control cost weight 0.005 (v5: 0.5);
    survive reward 0.05 (v5: 1.0); with ``original_model`` (``-v2`` ids), the original contact softness and
    initial pose (:data:`ORIGINAL_SOLIMP`, :data:`ORIGINAL_INIT_QPOS`); the constraint solver's warm-start
    is disabled (``mjDSBL_WARMSTART``) so that a step depends on the state and action alone and a batched
    stepper can reproduce this env exactly; trajectories differ slightly from v5's.

    Differences from the original code (cbfinn/maml_rl, on rllab): Gymnasium's model (``-v2`` ids take the
    original's contact softness and initial pose; the geometry, masses, joints and motors are the same) and
    initial state noise, the control rate in ``-v0`` ids (``-v1`` to ``-v4`` ids match its ``dt`` with two
    RK4 steps of 0.01 s, ``-v5`` ids with its one RK4 step of 0.02 s); ``v_x`` is the finite-difference
    torso velocity, where the original read the
    centre-of-mass velocity of the torso's subtree (the whole robot); the
    survive reward is not paid on the terminating step (v5 pays it only while healthy); the original
    observation also held the full ``qpos``, the torso's orientation matrix and the robot's centre of mass
    (``-v3`` ids observe as the original did).

    Args:
        task: The initial task (default: the subclass's ``default_task``); checked like :meth:`set_task`.
        render_mode: Gymnasium's MuJoCo render mode (``"human"``, ``"rgb_array"``, ...) or ``None``.
        width: Width of rendered frames in pixels.
        height: Height of rendered frames in pixels.
        camera_name: The model camera that renders frames; the default ``"track"`` follows the robot (with
            ``None``, Gymnasium's free camera stays put and the robot runs out of the picture).
        frame_skip: Physics steps per env step (registered ids: 5 in ``-v0``, 2 in ``-v1`` to ``-v3``).
        original_model: Use the original model's contact softness and initial pose (``-v2`` ids).
        original_observation: Observe as the original code did, ``(125,)`` (``-v3`` ids).
        original_start_noise: Draw the start position as the original code did,
            ``init_qpos + 0.01 * N(0, 1)`` (``-v4`` ids, with ``original_model``).
        original_timestep: Step the physics as the original model did, one RK4 step of 0.02 s
            (:data:`ORIGINAL_TIMESTEP`), where Gymnasium's model takes 0.01 s steps (``-v5`` ids, with
            ``frame_skip`` 1: the same ``dt``, half the physics steps).
    """

    parameters: ClassVar[AntParameters] = AntParameters()
    #: Whether the torso's x, y (``qpos[:2]``) are at the start of the observation.
    observe_position: ClassVar[bool] = False
    pickled_arguments = (
        *TaskEnvMixin.pickled_arguments,
        "original_model",
        "original_observation",
        "original_start_noise",
        "original_timestep",
    )

    def __init__(
        self,
        task: Any | None = None,
        render_mode: str | None = None,
        width: int = DEFAULT_SIZE,
        height: int = DEFAULT_SIZE,
        camera_name: str | None = "track",
        frame_skip: int = 5,
        original_model: bool = False,
        original_observation: bool = False,
        original_start_noise: bool = False,
        original_timestep: bool = False,
    ) -> None:
        self.task = self.default_task if task is None else task
        check_frame_skip(frame_skip)
        self.original_model, self.original_observation = original_model, original_observation
        self.original_start_noise, self.original_timestep = original_start_noise, original_timestep
        p = self.parameters
        super().__init__(
            frame_skip=frame_skip,
            ctrl_cost_weight=p.ctrl_cost_weight,
            contact_cost_weight=p.contact_cost_weight,
            healthy_reward=p.healthy_reward,
            main_body=p.main_body,
            terminate_when_unhealthy=True,
            healthy_z_range=p.healthy_z_range,
            contact_force_range=p.contact_force_range,
            reset_noise_scale=p.reset_noise_scale,
            exclude_current_positions_from_observation=not self.observe_position,
            include_cfrc_ext_in_observation=True,
            render_mode=render_mode,
            width=width,
            height=height,
            camera_name=camera_name,
        )
        disable_warmstart(self.model)
        if original_timestep:
            self.model.opt.timestep = ORIGINAL_TIMESTEP
            self.metadata = {**self.metadata, "render_fps": int(np.round(1.0 / self.dt))}
        if original_model:
            self.model.geom_solimp[:, :3] = ORIGINAL_SOLIMP
            self.init_qpos = np.array(ORIGINAL_INIT_QPOS, dtype=np.float64)
        if original_observation:
            size = len(self._get_obs())
            self.observation_space = Box(low=-np.inf, high=np.inf, shape=(size,), dtype=np.float64)
            self.observation_structure = {}  # Gymnasium's describes its own layout, not this one

    def reset_model(self) -> np.ndarray:
        """Gymnasium's start state, or with ``original_start_noise`` the original code's (same draw order)."""
        if not self.original_start_noise:
            return super().reset_model()
        qpos, qvel = original_initial_state(
            self.np_random,
            self.init_qpos,
            self.init_qvel,
            ORIGINAL_QPOS_NOISE,
            self.parameters.reset_noise_scale,
        )
        self.set_state(qpos, qvel)
        return self._get_obs()

    def _get_obs(self) -> np.ndarray:
        if not self.original_observation:
            return super()._get_obs()
        torso = self.parameters.main_body
        return original_ant_observation(
            self.data.qpos, self.data.qvel, self.contact_forces, self.data.body(torso).xmat,
            self.data.body(torso).subtree_com,
        )  # fmt: skip

    @property
    def is_healthy(self) -> np.bool_:
        """Whether the state is finite and the torso's z in the healthy range (Gymnasium's termination)."""
        return is_healthy(self.data.qpos, self.data.qvel, self.parameters.healthy_z_range)

    def _get_rew(self, x_velocity: float, action: np.ndarray) -> tuple[float, dict[str, float]]:
        # Gymnasium v5's reward hook, called by its step() after the simulation.
        p = self.parameters
        terms = ant_reward_terms(
            self.task_terms(x_velocity, self.data.qpos, *task_fields(self.task)),
            self.is_healthy,
            action,
            self.contact_forces,
            healthy_reward=p.healthy_reward,
            ctrl_cost_weight=p.ctrl_cost_weight,
            contact_cost_weight=p.contact_cost_weight,
        )
        return sum(terms.values()), terms


class AntVelEnv(AntTaskEnv):
    """Ant running along x at a target velocity.

    - Task distribution: ``velocity ~ U[0, 3]`` m/s (:class:`~envs.tasks.VelocityTask`); default 1.0.
    - Reward: ``-|v_x - velocity| + 1.0 + 0.05 - ctrl - contact``;
      ``reward_forward = -|v_x - velocity| + 1.0`` (the original code's forward term, constant included).
    - Observation ``(105,)``, termination and horizon 200: see :class:`AntTaskEnv`, which also lists the
      differences from Gymnasium v5 and from cbfinn/maml_rl (``ant_env_rand``).

    Version history:
        v0: the original code's task and reward on Gymnasium's Ant-v5, solver warm-start disabled.
        v1: as v0 with the original code's control rate: frame_skip 2 (``dt`` 0.02 s).
        v2: as v1 with the original model's contact softness and initial pose (``original_model``).
        v3: as v1 with the original code's observation, ``(125,)`` (``original_observation``).
        v4: as v2 with the original start position noise: the original start state entire
            (``original_start_noise``).
        v5: as v1 with the original integration, one RK4 step of 0.02 s per action (``original_timestep``).
        v6: the original physics and start state entire: v4 with v5's integration.
    """

    task_type = VelocityTask
    default_task = VelocityTask(1.0)
    task_ranges = {"velocity": (0.0, 3.0)}
    task_terms = staticmethod(offset_velocity_terms)

    def sample_tasks(self, n: int, rng: np.random.Generator) -> list[VelocityTask]:
        """Draw ``n`` target velocities uniformly from ``[0, 3]`` with ``rng`` alone."""
        check_num_tasks(n)
        return [VelocityTask(float(v)) for v in rng.uniform(0.0, 3.0, size=n)]


class AntDirEnv(AntTaskEnv):
    """Ant running forward or backward along x.

    - Task distribution: ``direction`` is -1 or +1 with equal probability
      (:class:`~envs.tasks.DirectionTask`); default +1. :meth:`set_task` accepts any finite direction.
    - Reward: ``direction * v_x + 0.05 - ctrl - contact``; ``reward_forward = direction * v_x``.
    - Observation ``(105,)``, termination and horizon 200: see :class:`AntTaskEnv`, which also lists the
      differences from Gymnasium v5 and from cbfinn/maml_rl (``ant_env_rand_direc``).

    Version history:
        v0: the original code's task and reward on Gymnasium's Ant-v5, solver warm-start disabled.
        v1: as v0 with the original code's control rate: frame_skip 2 (``dt`` 0.02 s).
        v2: as v1 with the original model's contact softness and initial pose (``original_model``).
        v3: as v1 with the original code's observation, ``(125,)`` (``original_observation``).
        v4: as v2 with the original start position noise: the original start state entire
            (``original_start_noise``).
        v5: as v1 with the original integration, one RK4 step of 0.02 s per action (``original_timestep``).
        v6: the original physics and start state entire: v4 with v5's integration.
    """

    task_type = DirectionTask
    default_task = DirectionTask(1.0)
    task_ranges = {"direction": (-1.0, 1.0)}
    task_terms = staticmethod(direction_terms)

    def sample_tasks(self, n: int, rng: np.random.Generator) -> list[DirectionTask]:
        """Draw ``n`` directions, -1 or +1 with equal probability, with ``rng`` alone."""
        check_num_tasks(n)
        return [DirectionTask(float(d)) for d in 2 * rng.integers(0, 2, size=n) - 1]


class AntGoalEnv(AntTaskEnv):
    """Ant walking to a goal position in the plane.

    - Task distribution: goal ``(x, y) ~ U[-3, 3]^2`` (:class:`~envs.tasks.GoalTask`); default the origin.
    - Reward: ``-(|x - goal_x| + |y - goal_y|) + 4.0 + 0.05 - ctrl - contact`` with ``(x, y) = qpos[:2]``, the
      torso's position after the step (the original used the whole robot's centre of mass);
      ``reward_goal = -(|x - goal_x| + |y - goal_y|) + 4.0``.
    - Observation: ``qpos`` (x, y first), ``qvel`` and contact forces, shape ``(107,)``: unlike the other Ant
      tasks the agent sees where it is, which it needs to find the goal.
    - Termination and horizon 200: see :class:`AntTaskEnv`, which also lists the differences from Gymnasium v5
      and from cbfinn/maml_rl (``ant_env_rand_goal``).

    Version history:
        v0: the original code's task and reward on Gymnasium's Ant-v5, solver warm-start disabled.
        v1: as v0 with the original code's control rate: frame_skip 2 (``dt`` 0.02 s).
        v2: as v1 with the original model's contact softness and initial pose (``original_model``).
        v3: as v1 with the original code's observation, ``(125,)`` (``original_observation``).
        v4: as v2 with the original start position noise: the original start state entire
            (``original_start_noise``).
        v5: as v1 with the original integration, one RK4 step of 0.02 s per action (``original_timestep``).
        v6: the original physics and start state entire: v4 with v5's integration.
    """

    task_type = GoalTask
    default_task = GoalTask(0.0, 0.0)
    task_ranges = {"x": (-3.0, 3.0), "y": (-3.0, 3.0)}
    task_terms = staticmethod(goal_terms)
    observe_position = True

    def sample_tasks(self, n: int, rng: np.random.Generator) -> list[GoalTask]:
        """Draw ``n`` goals uniformly from ``[-3, 3]^2`` with ``rng`` alone."""
        check_num_tasks(n)
        return [GoalTask(float(x), float(y)) for x, y in rng.uniform(-3.0, 3.0, size=(n, 2))]
