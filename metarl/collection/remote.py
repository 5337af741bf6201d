"""What the worker backends share: each worker owns whole tasks and steps them with its own collector.

:class:`RemoteCollector` cuts the ``N`` tasks into one contiguous slice per worker, sends each worker its
tasks, the policy of those tasks (``SliceablePolicy.select``) and the reset seed of its first sub-env, and
waits with a deadline. Worker ``k`` runs a :class:`~metarl.collection.vector.VectorCollector` over its slice,
whose sub-envs are the same sub-envs (same task, same reset seed, same noise stream) as in the ``local``
backend, so the assembled batch equals the one ``local`` returns. A worker that dies or does not answer within
``timeout_s`` is killed, replaced, and its slice collected again, with a warning; more than ``max_restarts``
replacements in one collection stop it with a :class:`~metarl.core.errors.CollectorError`. The backends
(:mod:`~metarl.collection.processes`, :mod:`~metarl.collection.ray_actors`) supply how a worker starts,
receives a job, answers and ends.
"""

from __future__ import annotations

import abc
import time
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from metarl.collection.vector import CollectorSpec, PolicyFn
from metarl.core.errors import CollectorError, ConfigError
from metarl.core.types import EpisodeBatch, Task

FIELDS = ("observations", "actions", "rewards", "mask", "lengths")
#: name -> (shape, dtype) of one worker's slice
Layout = dict[str, tuple[tuple[int, ...], str]]


