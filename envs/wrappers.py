"""Wrappers for the baselines: an oracle sees its task, a multi-task learner gets a new task every episode."""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol, runtime_checkable

import gymnasium as gym
import numpy as np


@runtime_checkable
class TaskEnv(Protocol):
    """What the wrapper needs of the unwrapped env: a settable task and ``sample_tasks``."""

    task: Any

    def set_task(self, task: Any) -> None:
        """Use ``task`` from the next step on."""
        ...

    def sample_tasks(self, n: int, rng: np.random.Generator) -> list[Any]:
        """Draw ``n`` tasks with ``rng``."""
        ...


def task_features(task: Any) -> np.ndarray:
    """A task's fields as a float32 vector, in field order: ``VelocityTask(1.5) -> [1.5]``."""
    if not dataclasses.is_dataclass(task) or isinstance(task, type):
        raise TypeError(f"a task must be a dataclass to be shown to a policy, got {task!r}")
    return np.asarray(dataclasses.astuple(task), dtype=np.float32)


class TaskInObservation(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """Append the task's parameters to every observation, and optionally draw a new task at every reset.

    The oracle baseline of the MAML paper: a policy that is told the task (goal velocity, direction, goal
    position) needs no adaptation, which bounds what adaptation can reach.

    Observation: the env's observation followed by :func:`task_features` of the current task (unbounded
    ``float32`` box). With ``resample_tasks`` every ``reset`` first draws the task with the env's own
    ``sample_tasks(1, rng)``, so training covers the whole task distribution; ``rng`` is the wrapper's own
    generator, seeded by ``reset(seed=...)`` (unseeded until then, like Gymnasium's).

    Args:
        env: a task env (``task``, ``set_task``, ``sample_tasks``); may be wrapped (e.g. by ``TimeLimit``).
        resample_tasks: draw a new task at every reset.
    """

    def __init__(self, env: gym.Env, resample_tasks: bool = True) -> None:
        """See the class docstring."""
        gym.utils.RecordConstructorArgs.__init__(self, resample_tasks=resample_tasks)
        gym.ObservationWrapper.__init__(self, env)
        base = env.unwrapped
        if not isinstance(base, TaskEnv):
            missing = next(name for name in ("task", "set_task", "sample_tasks") if not hasattr(base, name))
            raise TypeError(f"{type(base).__name__} is not a task env: it has no {missing!r}")
        self._task_env = base
        self.resample_tasks = resample_tasks
        self._task_rng: np.random.Generator | None = None
        space = env.observation_space
        if not isinstance(space, gym.spaces.Box) or len(space.shape) != 1:
            raise TypeError(f"TaskInObservation needs a flat Box observation space, got {space}")
        size = space.shape[0] + task_features(base.task).shape[0]
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (size,), np.float32)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset the env (after drawing a new task if ``resample_tasks``)."""
        if seed is not None:
            self._task_rng = np.random.default_rng((seed, 0x7A5C))  # a stream apart from the env's own
        elif self._task_rng is None:
            self._task_rng = np.random.default_rng()
        if self.resample_tasks:
            self._task_env.set_task(self._task_env.sample_tasks(1, self._task_rng)[0])
        return super().reset(seed=seed, options=options)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        """``[obs, task features]``."""
        features = task_features(self._task_env.task)
        return np.concatenate([np.asarray(observation, dtype=np.float32), features])
