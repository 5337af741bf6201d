"""Sinusoid regression (Finn et al., 2017, arXiv:1703.03400, section 5.1).

A task is ``y = amplitude * sin(x - phase)`` with amplitude ~ U[0.1, 5.0] and phase ~ U[0, pi]; inputs are
x ~ U[-5, 5]. Each task gives ``K`` support points and ``K'`` query points drawn independently. Train and test
tasks come from the same distribution (the split only names the stream).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from metarl.core.errors import ConfigError

from .base import FewShotBatch

AMPLITUDE = (0.1, 5.0)
PHASE = (0.0, np.pi)
INPUT_RANGE = (-5.0, 5.0)


@dataclass(frozen=True)
class SineTask:
    """``y = amplitude * sin(x - phase)``."""

    amplitude: float
    phase: float


class SinusoidTasks:
    """The paper's sinusoid task distribution; all randomness comes from the ``rng`` passed to :meth:`sample`.

    Version history: v0, the paper's ranges.
    """

    kind = "regression"
    input_shape: tuple[int, ...] = (1,)
    num_outputs = 1

    def sample(
        self,
        n: int,
        rng: np.random.Generator,
        *,
        split: str = "train",
        shots: int = 10,
        query_shots: int = 10,
    ) -> FewShotBatch:
        """``n`` sinusoids with ``shots`` support and ``query_shots`` query points each.

        Returns:
            A :class:`FewShotBatch` with inputs and targets ``[n, shots, 1]`` and ``[n, query_shots, 1]``.
        """
        if shots < 1 or query_shots < 1:
            raise ConfigError(
                f"data.shots: sinusoid needs >= 1 support and query point, got {shots}, {query_shots}"
            )
        amplitude = rng.uniform(*AMPLITUDE, size=(n, 1, 1))
        phase = rng.uniform(*PHASE, size=(n, 1, 1))
        x = rng.uniform(*INPUT_RANGE, size=(n, shots + query_shots, 1))
        y = amplitude * np.sin(x - phase)
        x, y = x.astype(np.float32), y.astype(np.float32)
        tasks = tuple(
            SineTask(float(a), float(p)) for a, p in zip(amplitude.ravel(), phase.ravel(), strict=True)
        )
        return FewShotBatch(x[:, :shots], y[:, :shots], x[:, shots:], y[:, shots:], tasks)
