"""Vectorized rollout collector: one Gymnasium ``VectorEnv`` for every (task, episode) pair of a meta-batch.

Sub-env ``n * E + e`` runs episode ``e`` of task ``n``. Each call sets the tasks per sub-env with
``set_attr("task", list)``, resets all sub-envs, and steps them together for the horizon ``T``, calling the
policy once per step on observations ``[N, E, obs_dim]``. Episodes that terminate early are padded
(``mask`` 0; observations, actions and rewards 0). The collector needs an autoreset mode that never raises
on a finished sub-env: ``SAME_STEP`` (the one it asks Gymnasium's vector envs for) or ``NEXT_STEP``, or
``DISABLED`` from a vector env whose metadata says ``frozen_when_finished`` (the fast MuJoCo envs, asked for
it so that finished episodes cost no physics); it ignores whatever a finished sub-env returns. It only
collects: adaptation, baselines and advantages belong to the learner.

With ``batch_unit="steps"`` a task's batch is counted in env steps, as rllab's sampler counted it for the
MAML paper: after the first round of ``E`` episodes, a task with fewer than ``E * T`` steps runs the fewest
more episodes that could make up the difference (at most ``E`` per round, on its own sub-envs) until it has
them, so the episodes a task gets follow the sequential rule "start another while short". The batch's episode
axis is then as long as the task with the most; the others are padded with empty episodes (``lengths`` 0).

A sub-env whose simulation became unstable (it reports ``info["unstable"]``, as the fast MuJoCo vector env
does for a non-finite state) ends its episode there and is counted in :meth:`VectorCollector.pop_stats`.

The backends (:mod:`metarl.collection.backends`) build this collector in the training process (``local``) or
in each worker (``subprocess``, ``ray``) from a :class:`CollectorSpec`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, get_args, runtime_checkable

import gymnasium as gym
import numpy as np
import torch
from gymnasium.envs.registration import load_env_creator
from gymnasium.vector import AutoresetMode, VectorEnv
from torch import Tensor

from metarl.collection.episodes import episode_batch, episodes_still_needed, pack_episodes, task_major
from metarl.config.choices import BatchUnit, Vectorization
from metarl.core.errors import ConfigError
from metarl.core.tasks import check_env_id, import_task_modules, make_env, unbuildable
from metarl.core.types import EpisodeBatch, Task

#: ``observations [N, E, obs_dim] -> actions [N, E, act_dim]``
PolicyFn = Callable[[Tensor], Tensor]
VECTORIZATION_MODES: tuple[str, ...] = get_args(Vectorization)
BATCH_UNITS: tuple[str, ...] = get_args(BatchUnit)
#: ``batch_unit="steps"``: rounds of extra episodes at most; a task still short after them is counted in
#: ``collector/budget_short`` (an ant falling at once needs about ``T / 10`` rounds, far fewer than this)
MAX_ROUNDS = 64


class SliceablePolicy(Protocol):
    """A :data:`PolicyFn` that pickles and can be cut into task slices (``agents.policies.TaskPolicy``).

    ``select(a, b)`` must act on tasks ``a..b-1`` exactly as the whole policy acts on them, so that workers
    holding slices of the meta-batch reproduce the in-process batch.
    """

    def __call__(self, observations: Tensor) -> Tensor:
        """``[n, E, obs_dim] -> [n, E, act_dim]``."""
        ...

    def select(self, start: int, stop: int) -> SliceablePolicy:
        """The policy of tasks ``start..stop-1``."""
        ...


class Collector(Protocol):
    """What learners and the training loop need of a collector (every backend satisfies it)."""

    num_tasks: int
    episodes_per_task: int
    horizon: int
    obs_dim: int
    act_dim: int

    def collect(self, tasks: Sequence[Task], policy: PolicyFn, seed: int) -> EpisodeBatch:
        """One episode per (task, episode) pair; sub-env ``n * E + e`` reset with ``seed + n * E + e``."""
        ...

    def pop_stats(self) -> dict[str, float]:
        """Counters since the last call (``collector/...`` metrics), then reset them."""
        ...

    def close(self) -> None:
        """Release envs, processes or actors."""
        ...


def make_vector_env(env_id: str, num_envs: int, mode: str = "auto") -> VectorEnv:
    """Build ``num_envs`` sub-envs of ``env_id``.

    Args:
        env_id: a registered id.
        num_envs: number of sub-envs.
        mode: ``auto`` (the env's ``vector_entry_point`` if it has one, else ``sync``),
            ``vector_entry_point``, ``sync`` or ``async`` (Gymnasium's vector envs with ``SAME_STEP``
            autoreset).
    """
    check_env_id(env_id)
    if mode not in VECTORIZATION_MODES:
        raise ConfigError(f"collector.vectorization: {mode!r} is not one of {list(VECTORIZATION_MODES)}")
    if mode == "auto":
        mode = "vector_entry_point" if gym.spec(env_id).vector_entry_point else "sync"
    if mode == "vector_entry_point":
        entry_point = gym.spec(env_id).vector_entry_point
        if not entry_point:
            raise ConfigError(f"collector.vectorization: {env_id!r} has no vector_entry_point; use 'sync'")
        creator = entry_point if callable(entry_point) else load_env_creator(entry_point)
        # a vector env that can leave finished sub-envs unsimulated (the fast MuJoCo one) is asked to do so
        kwargs: dict[str, Any] = (
            {"autoreset_mode": AutoresetMode.DISABLED} if _takes_autoreset_mode(creator) else {}
        )
    else:
        kwargs = {"vector_kwargs": {"autoreset_mode": AutoresetMode.SAME_STEP}}
    try:
        return gym.make_vec(env_id, num_envs, vectorization_mode=mode, **kwargs)
    except ImportError as exc:  # an env's optional package (e.g. Meta-World) is missing
        raise unbuildable(env_id, exc) from None


def _flat_size(space: gym.Space) -> int:
    """Entries of one element of ``space`` (the product of its shape).

    Raises:
        ConfigError: a space without a fixed shape (a ``Dict``, ``Graph`` or ``Sequence`` space).
    """
    if space.shape is None:
        raise ConfigError(f"the collector needs fixed-shape spaces, got {space}")
    return int(np.prod(space.shape))


@runtime_checkable
class _TaskSettable(Protocol):
    """A vector env that sets an attribute per sub-env (Gymnasium's own and metarl's fast ones do)."""

    def set_attr(self, name: str, values: list[Any]) -> None:
        """Set ``name`` on sub-env ``i`` to ``values[i]``."""
        ...


def _takes_autoreset_mode(creator: Callable) -> bool:
    try:
        return "autoreset_mode" in inspect.signature(creator).parameters
    except (TypeError, ValueError):  # no signature to read
        return False


class VectorCollector:
    """Collect padded, time-major episodes for ``num_tasks`` tasks x ``episodes_per_task`` episodes.

    Args:
        env: a vector env with ``num_tasks * episodes_per_task`` sub-envs whose base envs have a settable
            ``task``.
        num_tasks: ``N``.
        episodes_per_task: ``E``.
        horizon: ``T``; the sub-envs should end their episodes (truncate) by then.
        rescale_actions: the policy acts in ``[-1, 1]`` per dimension and the collector maps that onto the
            action space's bounds (as rllab's ``normalize`` env did for the MAML paper), so an initial std
            of 1 explores the whole range whatever its units. Either way actions are clipped to the bounds
            before stepping, and the batch stores the policy's unclipped samples.
        batch_unit: ``episodes`` (``E`` per task) or ``steps`` (at least ``E * T`` steps per task in whole
            episodes, module docstring).
    """

    def __init__(
        self,
        env: VectorEnv,
        num_tasks: int,
        episodes_per_task: int,
        horizon: int,
        rescale_actions: bool = True,
        batch_unit: str = "episodes",
    ) -> None:
        """See the class docstring."""
        if batch_unit not in BATCH_UNITS:
            raise ConfigError(f"collector.batch_unit: {batch_unit!r} is not one of {list(BATCH_UNITS)}")
        if num_tasks < 1 or episodes_per_task < 1 or horizon < 1:
            raise ConfigError(
                f"collector sizes must be >= 1, got num_tasks={num_tasks}, "
                f"episodes_per_task={episodes_per_task}, horizon={horizon}"
            )
        if env.num_envs != num_tasks * episodes_per_task:
            raise ConfigError(f"env has {env.num_envs} sub-envs, need {num_tasks} x {episodes_per_task}")
        disabled = env.metadata.get("autoreset_mode") == AutoresetMode.DISABLED
        if disabled and not env.metadata.get("frozen_when_finished"):
            raise ConfigError(
                "the collector needs autoreset mode SAME_STEP or NEXT_STEP, got DISABLED (allowed only for a "
                "vector env whose metadata says frozen_when_finished: stepping a finished sub-env is a no-op)"
            )
        if not isinstance(env, _TaskSettable):
            raise ConfigError(
                f"the collector sets tasks with VectorEnv.set_attr; {type(env).__name__} has none"
            )
        self.env = env
        self._set_attr = env.set_attr
        self.num_tasks = num_tasks
        self.episodes_per_task = episodes_per_task
        self.horizon = horizon
        space = env.single_action_space
        if not isinstance(space, gym.spaces.Box):
            raise ConfigError(f"the collector needs a Box action space, got {type(space).__name__}")
        self._low = np.asarray(space.low, dtype=np.float32)
        self._high = np.asarray(space.high, dtype=np.float32)
        if rescale_actions and not (np.isfinite(self._low).all() and np.isfinite(self._high).all()):
            raise ConfigError(
                "collector.rescale_actions: the action space has infinite bounds; set it to false"
            )
        self._scale = (self._high - self._low) / 2 if rescale_actions else np.ones_like(self._low)
        self._center = (self._high + self._low) / 2 if rescale_actions else np.zeros_like(self._low)
        self.obs_dim = _flat_size(env.single_observation_space)
        self.act_dim = _flat_size(space)
        self.batch_unit = batch_unit
        #: episodes record ``info["success"]`` (any step) as :attr:`EpisodeBatch.successes`
        self.reports_success = bool(env.metadata.get("reports_success", False))
        # a sub-env that is not reset stays finished and costs nothing (the fast MuJoCo envs); elsewhere an
        # extra round resets every sub-env and ignores those it does not need
        self._masked_resets = disabled
        self._unstable_resets = 0
        self._extra_episodes = 0
        self._budget_short = 0

    def pop_stats(self) -> dict[str, float]:
        """Counters since the last call, then reset.

        ``collector/unstable_resets``: episodes ended by an unstable simulation;
        ``collector/worker_restarts``: always 0 here (the worker backends count theirs); with
        ``batch_unit="steps"`` also ``collector/extra_episodes`` (episodes beyond ``E`` per task, all tasks)
        and ``collector/budget_short`` (tasks still short of ``E * T`` steps after :data:`MAX_ROUNDS`).
        """
        stats = {"collector/unstable_resets": float(self._unstable_resets), "collector/worker_restarts": 0.0}
        if self.batch_unit == "steps":
            stats["collector/extra_episodes"] = float(self._extra_episodes)
            stats["collector/budget_short"] = float(self._budget_short)
        self._unstable_resets = self._extra_episodes = self._budget_short = 0
        return stats

    def env_actions(self, actions: np.ndarray) -> np.ndarray:
        """Map policy outputs ``[..., act_dim]`` to env actions (rescaled if enabled, then clipped)."""
        return np.clip(self._center + self._scale * actions, self._low, self._high)

    def set_tasks(self, tasks: Sequence[Task]) -> None:
        """Give each sub-env its task (one value per sub-env, so ``set_attr``, never ``call``)."""
        if len(tasks) != self.num_tasks:
            raise ValueError(f"expected {self.num_tasks} tasks, got {len(tasks)}")
        self._set_attr("task", [task for task in tasks for _ in range(self.episodes_per_task)])

    @torch.no_grad()
    def collect(self, tasks: Sequence[Task], policy: PolicyFn, seed: int) -> EpisodeBatch:
        """Run one episode per sub-env.

        Args:
            tasks: the ``N`` tasks.
            policy: ``observations [N, E, obs_dim] -> actions [N, E, act_dim]`` (float32).
            seed: seeds the sub-envs' resets (sub-env ``i`` gets ``seed + i``).

        Returns:
            An :class:`EpisodeBatch` with shapes ``[N, T, E, ...]``; with ``batch_unit="steps"``,
            ``[N, T, E', ...]`` with ``E' >= E`` the most episodes any task got (extra round ``r`` resets
            sub-env ``i`` with ``seed + r * N * E + i``).
        """
        threads = torch.get_num_threads()
        # One policy call per step on a few hundred rows is too small to split: extra threads only spin, and
        # with another process on the cores they slowed collection 15x here. Restored on return.
        torch.set_num_threads(1)
        try:
            return self._collect(tasks, policy, seed)
        finally:
            torch.set_num_threads(threads)

    def _collect(self, tasks: Sequence[Task], policy: PolicyFn, seed: int) -> EpisodeBatch:
        n, e, horizon = self.num_tasks, self.episodes_per_task, self.horizon
        self.set_tasks(tasks)
        rounds = [self._round(policy, seed, np.ones(n * e, dtype=bool))]
        if self.batch_unit == "episodes":
            return episode_batch(task_major(rounds, n, e))
        steps = rounds[0]["lengths"].reshape(n, e).sum(axis=1)
        for r in range(1, MAX_ROUNDS + 1):
            need = episodes_still_needed(steps, e, horizon)
            if not need.any():
                break
            active = (np.arange(e)[None, :] < need[:, None]).reshape(-1)
            rounds.append(self._round(policy, seed + r * n * e, active))
            steps = steps + rounds[-1]["lengths"].reshape(n, e).sum(axis=1)
            self._extra_episodes += int(need.sum())
        self._budget_short += int((steps < e * horizon).sum())
        return episode_batch(pack_episodes(task_major(rounds, n, e)))

    def _round(self, policy: PolicyFn, seed: int, active: np.ndarray) -> dict[str, np.ndarray]:
        """One episode on each ``active [N*E]`` sub-env; time-major arrays ``[T, N*E, ...]`` and lengths."""
        n, e, horizon = self.num_tasks, self.episodes_per_task, self.horizon
        if active.all() or not self._masked_resets:
            obs, _ = self.env.reset(seed=seed)
        else:
            obs, _ = self.env.reset(seed=seed, options={"reset_mask": active})
        observations = np.zeros((horizon, n * e, self.obs_dim), dtype=np.float32)
        actions = np.zeros((horizon, n * e, self.act_dim), dtype=np.float32)
        rewards = np.zeros((horizon, n * e), dtype=np.float32)
        mask = np.zeros((horizon, n * e), dtype=np.float32)
        succeeded = np.zeros(n * e, dtype=bool)
        alive = active.copy()
        for t in range(horizon):
            # finished rows are padding: zeros, whatever the env returns for them (a frozen last
            # observation, a new episode's, or NaN after an unstable step)
            observations[t] = np.where(alive[:, None], obs.reshape(n * e, -1), 0.0)
            action = policy(torch.from_numpy(observations[t]).view(n, e, -1)).reshape(n * e, -1).numpy()
            actions[t] = np.where(alive[:, None], action, 0.0)
            mask[t] = alive
            obs, reward, terminated, truncated, info = self.env.step(self.env_actions(action))
            rewards[t] = np.where(alive, reward, 0.0)
            if self.reports_success and "success" in info:
                succeeded |= (
                    (np.asarray(info["success"], dtype=float) > 0) & info.get("_success", True) & alive
                )
            if "unstable" in info:
                unstable = np.asarray(info["unstable"], dtype=bool) & info.get("_unstable", True) & alive
                self._unstable_resets += int(unstable.sum())
                terminated = terminated | unstable
            alive &= ~(terminated | truncated)
            if not alive.any():
                break
        batch = {"observations": observations, "actions": actions, "rewards": rewards, "mask": mask,
                 "lengths": mask.sum(axis=0).astype(np.int64)}  # fmt: skip
        if self.reports_success:
            batch["successes"] = succeeded.astype(np.float32)
        return batch

    def close(self) -> None:
        """Close the vector env."""
        self.env.close()


@dataclass(frozen=True)
class CollectorSpec:
    """How to build a :class:`VectorCollector` anywhere: plain data that worker processes and actors receive.

    Attributes:
        env_id: a registered id (registered in the worker by importing ``imports`` first).
        episodes_per_task: ``E``.
        vectorization: see :func:`make_vector_env`.
        rescale_actions: see :class:`VectorCollector`.
        imports: modules or ``.py`` files that register ``env_id``
        (``metarl.core.tasks.import_task_modules``).
        batch_unit: see :class:`VectorCollector` (the worker backends take ``episodes`` only).
    """

    env_id: str
    episodes_per_task: int
    vectorization: str = "auto"
    rescale_actions: bool = True
    imports: tuple[str, ...] = ()
    batch_unit: str = "episodes"

    def build(self, num_tasks: int) -> VectorCollector:
        """Import the task modules and build a collector for ``num_tasks`` tasks."""
        import_task_modules(list(self.imports))
        return make_collector(
            self.env_id, num_tasks, self.episodes_per_task, self.vectorization,
            rescale_actions=self.rescale_actions, batch_unit=self.batch_unit,
        )  # fmt: skip

    def env_facts(self) -> tuple[int, int, int, bool]:
        """``(obs_dim, act_dim, horizon, reports_success)`` of ``env_id``, read from one single env."""
        import_task_modules(list(self.imports))
        check_env_id(self.env_id)
        horizon = gym.spec(self.env_id).max_episode_steps
        if horizon is None:
            raise ConfigError(f"env.id: {self.env_id!r} has no max_episode_steps; the collector needs one")
        env = make_env(self.env_id)
        facts = (_flat_size(env.observation_space), _flat_size(env.action_space), horizon)
        reports_success = bool(env.metadata.get("reports_success", False))
        env.close()
        return (*facts, reports_success)


def make_collector(
    env_id: str,
    num_tasks: int,
    episodes_per_task: int,
    mode: str = "auto",
    horizon: int | None = None,
    rescale_actions: bool = True,
    batch_unit: str = "episodes",
) -> VectorCollector:
    """Build a :class:`VectorCollector` for a registered id (horizon: the id's ``max_episode_steps``)."""
    check_env_id(env_id)
    horizon = horizon or gym.spec(env_id).max_episode_steps
    if horizon is None:
        raise ConfigError(f"env.id: {env_id!r} has no max_episode_steps; the collector needs a fixed horizon")
    env = make_vector_env(env_id, num_tasks * episodes_per_task, mode)
    return VectorCollector(env, num_tasks, episodes_per_task, horizon, rescale_actions, batch_unit)
