"""2-D point navigation (Finn et al., 2017, arXiv:1703.03400, section 5.3): the tests' fast default env."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from .tasks import GoalTask

GOAL_LOW, GOAL_HIGH = -0.5, 0.5
MAX_ACTION = 0.1
GOAL_RADIUS = 0.01
# 100 steps of at most 0.1 cannot leave this box.
POSITION_BOUND = 10.0


def _check_goal(task: object) -> GoalTask:
    if not isinstance(task, GoalTask):
        raise TypeError(f"task must be a GoalTask(x, y), got {task!r}")
    return task


def sample_goals(n: int, rng: np.random.Generator) -> list[GoalTask]:
    """Draw ``n`` goals uniformly from ``[-0.5, 0.5]^2`` with ``rng`` alone."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    xy = rng.uniform(GOAL_LOW, GOAL_HIGH, size=(n, 2))
    return [GoalTask(float(x), float(y)) for x, y in xy]


class Navigation2DEnv(gym.Env[np.ndarray, np.ndarray]):
    """A point in the plane moves towards an unseen goal.

    - Task distribution: goal ``(x, y)`` uniform in ``[-0.5, 0.5]^2`` (:class:`~envs.tasks.GoalTask`).
    - Observation: the point's position, shape ``(2,)``; it starts at the origin.
    - Action: a displacement, clipped to ``[-0.1, 0.1]`` per coordinate (the action space's bounds).
    - Reward: minus the Euclidean (not squared) distance to the goal after the move.
    - Termination: within 0.01 (Euclidean) of the goal. Horizon: 100 steps (set at registration).
    - ``info``: ``reward_distance``, ``distance`` and ``task``.

    Version history:
        v0: as the original MAML code (cbfinn/maml_rl ``point_env_randgoal``), with a Euclidean goal radius.
    """

    metadata: dict[str, Any] = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, task: GoalTask | None = None, render_mode: str | None = None) -> None:
        """Create the env with ``task`` (default: goal at the origin)."""
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"render_mode must be one of {self.metadata['render_modes']}, got {render_mode!r}"
            )
        self.render_mode = render_mode
        self.observation_space = gym.spaces.Box(-POSITION_BOUND, POSITION_BOUND, shape=(2,), dtype=np.float32)
        self.action_space = gym.spaces.Box(-MAX_ACTION, MAX_ACTION, shape=(2,), dtype=np.float32)
        self.task: GoalTask = GoalTask(0.0, 0.0) if task is None else _check_goal(task)
        self._position = np.zeros(2)

    task_ranges: dict[str, tuple[float, float]] = {"x": (GOAL_LOW, GOAL_HIGH), "y": (GOAL_LOW, GOAL_HIGH)}

    def set_task(self, task: GoalTask) -> None:
        """Set the goal for the following episodes."""
        self.task = _check_goal(task)

    def sample_tasks(self, n: int, rng: np.random.Generator) -> list[GoalTask]:
        """Draw ``n`` goals with ``rng`` (the env's own RNG is not touched)."""
        return sample_goals(n, rng)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Put the point back at the origin."""
        super().reset(seed=seed)
        self._position = np.zeros(2)
        return self._position.astype(np.float32), {"task": self.task}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Move by the clipped action and pay the distance to the goal."""
        self._position = self._position + np.clip(
            np.asarray(action, dtype=np.float64), -MAX_ACTION, MAX_ACTION
        )
        distance = float(np.hypot(*(self._position - (self.task.x, self.task.y))))
        info = {"reward_distance": -distance, "distance": distance, "task": self.task}
        return self._position.astype(np.float32), -distance, distance < GOAL_RADIUS, False, info

    def render(self) -> np.ndarray | None:
        """Draw the goal (red) and the point (blue) on a 128x128 white image."""
        if self.render_mode != "rgb_array":
            return None
        image = np.full((128, 128, 3), 255, dtype=np.uint8)
        for (x, y), colour in (((self.task.x, self.task.y), (220, 40, 40)), (self._position, (40, 40, 220))):
            col, row = (np.clip(np.array([x, -y]), -1, 1) * 60 + 64).astype(int)
            image[max(row - 2, 0) : row + 3, max(col - 2, 0) : col + 3] = colour
        return image


