"""Task objects shared by the task distributions.

A task is a small frozen dataclass: hashable, printable, and cheap to ship to a sub-env with
``VectorEnv.set_attr("task", [...])``. Its fields are the task's parameters.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class VelocityTask:
    """Run forward at a target velocity (m/s along x)."""

    velocity: float


@dataclass(frozen=True)
class DirectionTask:
    """Run forward (``+1``) or backward (``-1``) along x."""

    direction: float


@dataclass(frozen=True)
class GoalTask:
    """Reach a 2-D goal position ``(x, y)``."""

    x: float
    y: float
