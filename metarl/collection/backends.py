"""The backend registry: ``collector.backend`` names the collector that :func:`collector_from_config` builds.

``local`` is a :class:`~metarl.collection.vector.VectorCollector` in this process; ``subprocess``
(:mod:`metarl.collection.processes`) and ``ray`` (:mod:`metarl.collection.ray_actors`) give each worker whole
tasks and a collector of its own, and return exactly the batch ``local`` returns. Backends are imported when
chosen, so that Ray is needed only by runs that use it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from metarl.collection.vector import Collector, CollectorSpec
from metarl.config import CollectorConfig
from metarl.core.errors import ConfigError


def _local(spec: CollectorSpec, num_tasks: int, options: CollectorConfig) -> Collector:
    return spec.build(num_tasks)


def _limits(options: CollectorConfig) -> dict[str, float | int]:
    return {
        "workers": options.workers,
        "timeout_s": options.timeout_s,
        "startup_timeout_s": options.startup_timeout_s,
        "max_restarts": options.max_restarts,
    }


def _subprocess(spec: CollectorSpec, num_tasks: int, options: CollectorConfig) -> Collector:
    from metarl.collection.processes import SubprocessCollector

    return SubprocessCollector(spec, num_tasks, start_method=options.start_method, **_limits(options))


def _ray(spec: CollectorSpec, num_tasks: int, options: CollectorConfig) -> Collector:
    from metarl.collection.ray_actors import RayCollector

    return RayCollector(spec, num_tasks, address=options.address, **_limits(options))


#: ``collector.backend`` -> ``(spec, N, collector settings) -> Collector``
BACKENDS: dict[str, Callable[[CollectorSpec, int, CollectorConfig], Collector]] = {
    "local": _local,
    "subprocess": _subprocess,
    "ray": _ray,
}


def collector_from_config(
    collector: CollectorConfig, env_id: str, imports: Sequence[str], num_tasks: int, episodes_per_task: int
) -> Collector:
    """The collector that ``collector`` asks for.

    Args:
        collector: backend, workers, address, timeouts, vectorization and action rescaling.
        env_id: the task distribution's id.
        imports: modules that register ``env_id`` in a worker process.
        num_tasks: ``N``.
        episodes_per_task: ``E``.
    """
    spec = CollectorSpec(
        env_id, episodes_per_task, collector.vectorization, collector.rescale_actions, tuple(imports),
        collector.batch_unit,
    )  # fmt: skip
    if collector.backend not in BACKENDS:
        raise ConfigError(f"collector.backend: {collector.backend!r} is not one of {list(BACKENDS)}")
    return BACKENDS[collector.backend](spec, num_tasks, collector)
