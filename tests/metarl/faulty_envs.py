"""A task env that misbehaves on request, for the fault tests (imported by workers as ``faulty_envs``).

``metarl-test/Faulty-v0``: observation ``[t, goal]``, reward ``-|a - goal|``, 20 steps. The task's ``fault``
says what happens at step 3 (``FAULT_STEP``) of the sub-env that holds it:

- ``kill``: the process kills itself with SIGKILL, once (while the file ``marker`` exists; it removes it);
- ``hang``: sleeps for a minute, once (same marker rule);
- ``kill-always``: SIGKILL every time;
- ``raise``: raises ``ValueError``;
- ``nan``: the observation holds NaN from then on (once per marker, or always when ``marker`` is empty).
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np

FAULT_STEP = 3


@dataclass(frozen=True)
class FaultTask:
    goal: float
    fault: str = ""
    marker: str = ""


def _claim(marker: str) -> bool:
    """True once per marker file (removes it), True always for an empty marker."""
    if not marker:
        return True
    try:
        Path(marker).unlink()
    except FileNotFoundError:
        return False
    return True


class FaultyEnv(gym.Env):
    """``fault``: the fault of the tasks ``sample_tasks`` draws.

    ``nan-once``: ``nan`` with the marker file named by ``$METARL_TEST_MARKER``; ``nan-if-switch``: ``nan``
    every time while the file ``$METARL_TEST_SWITCH`` exists; ``kill-once``: ``kill`` with the marker file
    ``$METARL_TEST_MARKER`` (never run it in-process with the marker present).
    """

    def __init__(self, fault: str = "") -> None:
        self.fault = fault
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (2,), np.float32)
        self.action_space = gym.spaces.Box(-1, 1, (1,), np.float32)
        self.task = FaultTask(0.0)
        self.t = 0
        self.broken = False

    def sample_tasks(self, n: int, rng: np.random.Generator) -> list[FaultTask]:
        goals = [float(g) for g in rng.uniform(-1, 1, n)]
        if self.fault == "nan-once":
            return [FaultTask(g, "nan", os.environ["METARL_TEST_MARKER"]) for g in goals]
        if self.fault == "nan-if-switch" and Path(os.environ["METARL_TEST_SWITCH"]).exists():
            return [FaultTask(g, "nan") for g in goals]
        if self.fault == "kill-once":
            return [FaultTask(g, "kill", os.environ["METARL_TEST_MARKER"]) for g in goals]
        return [FaultTask(g) for g in goals]

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t, self.broken = 0, False
        return self._obs(), {}

    def _obs(self) -> np.ndarray:
        obs = np.array([self.t, self.task.goal], np.float32)
        return obs * np.nan if self.broken else obs

    def step(self, action):
        fault = self.task.fault
        if self.t == FAULT_STEP and fault:
            if fault == "kill-always" or (fault == "kill" and _claim(self.task.marker)):
                os.kill(os.getpid(), signal.SIGKILL)
            if fault == "hang" and _claim(self.task.marker):
                time.sleep(60)
            if fault == "raise":
                raise ValueError("the faulty env raised on purpose")
            if fault == "nan" and _claim(self.task.marker):
                self.broken = True
        reward = -abs(float(action[0]) - self.task.goal)
        self.t += 1
        return self._obs(), reward, False, False, {}


for _id, _fault in (
    ("Faulty", ""),
    ("NaNOnce", "nan-once"),
    ("NaNIfSwitch", "nan-if-switch"),
    ("KillOnce", "kill-once"),
):
    if f"metarl-test/{_id}-v0" not in gym.registry:
        gym.register(
            f"metarl-test/{_id}-v0", entry_point=FaultyEnv, max_episode_steps=20, kwargs={"fault": _fault}
        )
