"""Register every task distribution with Gymnasium under the ``metarl`` namespace.

Gymnasium 1.x has no plugin discovery, so ``import metarl.envs`` runs :func:`register_all`. Ids carry a
version; a change to a task's reward, observation or dynamics gets a new version.
"""

from __future__ import annotations

import re
import warnings

import gymnasium as gym

from .metaworld import BENCHMARKS, ENV_NAMES, HORIZON

NAMESPACE = "metarl"

#: id -> (entry point, vector entry point or None, max_episode_steps, keyword arguments of both)
ENV_SPECS: dict[str, tuple[str, str | None, int, dict[str, int | bool | str]]] = {
    "metarl/Navigation2D-v0": (
        "metarl.envs.navigation:Navigation2DEnv",
        "metarl.envs.navigation:Navigation2DVectorEnv",
        100,
        {},
    ),
}
# The MuJoCo tasks: -v0 steps at Gymnasium's control rate (frame_skip 5, dt 0.05 s); -v1 at the original
# code's (rllab's models had no frame_skip entry: HalfCheetah dt 0.01 s, Ant dt 0.02 s).
for _name, _module, _factory, _v1_frame_skip in (
    ("HalfCheetahVel", "half_cheetah", "half_cheetah_vel", 1),
    ("HalfCheetahDir", "half_cheetah", "half_cheetah_dir", 1),
    ("AntVel", "ant", "ant_vel", 2),
    ("AntDir", "ant", "ant_dir", 2),
    ("AntGoal", "ant", "ant_goal", 2),
):
    for _version, _frame_skip in (("v0", 5), ("v1", _v1_frame_skip)):
        ENV_SPECS[f"metarl/{_name}-{_version}"] = (
            f"metarl.envs.mujoco.{_module}:{_name}Env",
            f"metarl.envs.mujoco.vector:make_{_factory}",
            200,
            {"frame_skip": _frame_skip},
        )
# -v2 (Ant only): as -v1 with the original model's contact softness and initial pose.
_V2_TASKS = (("AntVel", "ant_vel"), ("AntDir", "ant_dir"), ("AntGoal", "ant_goal"))
for _name, _factory in _V2_TASKS:
    ENV_SPECS[f"metarl/{_name}-v2"] = (
        f"metarl.envs.mujoco.ant:{_name}Env",
        f"metarl.envs.mujoco.vector:make_{_factory}",
        200,
        {"frame_skip": 2, "original_model": True},
    )
    # -v3 (Ant only): as -v1 with the original code's 125-value observation.
    ENV_SPECS[f"metarl/{_name}-v3"] = (
        f"metarl.envs.mujoco.ant:{_name}Env",
        f"metarl.envs.mujoco.vector:make_{_factory}",
        200,
        {"frame_skip": 2, "original_observation": True},
    )
    # -v4 (Ant only): as -v2 with the original start position noise (the original start state entire).
    ENV_SPECS[f"metarl/{_name}-v4"] = (
        f"metarl.envs.mujoco.ant:{_name}Env",
        f"metarl.envs.mujoco.vector:make_{_factory}",
        200,
        {"frame_skip": 2, "original_model": True, "original_start_noise": True},
    )
    # -v5 (Ant only): as -v1 with the original integration, one RK4 step of 0.02 s per action.
    ENV_SPECS[f"metarl/{_name}-v5"] = (
        f"metarl.envs.mujoco.ant:{_name}Env",
        f"metarl.envs.mujoco.vector:make_{_factory}",
        200,
        {"frame_skip": 1, "original_timestep": True},
    )
    # -v6 (Ant only): the original physics and start state entire, -v4 with -v5's integration.
    ENV_SPECS[f"metarl/{_name}-v6"] = (
        f"metarl.envs.mujoco.ant:{_name}Env",
        f"metarl.envs.mujoco.vector:make_{_factory}",
        200,
        {"frame_skip": 1, "original_timestep": True, "original_model": True, "original_start_noise": True},
    )
# Meta-World (the optional `metaworld` extra, envs/metaworld.py): ML1 of each environment, ML10 and ML45.
# Registered without the package, so that using one without it names the install command.
for _env_name in ENV_NAMES:
    ENV_SPECS[f"metarl/ML1-{_env_name}"] = (
        "metarl.envs.metaworld:MetaWorldEnv", None, HORIZON, {"benchmark": "ML1", "env_name": _env_name}
    )  # fmt: skip
for _benchmark in BENCHMARKS[1:]:
    ENV_SPECS[f"metarl/{_benchmark}-v3"] = (
        "metarl.envs.metaworld:MetaWorldEnv",
        None,
        HORIZON,
        {"benchmark": _benchmark},
    )


#: Ids that are not out of date although a higher version exists (Ant's -v1, the recommended one, and -v2:
#: -v2 to -v6 are variants, each one or more of the original code's differences, see docs/RESULTS.md), so
#: Gymnasium's "out of date, consider upgrading" is wrong for them.
_VARIANTS = ("v1", "v2", "v3", "v4", "v5")
RECOMMENDED_OLDER_IDS = tuple(f"metarl/{name}-{v}" for name, _ in _V2_TASKS for v in _VARIANTS)


def silence_upgrade_warnings() -> None:
    """Drop Gymnasium's upgrade advice for :data:`RECOMMENDED_OLDER_IDS` only; other ids keep theirs."""
    ids = "|".join(re.escape(env_id) for env_id in RECOMMENDED_OLDER_IDS)
    warnings.filterwarnings(
        "ignore", message=rf".*The environment ({ids}) is out of date", category=DeprecationWarning
    )


def register_all() -> None:
    """Register (or re-register) every id in :data:`ENV_SPECS`; safe to call more than once."""
    silence_upgrade_warnings()
    for env_id, (entry_point, vector_entry_point, horizon, kwargs) in ENV_SPECS.items():
        if env_id in gym.registry:
            continue
        gym.register(
            id=env_id,
            entry_point=entry_point,
            vector_entry_point=vector_entry_point,
            max_episode_steps=horizon,
            kwargs=kwargs,
        )


def registered_ids() -> list[str]:
    """All ids this package registers, in a stable order."""
    return list(ENV_SPECS)
