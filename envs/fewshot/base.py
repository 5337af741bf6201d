"""What every few-shot task distribution returns: a meta-batch of support and query sets as NumPy arrays."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np


@dataclass(frozen=True)
class FewShotBatch:
    """``N`` tasks, each with ``S`` support and ``Q`` query examples.

    Attributes:
        support_inputs: ``[N, S, *x]`` float32 (``[N, S, 1]`` for sinusoid, ``[N, S, C, H, W]`` for images).
        support_targets: ``[N, S, 1]`` float32 (regression) or ``[N, S]`` int64 labels in ``0..ways-1``.
        query_inputs: ``[N, Q, *x]``, like ``support_inputs``.
        query_targets: ``[N, Q, ...]``, like ``support_targets``.
        tasks: ``N`` small frozen dataclasses describing each task (written to ``adaptation.csv``).
    """

    support_inputs: np.ndarray
    support_targets: np.ndarray
    query_inputs: np.ndarray
    query_targets: np.ndarray
    tasks: tuple[Any, ...]


class FewShotTasks(Protocol):
    """A distribution of few-shot tasks (sinusoids, N-way classification problems).

    Attributes:
        kind: ``regression`` (mean squared error) or ``classification`` (cross-entropy, accuracy).
        input_shape: shape of one input, e.g. ``(1,)`` or ``(1, 28, 28)``.
        num_outputs: outputs of the model (1, or the number of ways).
    """

    kind: str
    input_shape: tuple[int, ...]
    num_outputs: int

    def sample(
        self, n: int, rng: np.random.Generator, *, split: str, shots: int, query_shots: int
    ) -> FewShotBatch:
        """Draw ``n`` tasks from ``split`` (``train`` or ``test``) with their support and query sets."""
        ...
