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

from metarl.checkpoint import load_checkpoint, save_checkpoint
from metarl.config import Config, config_to_dict
from metarl.core.errors import Stopped, WriteError, resume_note
from metarl.core.seeding import evaluation_generators, training_generators
from metarl.logging import CSVSink, Logger, MetricSink, TensorBoardSink
from metarl.stopping import StopRequest

#: what ``adaptation.csv`` calls the value of each task kind, and the figure's axis label
METRIC_NAMES = {"regression": ("mse", "mean squared error"), "classification": ("accuracy", "accuracy")}


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
        return TaskBatch(
            tuple(t.to(device) for t in self.support), tuple(t.to(device) for t in self.query), self.tasks
        )


class FewShotTasks(Protocol):
    """A few-shot task distribution (``envs.fewshot`` classes satisfy it)."""

    kind: str

    def sample(self, n: int, rng: np.random.Generator, *, split: str, shots: int, query_shots: int) -> Any:
        """Arrays ``support_inputs``, ``support_targets``, ``query_inputs``, ``query_targets``, ``tasks``."""
        ...


class FewShotLearner(Protocol):
    """What the loop needs of a learner (``agents.maml_supervised.SupervisedMAML`` satisfies it)."""

    model: nn.Module
    optimizer: torch.optim.Optimizer

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


def _checkpoint(learner: FewShotLearner, config: Config, iteration: int, rng: np.random.Generator) -> dict:
    return {
        "iteration": iteration,
        "policy": {k: v.detach().clone() for k, v in learner.model.state_dict().items()},
        "optimizer": learner.optimizer.state_dict(),
        "config": config_to_dict(config),
        "numpy_rng": rng.bit_generator.state,
    }


def train_fewshot(
    config: Config, run_dir: str | Path, learner: FewShotLearner, tasks: FewShotTasks, resume: bool = False
) -> dict[str, float]:
    """Meta-train for ``config.meta.iterations`` on ``train``-split tasks, checkpointing ``latest.pt``.

    Resuming restores the model, Adam's state and the task generator, and drops ``metrics.csv`` rows
    after the checkpoint, so it repeats what an unstopped run would have done. SIGINT or SIGTERM stops it
    after the current iteration, checkpointed, as :func:`metarl.training.train`.

    Returns:
        The metrics of the last iteration (empty if there was nothing left to do).
    """
    from tqdm import tqdm

    root = Path(run_dir)
    latest = root / "checkpoints" / "latest.pt"
    rng, _ = training_generators(config.seed)
    start = 0
    if resume:
        state = load_checkpoint(latest)
        learner.model.load_state_dict(state["policy"])
        learner.optimizer.load_state_dict(state["optimizer"])
        rng.bit_generator.state = state["numpy_rng"]
        start = int(state["iteration"])
    sinks: list[MetricSink] = [CSVSink(root / "metrics.csv", resume_iteration=start if resume else None)]
    if config.logging.tensorboard:
        sinks.append(TensorBoardSink(root / "tensorboard", purge_step=start + 1 if resume else None))
    logger = Logger(sinks)
    metrics: dict[str, float] = {}
    bar = tqdm(
        total=config.meta.iterations, initial=start, disable=not config.logging.progress, dynamic_ncols=True
    )
    total = config.meta.iterations
    saved = start  # the iteration latest.pt holds (0: none yet)
    try:
        with StopRequest() as stop:
            for iteration in range(start + 1, total + 1):
                begin = time.perf_counter()
                numpy_batch = tasks.sample(
                    config.meta.batch_size,
                    rng,
                    split="train",
                    shots=config.data.shots,
                    query_shots=config.data.query_shots,
                )
                batch = as_task_batch(numpy_batch)
                update_begin = time.perf_counter()
                metrics = learner.step(batch)
                metrics["time/sampling"] = update_begin - begin
                metrics["time/meta_update"] = time.perf_counter() - update_begin
                metrics["time/iteration"] = time.perf_counter() - begin
                logger.write(iteration, metrics)
                stopping = stop.signum is not None
                if stopping or iteration % config.logging.checkpoint_every == 0 or iteration == total:
                    save_checkpoint(latest, _checkpoint(learner, config, iteration, rng))
                    saved = iteration
                bar.update(1)
                if iteration % 50 == 0 or iteration == total:
                    bar.set_postfix_str(
                        f"query loss before {metrics['meta/loss_before']:.3f} "
                        f"after {metrics['meta/loss_after']:.3f}"
                    )
                if stopping:
                    raise Stopped(stop.signum, iteration, total, str(root))
            if stop.signum is not None and start < total:  # the signal came after the last check
                raise Stopped(stop.signum, total, total, str(root))
    except BaseException as exc:
        bar.close()
        logger.close(quiet=True)
        if isinstance(exc, WriteError):
            raise exc.with_note(resume_note(latest, saved, root)) from exc
        raise
    bar.close()
    logger.close()
    return metrics


def fewshot_adaptation_curve(
    learner: FewShotLearner, tasks: FewShotTasks, config: Config, chunk: int = 50
) -> tuple[Tensor, list[Any]]:
    """Query metric on ``evaluation.tasks`` new ``test``-split tasks after ``0..evaluation.steps`` steps.

    Tasks come from the evaluation stream of ``evaluation.seed`` in chunks of ``chunk`` (so memory stays
    bounded), with ``evaluation.shots`` support and ``evaluation.query_shots`` query examples per class.

    Returns:
        ``([tasks, steps + 1]`` mean squared error or accuracy, the task descriptions``)``.
    """
    rng, _ = evaluation_generators(config.evaluation.seed)
    shots, query_shots = config.evaluation_shots
    columns, described = [], []
    remaining = config.evaluation.tasks
    while remaining > 0:
        n = min(chunk, remaining)
        batch = as_task_batch(tasks.sample(n, rng, split="test", shots=shots, query_shots=query_shots))
        columns.append(learner.adaptation_metrics(batch, config.evaluation_step_sizes))
        described += batch.tasks
        remaining -= n
    return torch.cat(columns), described


def evaluate_fewshot(
    learner: FewShotLearner, tasks: FewShotTasks, config: Config, out_dir: str | Path
) -> dict[str, Any]:
    """Write ``adaptation.csv/json/png`` for a few-shot run (see :func:`fewshot_adaptation_curve`)."""
    from metarl.evaluation import write_adaptation_files

    curve, described = fewshot_adaptation_curve(learner, tasks, config)
    value_name, label = METRIC_NAMES[tasks.kind]
    shots, query_shots = config.evaluation_shots
    meta = {
        "dataset": config.data.dataset,
        "metric": value_name,
        "ways": config.data.ways if tasks.kind == "classification" else None,
        "shots": shots,
        "query_shots": query_shots,
        "seed": config.evaluation.seed,
        "step_sizes": config.evaluation_step_sizes,
        "learned_step_sizes": config.inner.learn_step_size,
    }
    title = f"{config.data.dataset} {shots}-shot" + (
        f" {config.data.ways}-way" if tasks.kind == "classification" else ""
    )
    return write_adaptation_files(
        out_dir, {config.method_name: curve}, described, meta, value_name=value_name, label=label, title=title
    )
