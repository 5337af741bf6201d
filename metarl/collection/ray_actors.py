"""The ``ray`` collector backend: Ray actors, on this machine or a cluster, each owning whole tasks.

Each actor builds a :class:`~metarl.collection.vector.VectorCollector` for its slice of the meta-batch once
(tasks are shipped with every call, envs never are). A collection puts the policy of all tasks in the object
store once, then calls every actor with its tasks, the object reference and its slice bounds; the actor cuts
its tasks' policy from it (``select``) and runs whole episodes. The fault handling (deadlines, replacing dead
actors) is :class:`~metarl.collection.remote.RemoteCollector`'s.

``collector.address``: empty starts a local Ray instance (``num_cpus`` at least ``collector.workers``, the
driver's ``PYTHONPATH`` passed to its workers); ``auto`` joins the one running on this machine; ``host:port``
joins the head started there with ``ray start --head``. Every node must have metarl and the task modules
installed (the same versions).
"""

from __future__ import annotations

import logging
import os
import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from metarl.collection.remote import RemoteCollector, one_line
from metarl.collection.vector import CollectorSpec
from metarl.core.errors import ConfigError
from metarl.core.types import Task

#: seconds to wait for a TCP connection to a Ray head before calling the address unreachable
CONNECT_TIMEOUT_S = 3.0


def check_address(address: str) -> None:
    """Fail fast (a :class:`ConfigError`) when ``address`` names a Ray head that cannot be reached."""
    hint = (
        "start a head with 'ray start --head' and give its host:port, use 'auto' for one running on this "
        "machine, or leave collector.address empty to start a local instance"
    )
    if address == "auto":
        if not os.environ.get("RAY_ADDRESS") and not Path("/tmp/ray/ray_current_cluster").is_file():
            raise ConfigError(f"collector.address: 'auto' but no Ray instance runs on this machine; {hint}")
        return
    if not address:
        return
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(
            f"collector.address: cannot reach a Ray head at {address!r} ({reason}); {hint}"
        ) from None


class RayWorker:
    """The actor: a collector over ``num_tasks`` tasks, built once (Ray wraps this class at run time)."""

    def __init__(self, spec: CollectorSpec, num_tasks: int) -> None:
        """Build the collector with one torch thread (each actor holds one CPU)."""
        torch.set_num_threads(1)
        self.collector = spec.build(num_tasks)

    def pid(self) -> int:
        """This actor's process id (tests kill it)."""
        return os.getpid()

    def collect(
        self, tasks: list[Task], policy: Any, start: int, stop: int, seed: int
    ) -> tuple[dict[str, np.ndarray], dict[str, float]]:
        """Episodes of ``tasks`` (tasks ``start..stop-1`` of the meta-batch) as numpy arrays, and counters."""
        batch = self.collector.collect(tasks, policy.select(start, stop), seed)
        fields = ("observations", "actions", "rewards", "mask", "lengths", "successes")
        arrays = {name: getattr(batch, name).numpy() for name in fields if getattr(batch, name) is not None}
        return arrays, self.collector.pop_stats()


def _pythonpath() -> str:
    """The driver's import path for local Ray workers: the same metarl checkout, ``env.imports`` modules."""
    import metarl

    root = str(Path(metarl.__file__).resolve().parents[1])
    paths = [root] + [str(Path(p).resolve()) for p in sys.path if p and Path(p).is_dir()]
    return os.pathsep.join(dict.fromkeys(paths))


class RayCollector(RemoteCollector):
    """Ray actors (``collector.workers`` of them, one CPU each).

    Args:
        spec: how each actor builds its collector.
        num_tasks: ``N``.
        address: empty (start a local Ray instance), ``auto`` or ``host:port`` of a running head.
        limits: ``workers``, ``timeout_s``, ``startup_timeout_s``, ``max_restarts`` of
            :class:`~metarl.collection.remote.RemoteCollector`.

    Raises:
        ConfigError: Ray is not installed, or ``address`` cannot be reached.
    """

    backend = "ray"

    def __init__(self, spec: CollectorSpec, num_tasks: int, *, address: str = "", **limits: Any) -> None:
        """See the class docstring."""
        try:
            import ray  # noqa: F401
        except ImportError:
            raise ConfigError(
                "collector.backend: 'ray' needs the ray package; pip install 'metarl[ray]' "
                "(or choose local or subprocess)"
            ) from None
        check_address(address)
        super().__init__(spec, num_tasks, **limits)
        self.address = address
        self._actors: dict[int, Any] = {}
        self._refs: dict[Any, int] = {}
        self._policy_ref: Any = None

    def _init_ray(self) -> None:
        import ray

        if ray.is_initialized():
            return
        common: dict[str, Any] = {
            "include_dashboard": False,
            "logging_level": logging.ERROR,
            "configure_logging": True,
        }
        try:
            if self.address:
                ray.init(address=self.address, **common)
            else:
                ray.init(
                    num_cpus=max(len(self.slices), os.cpu_count() or 1),
                    runtime_env={"env_vars": {"PYTHONPATH": _pythonpath()}},
                    **common,
                )
        except (ConnectionError, RuntimeError) as exc:
            raise ConfigError(f"collector.address: Ray could not start or connect: {one_line(exc)}") from None

    def actor_pids(self) -> list[int]:
        """Process ids of the running actors (tests kill them)."""
        import ray

        return ray.get([self._actors[k].pid.remote() for k in sorted(self._actors)])

    def _start(self, k: int) -> None:
        import ray

        self._init_ray()
        lo, hi = self.slices[k]
        # the first actors spread over the nodes, so that a lost node takes as few tasks with it as it can;
        # a replacement takes Ray's default placement, which prefers the driver's node to one that may be
        # dying but not yet declared dead
        strategy: Literal["DEFAULT", "SPREAD"] = "DEFAULT" if self._started else "SPREAD"
        remote = ray.remote(num_cpus=1, max_restarts=0, max_task_retries=0, scheduling_strategy=strategy)
        self._actors[k] = remote(RayWorker).remote(self.spec, hi - lo)

    def _prepare(self, policy: Any) -> None:
        import ray

        self._policy_ref = ray.put(policy)  # once per collection, whatever the number of actors
        self._refs = {}

    def _submit(self, k: int, tasks: list[Task], policy: Any, seed: int) -> None:
        lo, hi = self.slices[k]
        self._refs = {ref: j for ref, j in self._refs.items() if j != k}
        self._refs[self._actors[k].collect.remote(tasks, self._policy_ref, lo, hi, seed)] = k

    def _wait(self, pending: Sequence[int], timeout: float) -> dict[int, tuple[str, Any]]:
        import ray

        refs = [ref for ref, k in self._refs.items() if k in pending]
        ready, _ = ray.wait(refs, num_returns=1, timeout=timeout)
        outcomes: dict[int, tuple[str, Any]] = {}
        for ref in ready:
            k = self._refs.pop(ref)
            try:
                outcomes[k] = ("done", ray.get(ref))
            except ray.exceptions.RayActorError as exc:
                outcomes[k] = ("dead", f"(actor) died during collection ({one_line(exc)[:100]})")
            except ray.exceptions.RayTaskError as exc:
                outcomes[k] = ("error", one_line(exc.as_instanceof_cause()))
        return outcomes

    def _kill(self, k: int) -> None:
        import ray

        ray.kill(self._actors.pop(k), no_restart=True)

    def _shutdown(self) -> None:
        import ray

        for actor in self._actors.values():
            ray.kill(actor, no_restart=True)
        self._actors, self._refs, self._policy_ref = {}, {}, None
