"""Rollout collection: the vectorized collector, its backends (local, subprocess, Ray) and their registry.

May import :mod:`metarl.core.types`, :mod:`metarl.core.errors`, :mod:`metarl.core.tasks` and
:mod:`metarl.config`; never the
learners, the training loop or the app. Modules: :mod:`~metarl.collection.vector` (the collector and the
protocols learners use), :mod:`~metarl.collection.remote` (what worker backends share),
:mod:`~metarl.collection.processes` and :mod:`~metarl.collection.ray_actors` (the two worker backends),
:mod:`~metarl.collection.backends` (the registry ``collector.backend`` names).
"""

from metarl.collection.backends import BACKENDS, collector_from_config
from metarl.collection.vector import (
    VECTORIZATION_MODES,
    Collector,
    CollectorSpec,
    PolicyFn,
    SliceablePolicy,
    VectorCollector,
    make_collector,
    make_vector_env,
)

__all__ = [
    "BACKENDS",
    "VECTORIZATION_MODES",
    "Collector",
    "CollectorSpec",
    "PolicyFn",
    "SliceablePolicy",
    "VectorCollector",
    "collector_from_config",
    "make_collector",
    "make_vector_env",
]
