"""Supervised few-shot meta-training and evaluation: the loop, generic over the learner and the tasks.

``metarl.cli`` builds the task distribution (``envs.fewshot``) and the learner
(``agents.maml_supervised.SupervisedMAML``); this module only needs the two protocols below.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor, nn

from metarl.config import FewShotConfig, config_to_dict
from metarl.core.seeding import training_generators
from metarl.training.loop import RunPaths, loop_settings, run_loop


@dataclass(frozen=True)
class TaskBatch:
    """A few-shot meta-batch as tensors.

    Attributes:
        support: ``(inputs [N, S, *x], targets [N, S, ...])``.
        query: ``(inputs [N, Q, *x], targets [N, Q, ...])``.
        tasks: the ``N`` task descriptions.
    """

    support: tuple[Tensor, Tensor]
    query: tuple[Tensor, Tensor]
    tasks: tuple[Any, ...]

    def __len__(self) -> int:
        return self.support[0].shape[0]

    def to(self, device: torch.device | str) -> TaskBatch:
        """The same batch on ``device``."""
        (x, y), (qx, qy) = self.support, self.query
        return TaskBatch((x.to(device), y.to(device)), (qx.to(device), qy.to(device)), self.tasks)


class FewShotTasks(Protocol):
    """A few-shot task distribution (``envs.fewshot`` classes satisfy it)."""

    kind: str

    def sample(self, n: int, rng: np.random.Generator, *, split: str, shots: int, query_shots: int) -> Any:
        """Arrays ``support_inputs``, ``support_targets``, ``query_inputs``, ``query_targets``, ``tasks``."""
        ...


class FewShotLearner(Protocol):
    """What the loop needs of a learner (``agents.maml_supervised.SupervisedMAML`` satisfies it)."""

    @property
    def model(self) -> nn.Module:
        """The meta-learned net (read here; the learner may hold a narrower module type)."""
        ...

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        """The outer optimiser, whose state goes into the checkpoint."""
        ...

    def step(self, batch: TaskBatch) -> dict[str, float]:
        """Meta-update; flat float metrics."""
        ...

    def adaptation_metrics(self, batch: TaskBatch, step_sizes: Sequence[float]) -> Tensor:
        """``[N, k + 1]`` query metric after ``0..k`` inner steps."""
        ...


def as_task_batch(batch: Any) -> TaskBatch:
    """NumPy support/query arrays (``envs.fewshot.FewShotBatch``) -> :class:`TaskBatch` (no copy)."""
    return TaskBatch(
        (torch.from_numpy(batch.support_inputs), torch.from_numpy(batch.support_targets)),
        (torch.from_numpy(batch.query_inputs), torch.from_numpy(batch.query_targets)),
        tuple(batch.tasks),
    )


def _checkpoint(
    learner: FewShotLearner, config: FewShotConfig, iteration: int, rng: np.random.Generator
) -> dict:
    return {
        "iteration": iteration,
        "policy": {k: v.detach().clone() for k, v in learner.model.state_dict().items()},
        "optimizer": learner.optimizer.state_dict(),
        "config": config_to_dict(config),
        "numpy_rng": rng.bit_generator.state,
    }


class FewShotWork:
    """One few-shot meta-iteration for :func:`~metarl.training.loop.run_loop`."""

    def __init__(self, config: FewShotConfig, learner: FewShotLearner, tasks: FewShotTasks) -> None:
        self.config, self.learner, self.tasks = config, learner, tasks
        self.rng, _ = training_generators(config.seed)

    def iterate(self, iteration: int) -> dict[str, float]:
        """Sample ``meta.batch_size`` ``train``-split tasks and take one meta-update."""
        begin = time.perf_counter()
        data = self.config.data
        numpy_batch = self.tasks.sample(
            self.config.meta.batch_size,
            self.rng,
            split="train",
            shots=data.shots,
            query_shots=data.query_shots,
        )
        batch = as_task_batch(numpy_batch)
        update_begin = time.perf_counter()
        metrics = self.learner.step(batch)
        metrics["time/sampling"] = update_begin - begin
        metrics["time/meta_update"] = time.perf_counter() - update_begin
        return metrics

    def record(self, iteration: int, metrics: dict[str, float]) -> None:
        """Nothing beyond ``latest.pt``."""

    def state(self, iteration: int) -> dict[str, Any]:
        """``latest.pt``: the model, Adam's state and the task generator."""
        return _checkpoint(self.learner, self.config, iteration, self.rng)

    def restore(self, state: dict[str, Any]) -> None:
        """Load ``latest.pt``'s model, Adam's state and task generator."""
        self.learner.model.load_state_dict(state["policy"])
        self.learner.optimizer.load_state_dict(state["optimizer"])
        self.rng.bit_generator.state = state["numpy_rng"]

    def progress_text(self, iteration: int, metrics: dict[str, float]) -> str | None:
        """The query loss before and after adaptation, every 50 iterations."""
        if iteration % 50 and iteration != self.config.meta.iterations:
            return None
        return f"query loss before {metrics['meta/loss_before']:.3f} after {metrics['meta/loss_after']:.3f}"


def train_fewshot(
    config: FewShotConfig,
    run_dir: str | Path,
    learner: FewShotLearner,
    tasks: FewShotTasks,
    resume: bool = False,
) -> dict[str, float]:
    """Meta-train for ``config.meta.iterations`` on ``train``-split tasks, checkpointing ``latest.pt``.

    Resuming restores the model, Adam's state and the task generator, and drops ``metrics.csv`` rows
    after the checkpoint, so it repeats what an unstopped run would have done. SIGINT or SIGTERM stops it
    after the current iteration, checkpointed, as :func:`metarl.training.rl.train`.

    Returns:
        The metrics of the last iteration (empty if there was nothing left to do).
    """
    return run_loop(
        FewShotWork(config, learner, tasks), RunPaths(Path(run_dir)), loop_settings(config), resume
    )
