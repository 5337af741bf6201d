"""Register every task distribution with Gymnasium under the ``metarl`` namespace.

Gymnasium 1.x has no plugin discovery, so ``import envs`` runs :func:`register_all`. Ids carry a version;
a change to a task's reward, observation or dynamics gets a new version.
"""

from __future__ import annotations

import gymnasium as gym

NAMESPACE = "metarl"

#: id -> (entry point, vector entry point or None, max_episode_steps)
ENV_SPECS: dict[str, tuple[str, str | None, int]] = {
    "metarl/Navigation2D-v0": (
        "envs.navigation:Navigation2DEnv",
        "envs.navigation:Navigation2DVectorEnv",
        100,
    ),
    "metarl/HalfCheetahVel-v0": (
        "envs.mujoco.half_cheetah:HalfCheetahVelEnv",
        "envs.mujoco.vector:make_half_cheetah_vel",
        200,
    ),
    "metarl/HalfCheetahDir-v0": (
        "envs.mujoco.half_cheetah:HalfCheetahDirEnv",
        "envs.mujoco.vector:make_half_cheetah_dir",
        200,
    ),
    "metarl/AntVel-v0": ("envs.mujoco.ant:AntVelEnv", "envs.mujoco.vector:make_ant_vel", 200),
    "metarl/AntDir-v0": ("envs.mujoco.ant:AntDirEnv", "envs.mujoco.vector:make_ant_dir", 200),
    "metarl/AntGoal-v0": ("envs.mujoco.ant:AntGoalEnv", "envs.mujoco.vector:make_ant_goal", 200),
}


def register_all() -> None:
    """Register (or re-register) every id in :data:`ENV_SPECS`; safe to call more than once."""
    for env_id, (entry_point, vector_entry_point, horizon) in ENV_SPECS.items():
        if env_id in gym.registry:
            continue
        gym.register(
            id=env_id,
            entry_point=entry_point,
            vector_entry_point=vector_entry_point,
            max_episode_steps=horizon,
        )


def registered_ids() -> list[str]:
    """All ids this package registers, in a stable order."""
    return list(ENV_SPECS)
