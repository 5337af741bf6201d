"""Meta-World's quaternions without SciPy's overhead: the same numbers as SciPy's, bit for bit."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

pytest.importorskip("scipy")
from scipy.spatial.transform import Rotation  # noqa: E402

from metarl.envs import metaworld_quat  # noqa: E402

FAST = metaworld_quat._fast_rotation()
needs_fast = pytest.mark.skipif(FAST is None, reason="this SciPy has no _from_matrix_orthogonal to call")
HAS_METAWORLD = importlib.util.find_spec("metaworld") is not None


def scipy_quat(matrix: np.ndarray) -> np.ndarray:
    return Rotation.from_matrix(matrix).as_quat()


@needs_fast
def test_quaternions_of_rotation_matrices_are_scipys_bit_for_bit() -> None:
    rng = np.random.default_rng(7)
    matrices = list(Rotation.random(2000, random_state=rng).as_matrix())
    # the conversion's four branches (the largest of the diagonal and the trace), and near half turns
    matrices += [
        np.eye(3),
        np.diag([1.0, -1.0, -1.0]),
        np.diag([-1.0, 1.0, -1.0]),
        np.diag([-1.0, -1.0, 1.0]),
    ]
    matrices += list(Rotation.from_rotvec(rng.normal(size=(200, 3)) * 1e-3 + [np.pi, 0, 0]).as_matrix())
    for matrix in matrices:
        fast = FAST.from_matrix(matrix)
        assert isinstance(fast, metaworld_quat._Quaternion), "a rotation matrix takes the fast path"
        assert np.array_equal(fast.as_quat(), scipy_quat(matrix))


@needs_fast
def test_matrices_scipy_would_orthogonalise_or_refuse_go_to_scipy() -> None:
    rng = np.random.default_rng(1)
    rotation = Rotation.random(random_state=rng).as_matrix()
    off = rotation + 1e-6 * rng.normal(size=(3, 3))  # SciPy orthogonalises this one first
    assert not isinstance(FAST.from_matrix(off), metaworld_quat._Quaternion)
    assert np.array_equal(FAST.from_matrix(off).as_quat(), scipy_quat(off))
    batch = Rotation.random(5, random_state=rng).as_matrix()
    assert np.array_equal(FAST.from_matrix(batch).as_quat(), Rotation.from_matrix(batch).as_quat())
    assert np.array_equal(FAST.from_matrix(rotation.tolist()).as_quat(), scipy_quat(rotation))
    with pytest.raises(ValueError, match="determinant"):
        FAST.from_matrix(-rotation)  # left-handed: SciPy's own error
    nan = rotation.copy()
    nan[0, 0] = np.nan
    assert not metaworld_quat._orthogonal_float_matrix(nan), "NaN goes to SciPy (which raises)"


@needs_fast
def test_everything_but_a_plain_as_quat_is_scipys_own() -> None:
    matrix = Rotation.from_euler("xyz", [0.3, -1.2, 2.0]).as_matrix()
    fast = FAST.from_matrix(matrix)
    assert np.array_equal(
        fast.as_quat(scalar_first=True), Rotation.from_matrix(matrix).as_quat(scalar_first=True)
    )
    assert np.array_equal(fast.as_euler("xyz"), Rotation.from_matrix(matrix).as_euler("xyz"))
    assert np.array_equal(FAST.from_euler("z", 0.5).as_quat(), Rotation.from_euler("z", 0.5).as_quat())
    quat = fast.as_quat()
    quat[0] = 5.0  # the caller owns what it gets
    assert np.array_equal(fast.as_quat(), scipy_quat(matrix))


@pytest.mark.metaworld
@pytest.mark.skipif(not HAS_METAWORLD, reason='metaworld is not installed (pip install -e ".[metaworld]")')
@needs_fast
def test_meta_world_environments_give_the_same_episodes_with_either_rotation() -> None:
    from metarl.envs.metaworld import MetaWorldEnv, benchmark_tasks

    def episode(name: str) -> tuple[np.ndarray, np.ndarray]:
        env = MetaWorldEnv("ML1", name)
        env.task = benchmark_tasks("ML1", name)["test"][1]
        rng = np.random.default_rng(3)
        steps = [env.reset(seed=4)[0]]
        rewards = []
        for _ in range(15):
            obs, reward, *_ = env.step(rng.uniform(-1, 1, 4))
            steps.append(obs)
            rewards.append(reward)
        env.close()
        return np.array(steps), np.array(rewards)

    replaced = 0
    # objects of different shapes and joints (every one of the 50 took 2 minutes here)
    for name in ("pick-place-v3", "door-open-v3", "assembly-v3", "hammer-v3", "peg-insert-side-v3"):
        fast = episode(name)
        assert metaworld_quat.installed(), "building a Meta-World env installs the fast quaternions"
        with metaworld_quat.scipy_rotations():
            assert not metaworld_quat.installed()
            own = episode(name)
        assert np.array_equal(fast[0], own[0]) and np.array_equal(fast[1], own[1]), name
    import sys

    for module in list(sys.modules.values()):
        if module.__name__.startswith(metaworld_quat.MODULE_PREFIX):
            replaced += isinstance(getattr(module, "Rotation", None), metaworld_quat.FastRotation)
    assert replaced >= 20, "the environments that compute quaternions use the fast path"
