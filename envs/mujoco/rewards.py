"""The reward terms of the MuJoCo task distributions: pure numpy functions of one step or of a batch of steps.

(With them the one observation the single and the vector env both build, the original code's for Ant.)

The single envs (``half_cheetah.py``, ``ant.py``) call them with one env's values (``x_velocity`` a float,
``qpos: [nq]``, ``actions: [act_dim]``), the fast vector env (``vector.py``) with ``N`` sub-envs' values
(``[N]``, ``[N, nq]``, ``[N, act_dim]``). Both therefore run the same floating-point operations in the same
order, and their numbers agree bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeAlias

import numpy as np

#: One env's value (a float) or a batch of ``N`` sub-envs' values (``[N]``).
Values: TypeAlias = Any
#: A task's reward term: ``(x_velocity, qpos, *task fields) -> {"reward_forward" or "reward_goal": value}``,
#: the task fields in the task dataclass's field order (floats, or ``[N]`` columns for a batch).
TaskTerms: TypeAlias = Callable[..., dict[str, Values]]


def velocity_terms(x_velocity: Values, qpos: np.ndarray, velocity: Values) -> dict[str, Values]:
    """HalfCheetahVel: ``reward_forward = -|v_x - velocity|``."""
    return {"reward_forward": -np.abs(x_velocity - velocity)}


def offset_velocity_terms(x_velocity: Values, qpos: np.ndarray, velocity: Values) -> dict[str, Values]:
    """AntVel: ``reward_forward = -|v_x - velocity| + 1`` (the original code's constant included)."""
    return {"reward_forward": -np.abs(x_velocity - velocity) + 1.0}


def direction_terms(x_velocity: Values, qpos: np.ndarray, direction: Values) -> dict[str, Values]:
    """HalfCheetahDir and AntDir: ``reward_forward = direction * v_x``."""
    return {"reward_forward": direction * x_velocity}


def goal_terms(x_velocity: Values, qpos: np.ndarray, x: Values, y: Values) -> dict[str, Values]:
    """AntGoal: ``reward_goal = -(|qpos_x - x| + |qpos_y - y|) + 4``, the torso's position after the step."""
    return {"reward_goal": -(np.abs(qpos[..., 0] - x) + np.abs(qpos[..., 1] - y)) + 4.0}


def control_cost(actions: np.ndarray, weight: float) -> Values:
    """``weight * |a|^2`` over the last axis of ``actions``, in the actions' dtype (as Gymnasium's)."""
    return weight * np.sum(np.square(actions), axis=-1)


def half_cheetah_reward(
    task_terms: dict[str, Values], actions: np.ndarray, ctrl_cost_weight: float
) -> tuple[Values, dict[str, Values]]:
    """HalfCheetah's reward ``reward_forward - ctrl_cost_weight * |a|^2`` and its terms.

    Args:
        task_terms: The task's ``{"reward_forward": value}``.
        actions: ``[act_dim]`` or ``[N, act_dim]``, as the env was given them.
        ctrl_cost_weight: The weight of ``|a|^2``.

    Returns:
        The reward (a float or ``[N]``) and ``{"reward_forward", "reward_ctrl"}``, whose sum it is.
    """
    forward = task_terms["reward_forward"]
    ctrl_cost = control_cost(actions, ctrl_cost_weight)
    return forward - ctrl_cost, {"reward_forward": forward, "reward_ctrl": -ctrl_cost}


def is_healthy(qpos: np.ndarray, qvel: np.ndarray, z_range: tuple[float, float]) -> Values:
    """Ant's health (a bool or ``[N]``): a finite state with the torso's z (``qpos[2]``) in ``z_range``."""
    low, high = z_range
    finite = np.isfinite(qpos).all(axis=-1) & np.isfinite(qvel).all(axis=-1)
    return finite & (low <= qpos[..., 2]) & (qpos[..., 2] <= high)


def ant_reward_terms(
    task_terms: dict[str, Values],
    healthy: Values,
    actions: np.ndarray,
    contact_forces: np.ndarray,
    *,
    healthy_reward: float,
    ctrl_cost_weight: float,
    contact_cost_weight: float,
) -> dict[str, Values]:
    """Ant's reward terms; the reward is their sum, in this order.

    Args:
        task_terms: The task's term (``reward_forward`` or ``reward_goal``).
        healthy: :func:`is_healthy` after the step; the survive reward is paid only then.
        actions: ``[act_dim]`` or ``[N, act_dim]``, as the env was given them.
        contact_forces: The clipped external contact forces of every body, ``[nbody, 6]`` or
            ``[N, nbody, 6]``.
        healthy_reward: The survive reward per step.
        ctrl_cost_weight: The weight of ``|a|^2``.
        contact_cost_weight: The weight of the sum of squared contact forces.

    Returns:
        The task term, ``reward_survive``, ``reward_ctrl`` and ``reward_contact``.
    """
    return {
        **task_terms,
        "reward_survive": healthy * healthy_reward,
        "reward_ctrl": -control_cost(actions, ctrl_cost_weight),
        "reward_contact": -(contact_cost_weight * np.sum(np.square(contact_forces), axis=(-2, -1))),
    }


def original_ant_observation(
    qpos: np.ndarray,
    qvel: np.ndarray,
    contact_forces: np.ndarray,
    torso_xmat: np.ndarray,
    robot_com: np.ndarray,
) -> np.ndarray:
    """The original code's Ant observation (rllab's ``ant_env.py``), ``[125]`` or ``[N, 125]`` for a batch.

    Args:
        qpos: ``[15]`` (``[N, 15]``), x and y included.
        qvel: ``[14]``.
        contact_forces: the clipped external contact forces of every body, the world's included, ``[14, 6]``.
        torso_xmat: the torso's orientation matrix, ``[9]`` (or ``[3, 3]``).
        robot_com: the centre of mass of the torso's subtree, the whole robot, ``[3]``.
    """
    batch = qpos.shape[:-1]
    parts = (qpos, qvel, contact_forces.reshape(*batch, -1), torso_xmat.reshape(*batch, -1), robot_com)
    return np.concatenate(parts, axis=-1)


def original_initial_state(
    rng: np.random.Generator,
    init_qpos: np.ndarray,
    init_qvel: np.ndarray,
    qpos_noise: float,
    qvel_noise: float,
) -> tuple[np.ndarray, np.ndarray]:
    """The original code's start state (rllab's ``reset_mujoco``), one sub-env's ``(qpos, qvel)``.

    ``init_qpos + qpos_noise * N(0, 1)``, then ``init_qvel + qvel_noise * N(0, 1)``, drawn from ``rng`` in
    that order (the single env passes its ``np_random``, the vector env a sub-env's generator).
    """
    qpos = init_qpos + qpos_noise * rng.standard_normal(len(init_qpos))
    return qpos, init_qvel + qvel_noise * rng.standard_normal(len(init_qvel))