def one_line(exc: BaseException) -> str:
    """``Type: first line of the message`` (at most 200 characters)."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:200]


class RemoteCollector(abc.ABC):
    """Shared logic of the worker backends: slicing, deadlines, replacing dead workers, assembling.

    Args:
        spec: how each worker builds its collector.
        num_tasks: ``N``; worker ``k`` gets a contiguous slice of whole tasks.
        workers: how many workers (at most ``N``).
        timeout_s: seconds a collection may take before a worker that has not answered is replaced.
        startup_timeout_s: seconds a starting worker gets on top of ``timeout_s``.
        max_restarts: replacements allowed in one collection before it fails.
    """

    backend = "remote"

    def __init__(
        self,
        spec: CollectorSpec,
        num_tasks: int,
        *,
        workers: int = 2,
        timeout_s: float = 600.0,
        startup_timeout_s: float = 120.0,
        max_restarts: int = 3,
    ) -> None:
        """See the class docstring."""
        if num_tasks < 1:
            raise ValueError(f"num_tasks must be >= 1, got {num_tasks}")
        if spec.batch_unit != "episodes":
            raise ConfigError(
                f"collector.batch_unit: {spec.batch_unit!r} needs collector.backend 'local'; the worker "
                "backends share fixed-size episode buffers (batch_unit 'episodes')"
            )
        self.spec = spec
        self.num_tasks = num_tasks
        self.episodes_per_task = spec.episodes_per_task
        self.obs_dim, self.act_dim, self.horizon, self.reports_success = spec.env_facts()
        self.fields = FIELDS + (("successes",) if self.reports_success else ())
        parts = np.array_split(np.arange(num_tasks), min(workers, num_tasks))
        self.slices = [(int(p[0]), int(p[-1]) + 1) for p in parts]
        self.timeout_s = float(timeout_s)
        self.startup_timeout_s = float(startup_timeout_s)
        self._fresh: set[int] = set()  # started, not yet answered: their start-up gets its own time
        self.max_restarts = int(max_restarts)
        self._started = False
        self._stats = {"collector/unstable_resets": 0.0, "collector/worker_restarts": 0.0}

    # ---- hooks of a backend -------------------------------------------------------------------------------
    @abc.abstractmethod
    def _start(self, k: int) -> None:
        """Start worker ``k`` (a process or an actor)."""

    def _prepare(self, policy: Any) -> None:  # noqa: B027 (optional hook: most backends need nothing)
        """Called once per collection before any ``_submit`` (Ray puts the policy in the object store)."""

    @abc.abstractmethod
    def _submit(self, k: int, tasks: list[Task], policy: Any, seed: int) -> None:
        """Send worker ``k`` its tasks, their policy and the reset seed of its first sub-env."""

    @abc.abstractmethod
    def _wait(self, pending: Sequence[int], timeout: float) -> dict[int, tuple[str, Any]]:
        """Outcomes that arrived within ``timeout``.

        Returns:
            ``k -> ("done", (arrays, stats))``, ``("dead", why)`` or ``("error", why)``.
        """

    @abc.abstractmethod
    def _kill(self, k: int) -> None:
        """End worker ``k`` at once (it died, hung or failed)."""

    @abc.abstractmethod
    def _shutdown(self) -> None:
        """End every worker and free what they share."""

    # ---- the collection -----------------------------------------------------------------------------------
    def layout(self, k: int) -> Layout:
        """Shapes and dtypes of worker ``k``'s slice ``[n_k, T, E, ...]``."""
        lo, hi = self.slices[k]
        n, t, e = hi - lo, self.horizon, self.episodes_per_task
        layout: Layout = {
            "observations": ((n, t, e, self.obs_dim), "float32"),
            "actions": ((n, t, e, self.act_dim), "float32"),
            "rewards": ((n, t, e), "float32"),
            "mask": ((n, t, e), "float32"),
            "lengths": ((n, e), "int64"),
        }
        if self.reports_success:
            layout["successes"] = ((n, e), "float32")
        return layout

    def collect(self, tasks: Sequence[Task], policy: PolicyFn, seed: int) -> EpisodeBatch:
        """As ``VectorCollector.collect``, spread over the workers; ``policy`` must have ``select``.

        Raises:
            CollectorError: a worker raised, or more than ``max_restarts`` workers had to be replaced.
        """
        if len(tasks) != self.num_tasks:
            raise ValueError(f"expected {self.num_tasks} tasks, got {len(tasks)}")
        if not callable(getattr(policy, "select", None)):
            raise TypeError(
                f"the {self.backend} collector needs a policy with select(start, stop) "
                "(e.g. agents.policies.TaskPolicy); got " + type(policy).__name__
            )
        if not self._started:
            for k in range(len(self.slices)):
                self._start(k)
                self._fresh.add(k)
            self._started = True
        self._prepare(policy)
        # worker k resets its sub-env j with seed + lo * E + j: the seed sub-env lo * E + j gets in `local`
        jobs = {
            k: (list(tasks[lo:hi]), seed + lo * self.episodes_per_task)
            for k, (lo, hi) in enumerate(self.slices)
        }
        deadlines = {k: self._send(k, jobs[k], policy) for k in jobs}
        results: dict[int, dict[str, np.ndarray]] = {}
        failures = 0
        while len(results) < len(jobs):
            for k, (kind, value) in self._outcomes([k for k in jobs if k not in results], deadlines).items():
                if kind == "done":
                    self._fresh.discard(k)
                    results[k], stats = value
                    for name, count in stats.items():
                        self._stats[name] = self._stats.get(name, 0.0) + count
                elif kind == "error":
                    self._stop(k, f"failed: {value}")
                else:
                    failures += 1
                    self._replace(k, value, failures)
                    deadlines[k] = self._send(k, jobs[k], policy)
        return EpisodeBatch(
            **{
                name: torch.from_numpy(np.concatenate([results[k][name] for k in sorted(results)]))
                for name in self.fields
            }
        )

    def _send(self, k: int, job: tuple[list[Task], int], policy: Any) -> float:
        """Submit worker ``k``'s job; return its deadline (later for a worker that is still starting)."""
        self._submit(k, job[0], policy, job[1])
        return time.monotonic() + self.timeout_s + (self.startup_timeout_s if k in self._fresh else 0.0)

    def _outcomes(self, pending: list[int], deadlines: dict[int, float]) -> dict[int, tuple[str, Any]]:
        """What arrived before the earliest deadline, plus a ``dead`` outcome for each worker past its own."""
        timeout = max(0.0, min(deadlines[k] for k in pending) - time.monotonic())
        outcomes = self._wait(pending, timeout)
        now = time.monotonic()
        for k in pending:
            if k not in outcomes and now >= deadlines[k]:
                allowed = f"collector.timeout_s={self.timeout_s:g} s"
                if k in self._fresh:
                    allowed += f" (+ collector.startup_timeout_s={self.startup_timeout_s:g} s to start)"
                outcomes[k] = ("dead", f"gave no answer within {allowed}")
        return outcomes

    def _stop(self, k: int, what: str) -> None:
        lo, hi = self.slices[k]
        self.close()
        raise CollectorError(f"collector ({self.backend}): worker {k} (tasks {lo}-{hi - 1}) {what}")

    def _replace(self, k: int, why: str, failures: int) -> None:
        """Kill worker ``k`` and start a new one, with a warning; stop after ``max_restarts``."""
        self._kill(k)
        if failures > self.max_restarts:
            self._stop(
                k,
                f"{why}; that is failure {failures} in one collection, more than collector.max_restarts="
                f"{self.max_restarts}; stopped (the run directory and its checkpoints are intact)",
            )
        lo, hi = self.slices[k]
        warnings.warn(
            f"collector ({self.backend}): worker {k} (tasks {lo}-{hi - 1}) {why}; started a new worker and "
            f"collected its episodes again ({failures} of collector.max_restarts={self.max_restarts} used in "
            "this collection)",
            RuntimeWarning,
            stacklevel=4,
        )
        self._stats["collector/worker_restarts"] += 1
        self._start(k)
        self._fresh.add(k)

    def pop_stats(self) -> dict[str, float]:
        """``collector/unstable_resets`` and ``collector/worker_restarts`` since the last call."""
        stats = dict(self._stats)
        self._stats = dict.fromkeys(stats, 0.0)
        return stats

    def close(self) -> None:
        """Stop every worker (safe to call twice)."""
        if self._started:
            self._started = False
            self._fresh.clear()
            self._shutdown()