class Navigation2DVectorEnv(VectorEnv):
    """``num_envs`` copies of :class:`Navigation2DEnv` stepped together in numpy.

    The same dynamics, reward and termination as the single env (tested equal), with the time limit applied
    here (``max_episode_steps``, truncation). Autoreset mode is ``SAME_STEP``: a finished sub-env is reset
    within the step that ended it and its last observation is in ``info["final_obs"]``. Tasks are set per
    sub-env with ``set_attr("task", [GoalTask, ...])``.
    """

    metadata: dict[str, Any] = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": []}

    def __init__(self, num_envs: int, max_episode_steps: int = 100) -> None:
        """Create ``num_envs`` sub-envs, all with the goal at the origin."""
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        self.num_envs = num_envs
        self.max_episode_steps = max_episode_steps
        self.single_observation_space = gym.spaces.Box(
            -POSITION_BOUND, POSITION_BOUND, shape=(2,), dtype=np.float32
        )
        self.single_action_space = gym.spaces.Box(-MAX_ACTION, MAX_ACTION, shape=(2,), dtype=np.float32)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self._tasks = [GoalTask(0.0, 0.0)] * num_envs
        self._goals = np.zeros((num_envs, 2))
        self._positions = np.zeros((num_envs, 2))
        self._elapsed = np.zeros(num_envs, dtype=np.int64)

    def reset(
        self, *, seed: int | list[int] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Put every point at the origin (the dynamics have no randomness; ``seed`` seeds ``np_random``)."""
        if seed is not None:
            self._np_random, self._np_random_seed = gym.utils.seeding.np_random(
                seed if isinstance(seed, int) else seed[0]
            )
        self._positions = np.zeros((self.num_envs, 2))
        self._elapsed = np.zeros(self.num_envs, dtype=np.int64)
        return self._positions.astype(np.float32), {}

    def step(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Advance every sub-env by one step.

        Args:
            actions: ``[num_envs, 2]`` displacements (clipped to ``[-0.1, 0.1]``).

        Returns:
            observations ``[num_envs, 2]``, rewards, terminations, truncations ``[num_envs]`` and info.
        """
        actions = np.clip(
            np.asarray(actions, dtype=np.float64).reshape(self.num_envs, 2), -MAX_ACTION, MAX_ACTION
        )
        self._positions = self._positions + actions
        self._elapsed += 1
        distances = np.hypot(*(self._positions - self._goals).T)
        terminated = distances < GOAL_RADIUS
        truncated = self._elapsed >= self.max_episode_steps  # as TimeLimit: may coincide with termination
        observations = self._positions.astype(np.float32)
        info: dict[str, Any] = {"reward_distance": -distances, "distance": distances}
        done = terminated | truncated
        if done.any():
            info["final_obs"] = np.where(done[:, None], observations, np.nan).astype(np.float32)
            info["_final_obs"] = done
            self._positions[done] = 0.0
            self._elapsed[done] = 0
            observations = self._positions.astype(np.float32)
        return observations, -distances, terminated, truncated, info

    def get_attr(self, name: str) -> tuple[Any, ...]:
        """Read ``task`` (one per sub-env); other names are not stored per sub-env."""
        if name != "task":
            raise AttributeError(f"{type(self).__name__} has no per-sub-env attribute {name!r}; only 'task'")
        return tuple(self._tasks)

    def set_attr(self, name: str, values: list[Any] | tuple[Any, ...] | Any) -> None:
        """Set ``task``: one value per sub-env, or one value for all."""
        if name != "task":
            raise AttributeError(f"{type(self).__name__} has no per-sub-env attribute {name!r}; only 'task'")
        values = list(values) if isinstance(values, (list, tuple)) else [values] * self.num_envs
        if len(values) != self.num_envs:
            raise ValueError(f"set_attr('task') needs {self.num_envs} values, got {len(values)}")
        self._tasks = [_check_goal(task) for task in values]
        self._goals = np.array([(task.x, task.y) for task in self._tasks], dtype=np.float64)
