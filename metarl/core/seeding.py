"""Seeds -> generators. Every random draw of a run flows from these; nothing uses the global NumPy RNG.

Training and evaluation use different ``SeedSequence`` spawn keys, so evaluation tasks come from a stream that
training never touches, even when both seeds are equal.
"""

from __future__ import annotations

import numpy as np
import torch

TRAIN_STREAM, EVAL_STREAM = 0, 1


def _sequence(seed: int, stream: int) -> np.random.SeedSequence:
    return np.random.SeedSequence(entropy=seed, spawn_key=(stream,))


def training_generators(seed: int) -> tuple[np.random.Generator, torch.Generator]:
    """Return the training run's NumPy (tasks, env reset seeds) and torch (action noise) generators."""
    sequence = _sequence(seed, TRAIN_STREAM)
    torch_seed = int(sequence.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))
    return np.random.default_rng(sequence), torch.Generator().manual_seed(torch_seed)


def evaluation_generators(seed: int) -> tuple[np.random.Generator, torch.Generator]:
    """Like :func:`training_generators`, from the evaluation stream."""
    sequence = _sequence(seed, EVAL_STREAM)
    torch_seed = int(sequence.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))
    return np.random.default_rng(sequence), torch.Generator().manual_seed(torch_seed)
