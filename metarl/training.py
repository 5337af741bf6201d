"""The meta-training loop: sample tasks, collect, meta-update, log, checkpoint; then the adaptation curve.

Generic over the learner (anything with ``policy``, ``sample`` and ``step``);
``metarl.cli`` builds the pieces.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from metarl.checkpoint import load_checkpoint, save_checkpoint
from metarl.collection import Collector
from metarl.config import Config, config_to_dict
from metarl.core.errors import NonFiniteError, Stopped, WriteError, resume_note
from metarl.core.seeding import training_generators
from metarl.core.tasks import TaskDistribution
from metarl.core.types import MetaBatch, Task
from metarl.logging import CSVSink, Logger, MetricSink, TensorBoardSink
from metarl.stopping import StopRequest


class MetaLearner(Protocol):
    """What the loop needs of a learner (``agents.maml_trpo.MAMLTRPO`` satisfies it)."""

    policy: nn.Module

    def sample(
        self,
        collector: Collector,
        tasks: list[Task],
        rng: np.random.Generator,
        generator: torch.Generator,
    ) -> MetaBatch:
        """Collect a meta-batch."""
        ...

    def step(self, meta_batch: MetaBatch) -> dict[str, float]:
        """Meta-update; return flat float metrics."""
        ...

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Everything meta-learned (the policy, and e.g. learned step sizes), detached copies."""
        ...

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Load what :meth:`state_dict` returned."""
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
        "policy": learner.state_dict(),
        "config": config_to_dict(config),
        "numpy_rng": rng.bit_generator.state,
        "torch_rng": gen.get_state(),
        "best_return": best,
    }


def non_finite_quantity(meta_batch: MetaBatch) -> str | None:
    """The first of observations, actions, rewards (support then query) holding NaN or inf, else None."""
    for name in ("observations", "actions", "rewards"):
        for batch in (*meta_batch.support, meta_batch.query):
            if not torch.isfinite(getattr(batch, name)).all():
                return name
    return None


def sample_and_step(
    learner: MetaLearner,
    collector: Collector,
    tasks: list[Task],
    rng: np.random.Generator,
    gen: torch.Generator,
    iteration: int,
    paths: RunPaths,
) -> dict[str, float]:
    """Collect a meta-batch and meta-update; on NaN or inf, collect again once, then stop.

    Non-finite episodes, or a learner that raises :class:`NonFiniteError` (advantages, gradient, parameters;
    it leaves the policy untouched then), get one more collection with fresh draws from ``rng`` and ``gen``
    (so a resumed run repeats it). A second failure raises, naming the quantity and the iteration; the
    checkpoints on disk are those of earlier iterations.

    Returns:
        The learner's metrics plus timings and ``collector/*`` counters (``collector/recollections``).
    """
    problem = ""
    stats: dict[str, float] = {}
    for attempt in range(2):
        meta_batch = learner.sample(collector, tasks, rng, gen)
        for name, count in collector.pop_stats().items():  # both attempts count
            stats[name] = stats.get(name, 0.0) + count
        quantity = non_finite_quantity(meta_batch)
        update_begin = time.perf_counter()
        if quantity is None:
            try:
                metrics = learner.step(meta_batch)
            except NonFiniteError as exc:
                quantity = exc.quantity
        if quantity is None:
            metrics.update(meta_batch.timings)
            metrics.update(stats)
            metrics["collector/recollections"] = float(attempt)
            metrics["time/meta_update"] = time.perf_counter() - update_begin
            return metrics
        if attempt == 0:
            problem = quantity
            warnings.warn(
                f"iteration {iteration}: {quantity} hold NaN or inf; collecting this iteration's episodes "
                "again once",
                RuntimeWarning,
                stacklevel=2,
            )
    kept = (
        f"the last good checkpoint {paths.latest} is kept"
        if paths.latest.is_file()
        else "no checkpoint had been written yet"
    )
    raise NonFiniteError(
        quantity,
        f"iteration {iteration}: {quantity} hold NaN or inf (first {problem}, then {quantity} again after "
        f"collecting once more); {kept}",
    )


def _progress(total: int, initial: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, disable=not enabled, unit="it", dynamic_ncols=True)


def train(
    config: Config,
    run_dir: str | Path,
    learner: MetaLearner,
    collector: Collector,
    distribution: TaskDistribution,
    resume: bool = False,
) -> dict[str, float]:
    """Meta-train until ``config.meta.iterations``, resuming from ``checkpoints/latest.pt`` if ``resume``.

    A resumed run repeats exactly what an unstopped run would have done: the policy and both generators are
    restored, and ``metrics.csv`` rows after the checkpoint are dropped.

    SIGINT or SIGTERM (:class:`metarl.stopping.StopRequest`) lets the current iteration finish, writes
    ``latest.pt`` for it and raises :class:`metarl.core.errors.Stopped`; a second signal stops at once.

    Returns:
        The metrics of the last iteration (empty if there was nothing left to do).
    """
    paths = RunPaths(Path(run_dir))
    rng, gen = training_generators(config.seed)
    start, best = 0, -math.inf
    if resume:
        state = load_checkpoint(paths.latest)
        learner.load_state_dict(state["policy"])
        rng.bit_generator.state = state["numpy_rng"]
        gen.set_state(state["torch_rng"])
        start, best = int(state["iteration"]), float(state["best_return"])
    sinks: list[MetricSink] = [CSVSink(paths.metrics, resume_iteration=start if resume else None)]
    if config.logging.tensorboard:
        sinks.append(TensorBoardSink(paths.root / "tensorboard", purge_step=start + 1 if resume else None))
    logger = Logger(sinks)
    metrics: dict[str, float] = {}
    bar = _progress(config.meta.iterations, start, config.logging.progress)
    total = config.meta.iterations
    saved = start  # the iteration latest.pt holds (0: none yet)
    try:
        with StopRequest() as stop:
            for iteration in range(start + 1, total + 1):
                begin = time.perf_counter()
                tasks = distribution.sample_tasks(config.meta.batch_size, rng)
                # the policy that collects this iteration's episodes, kept in case its return is the best
                sampled_policy = learner.state_dict()
                metrics = sample_and_step(learner, collector, tasks, rng, gen, iteration, paths)
                metrics["time/iteration"] = time.perf_counter() - begin
                logger.write(iteration, metrics)
                after = metrics["meta/return_after"]
                if after > best:
                    best = after
                    state = _checkpoint(learner, config, iteration, rng, gen, best)
                    best_state = {**state, "policy": sampled_policy, "iteration": iteration - 1}
                    save_checkpoint(paths.best, best_state)
                stopping = stop.signum is not None
                if stopping or iteration % config.logging.checkpoint_every == 0 or iteration == total:
                    save_checkpoint(paths.latest, _checkpoint(learner, config, iteration, rng, gen, best))
                    saved = iteration
                bar.update(1)
                bar.set_postfix_str(
                    f"before {metrics['meta/return_before']:.1f} after {after:.1f} "
                    f"kl {metrics['trpo/kl']:.4f} {metrics['time/iteration']:.1f}s/it"
                )
                if stopping:
                    raise Stopped(stop.signum, iteration, total, str(paths.root))
            if stop.signum is not None and start < total:  # the signal came after the last check
                raise Stopped(stop.signum, total, total, str(paths.root))
    except BaseException as exc:
        bar.close()
        logger.close(quiet=True)
        if isinstance(exc, WriteError):
            raise exc.with_note(resume_note(paths.latest, saved, paths.root)) from exc
        raise
    bar.close()
    logger.close()
    return metrics
