"""Task distributions for meta-RL and few-shot learning: numpy, Gymnasium and MuJoCo, never torch.

Importing this package registers every environment id (``metarl/Navigation2D-v0``,
``metarl/HalfCheetahVel-v0``, ...) with Gymnasium.
"""

from .registration import register_all, registered_ids
from .tasks import DirectionTask, GoalTask, VelocityTask

register_all()

__all__ = ["DirectionTask", "GoalTask", "VelocityTask", "registered_ids"]
