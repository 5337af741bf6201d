"""The meta-training loop: sample tasks, collect, meta-update, log, checkpoint; then the adaptation curve.

Generic over the learner (anything with ``policy``, ``sample`` and ``step``);
``metarl.cli`` builds the pieces.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from metarl.checkpoint import load_checkpoint, save_checkpoint
from metarl.collect import VectorCollector
from metarl.config import Config, config_to_dict
from metarl.logging import CSVSink, Logger, MetricSink, TensorBoardSink
from metarl.seeding import training_generators
from metarl.tasks import TaskDistribution
from metarl.types import MetaBatch, Task


class MetaLearner(Protocol):
    """What the loop needs of a learner (``agents.maml_trpo.MAMLTRPO`` satisfies it)."""

    policy: nn.Module

    def sample(
        self,
        collector: VectorCollector,
        tasks: list[Task],
        rng: np.random.Generator,
        generator: torch.Generator,
    ) -> MetaBatch:
        """Collect a meta-batch."""
        ...

    def step(self, meta_batch: MetaBatch) -> dict[str, float]:
        """Meta-update; return flat float metrics."""
        ...


@dataclass
class RunPaths:
    """The files of a run directory."""

    root: Path

    @property
    def config(self) -> Path:
        """Resolved ``config.yaml``."""
        return self.root / "config.yaml"

    @property
    def metrics(self) -> Path:
        """``metrics.csv``, a row per iteration."""
        return self.root / "metrics.csv"

    @property
    def latest(self) -> Path:
        """``checkpoints/latest.pt``."""
        return self.root / "checkpoints" / "latest.pt"

    @property
    def best(self) -> Path:
        """``checkpoints/best.pt``: the policy whose post-adaptation return on its meta-batch was highest."""
        return self.root / "checkpoints" / "best.pt"


def _checkpoint(
    learner: MetaLearner,
    config: Config,
    iteration: int,
    rng: np.random.Generator,
    gen: torch.Generator,
    best: float,
) -> dict[str, Any]:
    return {
        "iteration": iteration,
        "policy": {k: v.detach().clone() for k, v in learner.policy.state_dict().items()},
        "config": config_to_dict(config),
        "numpy_rng": rng.bit_generator.state,
        "torch_rng": gen.get_state(),
        "best_return": best,
    }


def _progress(total: int, initial: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, disable=not enabled, unit="it", dynamic_ncols=True)


def train(
    config: Config,
    run_dir: str | Path,
    learner: MetaLearner,
    collector: VectorCollector,
    distribution: TaskDistribution,
    resume: bool = False,
) -> dict[str, float]:
    """Meta-train until ``config.meta.iterations``, resuming from ``checkpoints/latest.pt`` if ``resume``.

    A resumed run repeats exactly what an unstopped run would have done: the policy and both generators are
    restored, and ``metrics.csv`` rows after the checkpoint are dropped.

    Returns:
        The metrics of the last iteration (empty if there was nothing left to do).
    """
    paths = RunPaths(Path(run_dir))
    rng, gen = training_generators(config.seed)
    start, best = 0, -math.inf
    if resume:
        state = load_checkpoint(paths.latest)
        learner.policy.load_state_dict(state["policy"])
        rng.bit_generator.state = state["numpy_rng"]
        gen.set_state(state["torch_rng"])
        start, best = int(state["iteration"]), float(state["best_return"])
    sinks: list[MetricSink] = [CSVSink(paths.metrics, resume_iteration=start if resume else None)]
    if config.logging.tensorboard:
        sinks.append(TensorBoardSink(paths.root / "tensorboard", purge_step=start + 1 if resume else None))
    logger = Logger(sinks)
    metrics: dict[str, float] = {}
    bar = _progress(config.meta.iterations, start, config.logging.progress)
    try:
        for iteration in range(start + 1, config.meta.iterations + 1):
            begin = time.perf_counter()
            tasks = distribution.sample_tasks(config.meta.batch_size, rng)
            meta_batch = learner.sample(collector, tasks, rng, gen)
            # the policy that collected this iteration's episodes, kept in case its return is the best so far
            sampled_policy = {k: v.detach().clone() for k, v in learner.policy.state_dict().items()}
            update_begin = time.perf_counter()
            metrics = learner.step(meta_batch)
            metrics.update(meta_batch.timings)
            metrics["time/meta_update"] = time.perf_counter() - update_begin
            metrics["time/iteration"] = time.perf_counter() - begin
            logger.write(iteration, metrics)
            after = metrics["meta/return_after"]
            if after > best:
                best = after
                state = _checkpoint(learner, config, iteration, rng, gen, best)
                save_checkpoint(paths.best, {**state, "policy": sampled_policy, "iteration": iteration - 1})
            if iteration % config.logging.checkpoint_every == 0 or iteration == config.meta.iterations:
                save_checkpoint(paths.latest, _checkpoint(learner, config, iteration, rng, gen, best))
            bar.update(1)
            bar.set_postfix_str(
                f"before {metrics['meta/return_before']:.1f} after {after:.1f} "
                f"kl {metrics['trpo/kl']:.4f} {metrics['time/iteration']:.1f}s/it"
            )
    finally:
        bar.close()
        logger.close()
    return metrics
