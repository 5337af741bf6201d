"""Containers and protocols that cross module boundaries.

Glossary:
    task: one member of a task distribution (e.g. a goal velocity), a small frozen dataclass owned by
        ``envs``.
    support: episodes (or examples) that the inner update adapts on.
    query: episodes (or examples) that the outer (meta) loss is computed on, after adaptation.
    inner: the adaptation step(s), a vanilla policy gradient in RL; meta: the outer update (TRPO in RL).

Axis order everywhere: task ``N``, time ``T``, parallel episodes ``E``, then features.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import Tensor

Task = Any


@dataclass(frozen=True)
class EpisodeBatch:
    """Padded, time-major episodes of every task of a meta-batch.

    Steps after an episode ended are padding: ``mask`` is 0 there and observations, actions and rewards are 0.

    Attributes:
        observations: ``[N, T, E, obs_dim]`` float32, the observation each action was taken in.
        actions: ``[N, T, E, act_dim]`` float32, the policy's samples (before clipping to the action space).
        rewards: ``[N, T, E]`` float32.
        mask: ``[N, T, E]`` float32, 1 for real steps.
        lengths: ``[N, E]`` int64, the number of real steps of each episode.
        successes: ``[N, E]`` float32, 1 for an episode that solved its task at some step (envs whose
            metadata says ``reports_success``, e.g. Meta-World's); ``None`` for envs without success.
    """

    observations: Tensor
    actions: Tensor
    rewards: Tensor
    mask: Tensor
    lengths: Tensor
    successes: Tensor | None = None

    @property
    def num_tasks(self) -> int:
        """``N``."""
        return self.rewards.shape[0]

    @property
    def horizon(self) -> int:
        """``T``."""
        return self.rewards.shape[1]

    @property
    def num_episodes(self) -> int:
        """``E``, episodes per task."""
        return self.rewards.shape[2]

    def episode_returns(self) -> Tensor:
        """Undiscounted return of each episode, ``[N, E]`` (0 for an empty padding episode)."""
        return (self.rewards * self.mask).sum(dim=1)

    def mean_returns(self) -> Tensor:
        """Mean undiscounted return of each task's episodes, ``[N]``.

        Empty episodes (``lengths`` 0: padding of a batch counted in env steps) are left out.
        """
        returns, real = self.episode_returns(), self.lengths > 0
        if bool(real.all()):
            return returns.mean(dim=1)
        weights = real.to(returns.dtype)
        return (returns * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)

    def mean_episode_return(self) -> float:
        """Mean undiscounted return over every real episode of the batch (empty ones left out)."""
        return self.episode_returns()[self.lengths > 0].mean().item()

    def success_rate(self) -> float | None:
        """The fraction of real episodes that succeeded (``None`` without ``successes``)."""
        if self.successes is None:
            return None
        return self.successes[self.lengths > 0].mean().item()

    def task_success_rates(self) -> Tensor | None:
        """``[N]``: each task's fraction of real episodes that succeeded (``None`` without ``successes``)."""
        if self.successes is None:
            return None
        real = (self.lengths > 0).to(self.successes.dtype)
        return (self.successes * real).sum(dim=1) / real.sum(dim=1).clamp_min(1.0)

    def to(self, device: torch.device | str) -> EpisodeBatch:
        """Copy every tensor to ``device``."""
        successes = None if self.successes is None else self.successes.to(device)
        return EpisodeBatch(
            self.observations.to(device), self.actions.to(device), self.rewards.to(device),
            self.mask.to(device), self.lengths.to(device), successes,
        )  # fmt: skip


@dataclass(frozen=True)
class MetaBatch:
    """Everything one meta-update needs.

    Attributes:
        tasks: the ``N`` tasks.
        support: one :class:`EpisodeBatch` per inner step, collected with the parameters adapted so far.
        query: episodes collected with the fully adapted parameters.
        timings: seconds spent collecting (``time/sampling``) and adapting (``time/adaptation``).
    """

    tasks: list[Task]
    support: tuple[EpisodeBatch, ...]
    query: EpisodeBatch
    timings: dict[str, float] = field(default_factory=dict)

    def to(self, device: torch.device | str) -> MetaBatch:
        """Copy every episode batch to ``device``."""
        return MetaBatch(
            self.tasks, tuple(b.to(device) for b in self.support), self.query.to(device), self.timings
        )


class Adapter(Protocol):
    """What the adaptation curve and ``metarl render`` need of a learner (``MAMLTRPO`` satisfies it).

    ``policy_fn`` returns a collector policy (``observations [N, E, obs_dim] -> actions [N, E, act_dim]``).
    """

    def initial_params(self, num_tasks: int) -> dict[str, Tensor]:
        """Meta-parameters with a task axis ``[N, ...]``."""
        ...

    def policy_fn(
        self, params: dict[str, Tensor], generator: torch.Generator, deterministic: bool = False
    ) -> Callable[[Tensor], Tensor]:
        """A sampling policy for the collector (``deterministic``: it takes the mean action)."""
        ...

    def adapt(self, params: dict[str, Tensor], batch: EpisodeBatch, step_size: float) -> dict[str, Tensor]:
        """One inner step per task."""
        ...
