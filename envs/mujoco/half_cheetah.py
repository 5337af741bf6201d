"""HalfCheetah task distributions of MAML (Finn et al., 2017, arXiv:1703.03400, section 5.3).

The two tasks are velocity and direction. Both envs are Gymnasium's ``HalfCheetah-v5`` with a task-dependent
forward reward and the original code's control cost weight. :class:`HalfCheetahTaskEnv` says what they share
and how they differ from Gymnasium and from cbfinn/maml_rl.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np
from gymnasium.envs.mujoco.half_cheetah_v5 import HalfCheetahEnv
from gymnasium.envs.mujoco.mujoco_env import DEFAULT_SIZE

from ..tasks import DirectionTask, VelocityTask
from .common import TaskEnvMixin, check_frame_skip, check_num_tasks, disable_warmstart, task_fields
from .rewards import direction_terms, half_cheetah_reward, velocity_terms

#: 0.1 * 0.5 in the original code: weight of ``|a|^2`` in the control cost.
CTRL_COST_WEIGHT = 0.05


@dataclasses.dataclass(frozen=True)
class HalfCheetahParameters:
    """The arguments these envs give Gymnasium's ``HalfCheetahEnv``; the fast vector env reads them here.

    Args:
        ctrl_cost_weight: The weight of ``|a|^2`` in the control cost.
        reset_noise_scale: The scale of the initial state's noise (Gymnasium's default).
    """

    ctrl_cost_weight: float = CTRL_COST_WEIGHT
    reset_noise_scale: float = 0.1


class HalfCheetahTaskEnv(TaskEnvMixin, HalfCheetahEnv):
    """Gymnasium's HalfCheetah-v5 with a settable task; subclasses set the tasks and ``task_terms``.

    - Reward: ``reward_forward - 0.05 * |a|^2``; ``reward_forward`` depends on the task (see the subclass).
      ``info`` holds ``reward_forward``, ``reward_ctrl`` (``-0.05 * |a|^2``; the reward is their sum),
      ``x_velocity``, ``x_position`` and ``task``. Reset info holds ``x_position`` and ``task``.
    - ``v_x`` is Gymnasium's ``x_velocity``: the displacement of the root's x (``qpos[0]``) over the step,
      divided by ``dt = 0.01 * frame_skip`` s (model timestep 0.01 s).
    - Control rate: ``frame_skip`` physics steps per env step; 5 in ``-v0`` ids (Gymnasium's, ``dt`` 0.05 s,
      200 steps = 10 s), 1 in ``-v1`` ids (the original code's, ``dt`` 0.01 s, 200 steps = 2 s).
    - Observation: Gymnasium v5's default, ``qpos[1:]`` and ``qvel``, shape ``(17,)``.
    - Action: 6 joint torques in ``[-1, 1]``. Initial state: Gymnasium's (noise scale 0.1).
    - Termination: never. Horizon: 200 steps (set at registration).

    Differences from Gymnasium's HalfCheetah-v5: the forward reward and control cost weight (v5: ``v_x`` and
    0.1), and the constraint solver's warm-start is disabled (``mjDSBL_WARMSTART``) so that a step depends on
    the state and action alone and a batched stepper can reproduce this env exactly; trajectories differ
    slightly from v5's.

    Differences from the original code (cbfinn/maml_rl, on rllab): Gymnasium's model and initial state noise,
    and in ``-v0`` ids its frame_skip (rllab's ``half_cheetah.xml`` has no ``frame_skip`` entry, so rllab
    stepped once per action: ``dt`` 0.01 s, as ``-v1`` ids do); ``v_x`` is the finite-difference root
    velocity, where the original read the torso's centre-of-mass velocity; the original observation also held
    the robot's centre of mass.

    Args:
        task: The initial task (default: the subclass's ``default_task``); checked like :meth:`set_task`.
        render_mode: Gymnasium's MuJoCo render mode (``"human"``, ``"rgb_array"``, ...) or ``None``.
        width: Width of rendered frames in pixels.
        height: Height of rendered frames in pixels.
        camera_name: The model camera that renders frames; the default ``"track"`` follows the robot (with
            ``None``, Gymnasium's free camera stays put and the robot runs out of the picture).
        frame_skip: Physics steps per env step (registered ids set it: 5 in ``-v0``, 1 in ``-v1``).
    """

    parameters: ClassVar[HalfCheetahParameters] = HalfCheetahParameters()

    def __init__(
        self,
        task: Any | None = None,
        render_mode: str | None = None,
        width: int = DEFAULT_SIZE,
        height: int = DEFAULT_SIZE,
        camera_name: str | None = "track",
        frame_skip: int = 5,
    ) -> None:
        self.task = self.default_task if task is None else task
        check_frame_skip(frame_skip)
        super().__init__(
            frame_skip=frame_skip,
            ctrl_cost_weight=self.parameters.ctrl_cost_weight,
            reset_noise_scale=self.parameters.reset_noise_scale,
            exclude_current_positions_from_observation=True,
            render_mode=render_mode,
            width=width,
            height=height,
            camera_name=camera_name,
        )
        disable_warmstart(self.model)

    def _get_rew(self, x_velocity: float, action: np.ndarray) -> tuple[float, dict[str, float]]:
        # Gymnasium v5's reward hook, called by its step() after the simulation.
        terms = self.task_terms(x_velocity, self.data.qpos, *task_fields(self.task))
        return half_cheetah_reward(terms, action, self.parameters.ctrl_cost_weight)


class HalfCheetahVelEnv(HalfCheetahTaskEnv):
    """HalfCheetah running at a target velocity.

    - Task distribution: ``velocity ~ U[0, 2]`` m/s (:class:`~envs.tasks.VelocityTask`); default 1.0.
    - Reward: ``-|v_x - velocity| - 0.05 * |a|^2`` (``reward_forward = -|v_x - velocity|``).
    - Observation ``(17,)``, no termination, horizon 200: see :class:`HalfCheetahTaskEnv`, which also lists
      the differences from Gymnasium v5 and from cbfinn/maml_rl (``half_cheetah_env_rand``).

    Version history:
        v0: the original code's task and reward on Gymnasium's HalfCheetah-v5, solver warm-start disabled.
        v1: as v0 with the original code's control rate: frame_skip 1 (``dt`` 0.01 s).
    """

    task_type = VelocityTask
    default_task = VelocityTask(1.0)
    task_ranges = {"velocity": (0.0, 2.0)}
    task_terms = staticmethod(velocity_terms)

    def sample_tasks(self, n: int, rng: np.random.Generator) -> list[VelocityTask]:
        """Draw ``n`` target velocities uniformly from ``[0, 2]`` with ``rng`` alone."""
        check_num_tasks(n)
        return [VelocityTask(float(v)) for v in rng.uniform(0.0, 2.0, size=n)]


class HalfCheetahDirEnv(HalfCheetahTaskEnv):
    """HalfCheetah running forward or backward.

    - Task distribution: ``direction`` is -1 or +1 with equal probability
      (:class:`~envs.tasks.DirectionTask`); default +1. :meth:`set_task` accepts any finite direction.
    - Reward: ``direction * v_x - 0.05 * |a|^2`` (``reward_forward = direction * v_x``).
    - Observation ``(17,)``, no termination, horizon 200: see :class:`HalfCheetahTaskEnv`, which also lists
      the differences from Gymnasium v5 and from cbfinn/maml_rl (``half_cheetah_env_rand_direc``).

    Version history:
        v0: the original code's task and reward on Gymnasium's HalfCheetah-v5, solver warm-start disabled.
        v1: as v0 with the original code's control rate: frame_skip 1 (``dt`` 0.01 s).
    """

    task_type = DirectionTask
    default_task = DirectionTask(1.0)
    task_ranges = {"direction": (-1.0, 1.0)}
    task_terms = staticmethod(direction_terms)

    def sample_tasks(self, n: int, rng: np.random.Generator) -> list[DirectionTask]:
        """Draw ``n`` directions, -1 or +1 with equal probability, with ``rng`` alone."""
        check_num_tasks(n)
        return [DirectionTask(float(d)) for d in 2 * rng.integers(0, 2, size=n) - 1]
