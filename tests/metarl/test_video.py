"""The frames of `metarl render` for 2-D tasks: one per env step, at every allowed size."""

from __future__ import annotations

import numpy as np
import pytest

from metarl.envs.tasks import GoalTask
from metarl.viz.video import Episode, plane_frames


def straight_episode(steps: int, length: int, end: tuple[float, float]) -> Episode:
    """From the origin to ``end`` in ``length`` equal moves: ``observations [length + 1, 2]``."""
    observations = np.linspace([0.0, 0.0], end, length + 1)
    return Episode(steps=steps, observations=observations, rewards=-np.ones(length), frames=[])


@pytest.mark.parametrize("size", [16, 32, 64, 240])
@pytest.mark.parametrize("episodes", [1, 4])
def test_plane_frames_fit_any_allowed_size_and_episode_count(size: int, episodes: int) -> None:
    """Down to ``--size 16`` (the smallest allowed) the header shrinks to leave room for the plot."""
    runs = [straight_episode(k, 5 + k, (0.4, -0.1 * k)) for k in range(episodes)]
    frames = plane_frames(runs, GoalTask(x=0.5, y=-0.3), size)
    assert len(frames) == 5 + episodes - 1
    assert all(frame.shape == (size, size, 3) and frame.dtype == np.uint8 for frame in frames)
    assert (frames[0] != frames[-1]).any(), "the trajectories grow from frame to frame"
