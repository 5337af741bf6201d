"""The one training loop, shared by RL meta-training and few-shot training.

Per iteration: the work's :meth:`~Work.iterate` (sample and meta-update), a row to the metric sinks, the
work's :meth:`~Work.record` (e.g. ``best.pt``), and ``latest.pt`` every ``checkpoint_every`` iterations, at
the last one and when a stop was requested. It resumes from ``latest.pt`` (the work restores its learner and
generators; ``metrics.csv`` rows after the checkpoint are dropped), and SIGINT/SIGTERM end it after the
current iteration, checkpointed (:class:`~metarl.training.stopping.StopRequest`,
:class:`~metarl.core.errors.Stopped`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from metarl.config import RunConfig
from metarl.core.errors import Stopped, WriteError, resume_note
from metarl.training.checkpoints import load_checkpoint, save_checkpoint
from metarl.training.sinks import CSVSink, Logger, MetricSink, TensorBoardSink
from metarl.training.stopping import StopRequest


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


@dataclass(frozen=True)
class LoopSettings:
    """How long to run and what to write besides the checkpoints (from the config's ``meta``/``logging``)."""

    iterations: int
    checkpoint_every: int
    tensorboard: bool
    progress: bool


class Work(Protocol):
    """One kind of training (RL meta-training, few-shot) as the loop drives it."""

    def iterate(self, iteration: int) -> dict[str, float]:
        """Sample this iteration's tasks and meta-update; flat float metrics (without ``time/iteration``)."""
        ...

    def record(self, iteration: int, metrics: dict[str, float]) -> None:
        """After the metrics row is written: keep what this iteration earned (e.g. a new best checkpoint)."""
        ...

    def state(self, iteration: int) -> dict[str, Any]:
        """The ``latest.pt`` payload after ``iteration`` (tensors and plain types only)."""
        ...

    def restore(self, state: dict[str, Any]) -> None:
        """Load what :meth:`state` returned (learner, optimiser, generators)."""
        ...

    def progress_text(self, iteration: int, metrics: dict[str, float]) -> str | None:
        """The progress bar's postfix after ``iteration``, or None to leave it."""
        ...


def loop_settings(config: RunConfig) -> LoopSettings:
    """The loop's settings from ``meta.iterations`` and ``logging``."""
    logging = config.logging
    return LoopSettings(
        config.meta.iterations, logging.checkpoint_every, logging.tensorboard, logging.progress
    )


def _progress(total: int, initial: int, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, disable=not enabled, unit="it", dynamic_ncols=True)


def run_loop(work: Work, paths: RunPaths, settings: LoopSettings, resume: bool = False) -> dict[str, float]:
    """Iterate ``work`` up to ``settings.iterations``, resuming from ``paths.latest`` if ``resume``.

    Returns:
        The metrics of the last iteration (empty if there was nothing left to do).
    """
    start = 0
    if resume:
        state = load_checkpoint(paths.latest)
        work.restore(state)
        start = int(state["iteration"])
    sinks: list[MetricSink] = [CSVSink(paths.metrics, resume_iteration=start if resume else None)]
    if settings.tensorboard:
        sinks.append(TensorBoardSink(paths.root / "tensorboard", purge_step=start + 1 if resume else None))
    logger = Logger(sinks)
    metrics: dict[str, float] = {}
    total = settings.iterations
    bar = _progress(total, start, settings.progress)
    saved = start  # the iteration latest.pt holds (0: none yet)
    try:
        with StopRequest() as stop:
            for iteration in range(start + 1, total + 1):
                begin = time.perf_counter()
                metrics = work.iterate(iteration)
                metrics["time/iteration"] = time.perf_counter() - begin
                logger.write(iteration, metrics)
                work.record(iteration, metrics)
                signum = stop.signum
                stopping = signum is not None
                if stopping or iteration % settings.checkpoint_every == 0 or iteration == total:
                    save_checkpoint(paths.latest, work.state(iteration))
                    saved = iteration
                bar.update(1)
                text = work.progress_text(iteration, metrics)
                if text is not None:
                    bar.set_postfix_str(text)
                if signum is not None:
                    raise Stopped(signum, iteration, total, str(paths.root))
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
