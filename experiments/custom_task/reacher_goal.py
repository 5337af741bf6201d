"""Example of a user-defined task distribution: Gymnasium's MuJoCo Reacher with a hidden goal.

A task distribution is any Gymnasium env with a settable ``task``, ``set_task(task)`` and
``sample_tasks(n, rng)``, registered under an id with a ``max_episode_steps``. This file does all of it; the
config ``reacher_goal.yaml`` lists it under ``env.imports`` so ``metarl train`` imports it before building
the env.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.envs.mujoco.reacher_v5 import ReacherEnv

GOAL_RADIUS = 0.2


@dataclass(frozen=True)
class ReachTask:
    """Where the fingertip should go (metres, inside a disc of radius 0.2)."""

    x: float
    y: float


class ReacherGoalEnv(ReacherEnv):
    """Reach a goal that the policy does not observe; it must find it from rewards.

    - Task distribution: goal uniform in the disc of radius 0.2 (:class:`ReachTask`).
    - Reward: Gymnasium's Reacher-v5 reward, ``-|fingertip - goal| - |a|^2``.
    - Observation: Reacher-v5's without the goal and the fingertip-to-goal vector: cos and sin of the two
      joint angles, their velocities and the fingertip position (8 numbers).
    - Horizon: 50 steps (registration). Version history: v0.
    """

    task_ranges: dict[str, tuple[float, float]] = {
        "x": (-GOAL_RADIUS, GOAL_RADIUS),
        "y": (-GOAL_RADIUS, GOAL_RADIUS),
    }

    def __init__(self, task: ReachTask | None = None, **kwargs: Any) -> None:
        """Build Reacher-v5 and hide the goal from the observation."""
        super().__init__(**kwargs)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(8,), dtype=np.float64)
        self.task = task or ReachTask(0.1, 0.1)

    def set_task(self, task: ReachTask) -> None:
        """Set the goal of the following episodes."""
        if not isinstance(task, ReachTask):
            raise TypeError(f"task must be a ReachTask, got {task!r}")
        self.task = task

    def sample_tasks(self, n: int, rng: np.random.Generator) -> list[ReachTask]:
        """Goals uniform in the disc of radius 0.2, drawn with ``rng`` only."""
        radius = GOAL_RADIUS * np.sqrt(rng.uniform(size=n))
        angle = rng.uniform(0, 2 * np.pi, size=n)
        return [
            ReachTask(float(r * np.cos(a)), float(r * np.sin(a))) for r, a in zip(radius, angle, strict=True)
        ]

    def reset_model(self) -> np.ndarray:
        """Random arm pose as in Reacher-v5, the target placed at the task's goal."""
        qpos = self.init_qpos + self.np_random.uniform(low=-0.1, high=0.1, size=self.model.nq)
        qpos[-2:] = (self.task.x, self.task.y)
        qvel = self.init_qvel + self.np_random.uniform(low=-0.005, high=0.005, size=self.model.nv)
        qvel[-2:] = 0
        self.set_state(qpos, qvel)
        return self._get_obs()

    def _get_obs(self) -> np.ndarray:
        theta = self.data.qpos.flatten()[:2]
        fingertip = self.get_body_com("fingertip")[:2]
        return np.concatenate([np.cos(theta), np.sin(theta), self.data.qvel.flatten()[:2], fingertip])


if "custom/ReacherGoal-v0" not in gym.registry:
    gym.register("custom/ReacherGoal-v0", entry_point=ReacherGoalEnv, max_episode_steps=50)
