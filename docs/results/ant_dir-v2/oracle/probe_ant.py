"""The local probe that ran the AntDir oracle before the -v2 ids existed (docstrings added afterwards)."""

import gymnasium as gym
import numpy as np

from envs.mujoco.ant import AntDirEnv, AntVelEnv

RLLAB_QPOS = np.array([0, 0, 0.55, 1, 0, 0, 0, 0, 1, 0, -1, 0, -1, 0, 1], dtype=float)


def _rllab(env):
    m = env.model
    m.geom_solimp[:, :3] = (0.8, 0.8, 0.01)
    env.init_qpos = RLLAB_QPOS.copy()


class AntDirRllab(AntDirEnv):
    """AntDir with the original contacts and pose (what metarl/AntDir-v2 became)."""

    def __init__(self, **kw):
        super().__init__(**kw)
        _rllab(self)


class AntVelRllab(AntVelEnv):
    """AntVel with the original contacts and pose (not run)."""

    def __init__(self, **kw):
        super().__init__(**kw)
        _rllab(self)


for name, cls in (("AntDirRllab", AntDirRllab), ("AntVelRllab", AntVelRllab)):
    if f"probe/{name}-v0" not in gym.registry:
        gym.register(f"probe/{name}-v0", entry_point=cls, max_episode_steps=200, kwargs={"frame_skip": 2})
