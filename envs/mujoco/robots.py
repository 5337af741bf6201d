"""What the fast vector env does differently for HalfCheetah and Ant, as one small object per robot.

:func:`batched_robot` picks the object once, from the single env the vector env builds. Each computes, for
``N`` sub-envs at once, what the robot's single env computes after a step: Gymnasium v5's observation and
position ``info``, and the reward terms, with the functions of :mod:`.rewards` the single envs call.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple, Protocol

import numpy as np

from .ant import ORIGINAL_QPOS_NOISE, AntParameters, AntTaskEnv
from .half_cheetah import HalfCheetahParameters, HalfCheetahTaskEnv
from .rewards import (
    TaskTerms,
    ant_reward_terms,
    half_cheetah_reward,
    is_healthy,
    original_ant_observation,
    original_initial_state,
)

#: The robots' single env classes; the vector env takes these and their subclasses.
ROBOT_ENVS: tuple[type, ...] = (AntTaskEnv, HalfCheetahTaskEnv)


class Physics(NamedTuple):
    """The sub-envs' physics after a step (or a reset), as the single env's ``MjData`` holds it."""

    qpos: np.ndarray  # [N, nq]
    qvel: np.ndarray  # [N, nv]
    body_xy: np.ndarray  # [N, 2]: the main body's x, y (Ant's torso; unused for HalfCheetah)
    cfrc_ext: np.ndarray  # [N, nbody, 6]: external contact forces after mj_rnePostConstraint (Ant)
    body_xmat: np.ndarray  # [N, 9]: the main body's orientation matrix (Ant's original observation)
    subtree_com: np.ndarray  # [N, 3]: the centre of mass of the main body's subtree (likewise)


#: A step's rewards ``[N]``, terminations ``[N]`` and ``info`` entries (each ``[N]``).
StepOutputs = tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]


class BatchedRobot(Protocol):
    """A robot's observation, ``info`` and rewards for ``N`` sub-envs at once."""

    @property
    def needs_last_substep(self) -> bool:
        """Whether the vector env takes each env step's last physics step itself.

        It does so with ``mj_step`` and ``mj_rnePostConstraint`` where the outputs read ``cfrc_ext`` and
        ``body_xy`` (see :class:`~envs.mujoco.vector.MuJoCoVectorEnv`).
        """
        ...

    @property
    def main_body(self) -> int:
        """The body whose x, y the vector env keeps in :attr:`Physics.body_xy`."""
        ...

    @property
    def needs_body_frame(self) -> bool:
        """Whether the outputs read :attr:`Physics.body_xmat` and :attr:`Physics.subtree_com` (else 0)."""
        ...

    def initial_state(
        self, rng: np.random.Generator, init_qpos: np.ndarray, init_qvel: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """One sub-env's start ``(qpos, qvel)``, drawn from ``rng`` as the single env's ``reset_model``."""
        ...

    def position(self, physics: Physics) -> np.ndarray:
        """What ``v_x`` is measured on (a view into ``physics``; copy it to keep it over a step)."""
        ...

    def observe(self, physics: Physics) -> np.ndarray:
        """Observations ``[N, obs_dim]``, as Gymnasium v5's ``_get_obs``."""
        ...

    def position_info(self, qpos: np.ndarray) -> dict[str, np.ndarray]:
        """The position entries of step and reset ``info``, each ``[N]``, as Gymnasium v5's."""
        ...

    def outputs(
        self, position_before: np.ndarray, after: Physics, actions: np.ndarray, tasks: np.ndarray
    ) -> StepOutputs:
        """Rewards, terminations and step ``info`` (velocities, reward terms) of a step.

        Args:
            position_before: :meth:`position` before the step.
            after: The physics after the step.
            actions: ``[N, act_dim]``, as given to the step.
            tasks: ``[N, F]``, the task fields of each sub-env.
        """
        ...


@dataclasses.dataclass(frozen=True)
class BatchedHalfCheetah:
    """HalfCheetah: ``v_x`` of the root's x (``qpos[0]``); never terminates; sees ``qpos[1:]``, ``qvel``."""

    task_terms: TaskTerms
    dt: float
    parameters: HalfCheetahParameters
    needs_last_substep: bool = False
    main_body: int = 0
    needs_body_frame: bool = False

    def initial_state(
        self, rng: np.random.Generator, init_qpos: np.ndarray, init_qvel: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Gymnasium's: see :func:`gymnasium_initial_state`."""
        return gymnasium_initial_state(rng, init_qpos, init_qvel, self.parameters.reset_noise_scale)

    def position(self, physics: Physics) -> np.ndarray:
        """The root's x, ``[N]``."""
        return physics.qpos[:, 0]

    def observe(self, physics: Physics) -> np.ndarray:
        """``qpos[1:]`` and ``qvel``, ``[N, 17]``."""
        return np.concatenate([physics.qpos[:, 1:], physics.qvel], axis=1)

    def position_info(self, qpos: np.ndarray) -> dict[str, np.ndarray]:
        """``x_position``."""
        return {"x_position": qpos[:, 0].copy()}

    def outputs(
        self, position_before: np.ndarray, after: Physics, actions: np.ndarray, tasks: np.ndarray
    ) -> StepOutputs:
        """See :meth:`BatchedRobot.outputs`; terminations are all false."""
        x_velocity = (after.qpos[:, 0] - position_before) / self.dt
        task_terms = self.task_terms(x_velocity, after.qpos, *tasks.T)
        rewards, terms = half_cheetah_reward(task_terms, actions, self.parameters.ctrl_cost_weight)
        return rewards, np.zeros(len(rewards), dtype=bool), {"x_velocity": x_velocity, **terms}


@dataclasses.dataclass(frozen=True)
class BatchedAnt:
    """Ant: ``v_x`` of the torso's position, terminates when unhealthy, observes the contact forces too."""

    task_terms: TaskTerms
    dt: float
    qpos_skipped: int  # leading qpos entries left out of the observation: 2, or 0 for AntGoal
    parameters: AntParameters
    original_observation: bool = False  # the original code's observation instead (-v3 ids)
    original_start_noise: bool = False  # the original code's start position noise (-v4 ids)
    needs_last_substep: bool = True

    def initial_state(
        self, rng: np.random.Generator, init_qpos: np.ndarray, init_qvel: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Gymnasium's, or with :attr:`original_start_noise` the position noise ``0.01 * N(0, 1)``."""
        scale = self.parameters.reset_noise_scale
        if not self.original_start_noise:
            return gymnasium_initial_state(rng, init_qpos, init_qvel, scale)
        return original_initial_state(rng, init_qpos, init_qvel, ORIGINAL_QPOS_NOISE, scale)

    @property
    def main_body(self) -> int:
        """The torso."""
        return self.parameters.main_body

    @property
    def needs_body_frame(self) -> bool:
        """The original observation reads the torso's orientation and the robot's centre of mass."""
        return self.original_observation

    def position(self, physics: Physics) -> np.ndarray:
        """The torso's x, y, ``[N, 2]``."""
        return physics.body_xy

    def observe(self, physics: Physics) -> np.ndarray:
        """``qpos`` but the skipped entries, ``qvel``, clipped contact forces of all bodies but the world.

        With :attr:`original_observation`, :func:`~.rewards.original_ant_observation` instead.
        """
        clip = self.parameters.contact_force_range
        if self.original_observation:
            forces = np.clip(physics.cfrc_ext, *clip)
            return original_ant_observation(
                physics.qpos, physics.qvel, forces, physics.body_xmat, physics.subtree_com
            )
        forces = np.clip(physics.cfrc_ext[:, 1:], *clip).reshape(len(physics.qpos), -1)
        return np.concatenate([physics.qpos[:, self.qpos_skipped :], physics.qvel, forces], axis=1)

    def position_info(self, qpos: np.ndarray) -> dict[str, np.ndarray]:
        """``x_position``, ``y_position`` and ``distance_from_origin``."""
        return {
            "x_position": qpos[:, 0].copy(),
            "y_position": qpos[:, 1].copy(),
            "distance_from_origin": np.linalg.norm(qpos[:, :2], axis=1),
        }

    def outputs(
        self, position_before: np.ndarray, after: Physics, actions: np.ndarray, tasks: np.ndarray
    ) -> StepOutputs:
        """See :meth:`BatchedRobot.outputs`; a sub-env terminates when it is not healthy."""
        xy_velocity = (after.body_xy - position_before) / self.dt
        p = self.parameters
        healthy = is_healthy(after.qpos, after.qvel, p.healthy_z_range)
        terms = ant_reward_terms(
            self.task_terms(xy_velocity[:, 0], after.qpos, *tasks.T),
            healthy,
            actions,
            np.clip(after.cfrc_ext, *p.contact_force_range),
            healthy_reward=p.healthy_reward,
            ctrl_cost_weight=p.ctrl_cost_weight,
            contact_cost_weight=p.contact_cost_weight,
        )
        info = {"x_velocity": xy_velocity[:, 0].copy(), "y_velocity": xy_velocity[:, 1].copy(), **terms}
        rewards: np.ndarray = sum(terms.values())  # type: ignore[assignment]  # sum of [N] arrays is [N]
        return rewards, ~healthy, info


def gymnasium_initial_state(
    rng: np.random.Generator, init_qpos: np.ndarray, init_qvel: np.ndarray, scale: float
) -> tuple[np.ndarray, np.ndarray]:
    """Gymnasium v5's start state (HalfCheetah, Ant): ``qpos + U(-s, s)``, ``qvel + s N(0, 1)``."""
    qpos = init_qpos + rng.uniform(low=-scale, high=scale, size=len(init_qpos))
    return qpos, init_qvel + scale * rng.standard_normal(len(init_qvel))


def check_env_class(env_class: Any) -> None:
    """Raise ``ValueError`` unless ``env_class`` is one of :data:`ROBOT_ENVS` or a subclass."""
    if not (isinstance(env_class, type) and issubclass(env_class, ROBOT_ENVS)):
        names = sorted(cls.__name__ for cls in ROBOT_ENVS)
        got = env_class.__name__ if isinstance(env_class, type) else repr(env_class)
        raise ValueError(f"env_class must be one of {names} or a subclass, got {got}")


def batched_robot(env: Any) -> BatchedRobot:
    """The :class:`BatchedRobot` of ``env``, a single env of one of :data:`ROBOT_ENVS` (or a subclass).

    It reads only public attributes: the class's ``parameters``, ``task_terms`` and ``observe_position``,
    and ``dt``.

    Raises:
        ValueError: ``env`` is of another class.
    """
    check_env_class(type(env))
    if isinstance(env, AntTaskEnv):
        skipped = 0 if env.observe_position else 2
        return BatchedAnt(
            env.task_terms,
            env.dt,
            skipped,
            env.parameters,
            env.original_observation,
            env.original_start_noise,
        )
    return BatchedHalfCheetah(env.task_terms, env.dt, env.parameters)
