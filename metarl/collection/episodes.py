"""Round arrays of the vector collector -> an :class:`~metarl.core.types.EpisodeBatch` (pure functions).

A round is one episode on some of the ``N * E`` sub-envs: time-major arrays ``[T, N*E, ...]`` with all-zero
rows where a sub-env ran none, and ``lengths [N*E]`` (0 there). Sub-env ``n * E + e`` belongs to task ``n``.
"""

from __future__ import annotations

import numpy as np
import torch

from metarl.core.types import EpisodeBatch

#: ``observations``, ``actions``, ``rewards``, ``mask`` ``[T, N*E, ...]``; per episode ``lengths`` ``[N*E]``
#: (and ``successes`` ``[N*E]`` for envs that report success)
Round = dict[str, np.ndarray]
#: the arrays of a round with one value per episode, not per step
PER_EPISODE = ("lengths", "successes")


def episodes_still_needed(steps: np.ndarray, episodes: int, horizon: int) -> np.ndarray:
    """The fewest more episodes that could bring each task to ``episodes * horizon`` steps (at most ``E``).

    Args:
        steps: ``[N]`` env steps each task has so far.
        episodes: ``E``, also the most a task can run at once (its sub-envs).
        horizon: ``T``, the most steps one episode adds.

    Returns:
        ``[N]`` int: ``ceil(deficit / T)`` clipped to ``[0, E]``. Each of them would also be started by the
        sequential rule "start another episode while short of the budget", since the ones before it add
        at most ``T`` steps each.
    """
    deficit = episodes * horizon - np.asarray(steps, dtype=np.int64)
    return np.clip(-(-deficit // horizon), 0, episodes)


def task_major(rounds: list[Round], n: int, e: int) -> dict[str, np.ndarray]:
    """Rounds ``[T, N*E, ...]`` -> ``[N, T, R*E, ...]`` (per-episode arrays ``[N, R*E]``).

    Round ``r``'s episodes take slots ``r*E .. r*E+E-1`` of each task.
    """
    out = {}
    for name in rounds[0]:
        if name in PER_EPISODE:
            out[name] = np.concatenate([r[name].reshape(n, e) for r in rounds], axis=1)
        else:
            parts = [r[name].reshape(len(r[name]), n, e, *r[name].shape[2:]) for r in rounds]
            out[name] = np.concatenate([part.swapaxes(0, 1) for part in parts], axis=2)
    return out


def pack_episodes(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Move each task's real episodes (``lengths > 0``) to its first slots, in order; cut to the widest task.

    Slots that ran no episode are all zeros, so the slots after a task's real ones are empty episodes.
    """
    real = batch["lengths"] > 0  # [N, S]
    widest = int(real.sum(axis=1).max())
    index = np.argsort(~real, axis=1, kind="stable")[:, :widest]  # real slots first, in slot order
    rows = np.arange(real.shape[0])[:, None]
    out = {}
    for name, x in batch.items():
        out[name] = x[rows, index] if name in PER_EPISODE else x.swapaxes(1, 2)[rows, index].swapaxes(1, 2)
    return out


def episode_batch(batch: dict[str, np.ndarray]) -> EpisodeBatch:
    """Task-major arrays -> an :class:`EpisodeBatch` of contiguous tensors."""
    return EpisodeBatch(**{name: torch.from_numpy(np.ascontiguousarray(x)) for name, x in batch.items()})
