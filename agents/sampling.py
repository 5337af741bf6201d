"""Collecting a meta-batch: support episodes for each inner step, adapting in between, then the query.

The adaptation while sampling is detached (no meta-gradient flows through it); the meta-update recomputes it
from the collected episodes.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import torch

from metarl.collection import Collector
from metarl.core.functional import InnerLoss, Params, StepSize, inner_step
from metarl.core.types import Adapter, EpisodeBatch, MetaBatch, Task


def detached_inner_step(loss_fn: InnerLoss, params: Params, data: tuple, step_size: StepSize) -> Params:
    """One first-order inner step per task, vmapped: ``params [N, ...]``, ``data [N, ...]`` -> ``[N, ...]``.

    The adapted parameters are detached; ``step_size`` is shared by every task.
    """
    step = torch.func.vmap(
        lambda p, d: inner_step(loss_fn, p, d, step_size, first_order=True), randomness="error"
    )
    return {k: v.detach() for k, v in step(params, data).items()}


def sample_meta_batch(
    learner: Adapter,
    collector: Collector,
    tasks: Sequence[Task],
    rng: np.random.Generator,
    generator: torch.Generator,
    steps: int,
    step_size: float,
) -> MetaBatch:
    """``steps`` support batches (each collected with the parameters adapted so far) and the query batch.

    Every inner step is ``learner.adapt(params, batch, step_size)``; each collection draws its seed from
    ``rng`` and its action noise from ``generator`` (:meth:`Adapter.policy_fn`). The timings are
    ``time/sampling`` (collecting) and ``time/adaptation`` (adapting), in seconds.
    """
    params = learner.initial_params(len(tasks))
    supports = []
    sampling = adaptation = 0.0
    for _ in range(steps):
        start = time.perf_counter()
        batch = collector.collect(tasks, learner.policy_fn(params, generator), seed=int(rng.integers(2**31)))
        supports.append(batch)
        middle = time.perf_counter()
        params = learner.adapt(params, batch, step_size)
        sampling, adaptation = sampling + middle - start, adaptation + time.perf_counter() - middle
    start = time.perf_counter()
    query = collector.collect(tasks, learner.policy_fn(params, generator), seed=int(rng.integers(2**31)))
    timings = {"time/sampling": sampling + time.perf_counter() - start, "time/adaptation": adaptation}
    return MetaBatch(list(tasks), tuple(supports), query, timings)


def episode_metrics(batches: Sequence[EpisodeBatch]) -> dict[str, float]:
    """Returns (and success rates, for envs that report success) of a meta-batch's batches, in step order.

    ``meta/return_before`` and ``meta/return_after``: the mean return of the first (unadapted) and the last
    batch's real episodes, ``inner/return_step{k}`` each batch's; ``meta/success_*`` and
    ``inner/success_step{k}`` likewise; ``meta/env_steps``: the steps of every batch.
    """
    returns = [b.mean_episode_return() for b in batches]
    metrics = {
        "meta/return_before": returns[0],
        "meta/return_after": returns[-1],
        "meta/env_steps": float(sum(b.lengths.sum() for b in batches)),
        **{f"inner/return_step{k}": r for k, r in enumerate(returns)},
    }
    successes = [rate for b in batches if (rate := b.success_rate()) is not None]
    if len(successes) == len(batches):
        metrics["meta/success_before"], metrics["meta/success_after"] = successes[0], successes[-1]
        metrics.update({f"inner/success_step{k}": s for k, s in enumerate(successes)})
    return metrics
