"""RL meta-training on the shared loop: sample tasks, collect, meta-update; ``best.pt`` for the best return.

Generic over the learner (anything with ``policy``, ``sample`` and ``step``); the app builds the pieces.
"""

from __future__ import annotations

import math
import time
import warnings
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from metarl.collection import Collector
from metarl.config import RLConfig, config_to_dict
from metarl.core.errors import NonFiniteError
from metarl.core.seeding import training_generators
from metarl.core.tasks import TaskDistribution
from metarl.core.types import MetaBatch, Task
from metarl.training.checkpoints import save_checkpoint
from metarl.training.loop import RunPaths, loop_settings, run_loop


class MetaLearner(Protocol):
    """What the loop needs of a learner (``agents.maml_trpo.MAMLTRPO`` satisfies it)."""

    @property
    def policy(self) -> nn.Module:
        """The meta-policy (read here; the learner may hold a narrower module type)."""
        ...

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


def _checkpoint(
    learner: MetaLearner,
    config: RLConfig,
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
    assert quantity is not None  # the second attempt failed too
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


class RLWork:
    """One RL meta-iteration for :func:`~metarl.training.loop.run_loop`, and the best return so far."""

    def __init__(
        self,
        config: RLConfig,
        paths: RunPaths,
        learner: MetaLearner,
        collector: Collector,
        distribution: TaskDistribution,
    ) -> None:
        self.config, self.paths = config, paths
        self.learner, self.collector, self.distribution = learner, collector, distribution
        self.rng, self.gen = training_generators(config.seed)
        self.best = -math.inf
        self._sampled_policy: dict[str, torch.Tensor] = {}

    def iterate(self, iteration: int) -> dict[str, float]:
        """Sample ``meta.batch_size`` tasks, collect and meta-update (:func:`sample_and_step`)."""
        tasks = self.distribution.sample_tasks(self.config.meta.batch_size, self.rng)
        # the policy that collects this iteration's episodes, kept in case its return is the best
        self._sampled_policy = self.learner.state_dict()
        return sample_and_step(self.learner, self.collector, tasks, self.rng, self.gen, iteration, self.paths)

    def record(self, iteration: int, metrics: dict[str, float]) -> None:
        """A new best ``meta/return_after`` writes ``best.pt``: the policy that collected it."""
        after = metrics["meta/return_after"]
        if after > self.best:
            self.best = after
            state = self.state(iteration)
            save_checkpoint(
                self.paths.best, {**state, "policy": self._sampled_policy, "iteration": iteration - 1}
            )

    def state(self, iteration: int) -> dict[str, Any]:
        """``latest.pt``: the learner, both generators and the best return."""
        return _checkpoint(self.learner, self.config, iteration, self.rng, self.gen, self.best)

    def restore(self, state: dict[str, Any]) -> None:
        """Load ``latest.pt``'s learner, generators and best return."""
        self.learner.load_state_dict(state["policy"])
        self.rng.bit_generator.state = state["numpy_rng"]
        self.gen.set_state(state["torch_rng"])
        self.best = float(state["best_return"])

    def progress_text(self, iteration: int, metrics: dict[str, float]) -> str | None:
        """Returns before and after adaptation, the KL and the iteration's seconds."""
        return (
            f"before {metrics['meta/return_before']:.1f} after {metrics['meta/return_after']:.1f} "
            f"kl {metrics['trpo/kl']:.4f} {metrics['time/iteration']:.1f}s/it"
        )


def train(
    config: RLConfig,
    run_dir: str | Path,
    learner: MetaLearner,
    collector: Collector,
    distribution: TaskDistribution,
    resume: bool = False,
) -> dict[str, float]:
    """Meta-train until ``config.meta.iterations``, resuming from ``checkpoints/latest.pt`` if ``resume``.

    A resumed run repeats exactly what an unstopped run would have done: the policy and both generators are
    restored, and ``metrics.csv`` rows after the checkpoint are dropped.

    SIGINT or SIGTERM (:class:`metarl.training.stopping.StopRequest`) lets the current iteration finish,
    writes
    ``latest.pt`` for it and raises :class:`metarl.core.errors.Stopped`; a second signal stops at once.

    Returns:
        The metrics of the last iteration (empty if there was nothing left to do).
    """
    paths = RunPaths(Path(run_dir))
    work = RLWork(config, paths, learner, collector, distribution)
    return run_loop(work, paths, loop_settings(config), resume)
