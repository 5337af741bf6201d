"""The task-distribution protocol that envs satisfy structurally (``envs`` is never imported here)."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import gymnasium as gym
import numpy as np

from metarl.core.errors import ConfigError, closest
from metarl.core.types import Task


@runtime_checkable
class TaskDistribution(Protocol):
    """Anything with ``sample_tasks(n, rng)`` that draws tasks with the given generator only.

    A distribution with held-out test tasks (Meta-World's) also has ``sample_evaluation_tasks(n, rng,
    split)``, which the evaluation draws from (:func:`sample_evaluation_tasks`; ``split`` ``test`` for the
    held-out tasks, ``train`` for meta-train figures); the others are evaluated on new draws of
    ``sample_tasks``.
    """

    def sample_tasks(self, n: int, rng: np.random.Generator) -> list[Task]:
        """Draw ``n`` tasks using ``rng`` alone."""
        ...


def sample_evaluation_tasks(
    distribution: TaskDistribution, n: int, rng: np.random.Generator, split: str = "test"
) -> list[Task]:
    """``n`` tasks to evaluate on, of ``split`` where the distribution has splits, else new ``sample_tasks``.

    Args:
        distribution: the task distribution.
        n: how many tasks.
        rng: the only randomness used.
        split: ``test`` (held-out tasks) or ``train`` (the training tasks, for meta-train figures); a
            distribution without splits draws new tasks for either.
    """
    draw = getattr(distribution, "sample_evaluation_tasks", None)
    return draw(n, rng, split) if callable(draw) else distribution.sample_tasks(n, rng)


def import_task_modules(imports: list[str]) -> None:
    """Import each module name or ``.py`` file (which registers its envs with Gymnasium).

    Raises:
        ConfigError: naming the entry that could not be found or imported.
    """
    for item in imports:
        try:
            if item.endswith(".py"):
                path = Path(item).resolve()
                if not path.is_file():
                    raise ConfigError(
                        f"env.imports: file {item!r} does not exist (paths are relative to {Path.cwd()})"
                    )
                spec = importlib.util.spec_from_file_location(f"metarl_user_{path.stem}", path)
                assert spec is not None and spec.loader is not None  # a .py file always gets a source loader
                module = importlib.util.module_from_spec(spec)
                sys.modules[spec.name] = module
                spec.loader.exec_module(module)
            else:
                importlib.import_module(item)
        except ConfigError:
            raise
        except Exception as exc:
            raise ConfigError(
                f"env.imports: importing {item!r} failed: {type(exc).__name__}: {exc}"
            ) from None


def check_env_id(env_id: str) -> None:
    """Raise :class:`ConfigError` naming close ids if ``env_id`` is not registered with Gymnasium."""
    if env_id not in gym.registry:
        known = [k for k in gym.registry if k.startswith("metarl/")] or list(gym.registry)
        raise ConfigError(
            f"env.id: unknown environment {env_id!r}{closest(env_id, gym.registry)}; "
            f"registered task distributions: {', '.join(sorted(known))}"
        )


def unbuildable(env_id: str, exc: ImportError) -> ConfigError:
    """The one-line error for an env whose optional package is missing (its message names the install)."""
    return ConfigError(f"env.id: {env_id!r} cannot be built: {exc}")


def make_env(env_id: str, **kwargs: Any) -> gym.Env:
    """``gym.make(env_id)``, with an env's missing optional package as a one-line :class:`ConfigError`.

    Raises:
        ConfigError: the id is unknown, or its env needs a package that is not installed (the env's
            ``ImportError`` message says which, e.g. Meta-World's install command).
    """
    check_env_id(env_id)
    try:
        return gym.make(env_id, **kwargs)
    except ImportError as exc:
        raise unbuildable(env_id, exc) from None


def make_task_distribution(env_id: str) -> TaskDistribution:
    """Build one env of ``env_id`` and return its unwrapped env, which samples tasks.

    Raises:
        ConfigError: if the id is unknown or the env cannot sample tasks.
    """
    env = make_env(env_id).unwrapped
    if not isinstance(env, TaskDistribution):
        raise ConfigError(f"env.id: {env_id!r} is not a task distribution (it has no sample_tasks(n, rng))")
    return env
