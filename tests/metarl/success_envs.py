"""An env that reports success, for the success tests (imported by workers as ``success_envs``).

``metarl-test/Reach1D-v0``: a point on a line starts at 0 and moves by the action (clipped to [-1, 1]) each of
10 steps; ``info["success"]`` is 1.0 on a step that ends within 0.5 of the task's goal. Its metadata says
``reports_success``, so the collector records which episodes succeeded.
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np


@dataclass(frozen=True)
class Goal1D:
    goal: float


class Reach1DEnv(gym.Env):
    metadata = {"render_modes": [], "reports_success": True}

    def __init__(self) -> None:
        self.observation_space = gym.spaces.Box(-100, 100, (1,), np.float32)
        self.action_space = gym.spaces.Box(-1, 1, (1,), np.float32)
        self.task = Goal1D(0.0)
        self.x = 0.0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.x = 0.0
        return np.array([self.x], np.float32), {}

    def step(self, action):
        self.x += float(np.clip(action, -1, 1)[0])
        success = abs(self.x - self.task.goal) < 0.5
        return (
            np.array([self.x], np.float32),
            -abs(self.x - self.task.goal),
            False,
            False,
            {"success": float(success)},
        )

    def sample_tasks(self, n: int, rng: np.random.Generator) -> list[Goal1D]:
        return [Goal1D(float(g)) for g in rng.uniform(-5, 5, size=n)]


if "metarl-test/Reach1D-v0" not in gym.registry:
    gym.register("metarl-test/Reach1D-v0", entry_point=Reach1DEnv, max_episode_steps=10)
