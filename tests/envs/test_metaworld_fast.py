"""Meta-World's hot spots, faster: the same quaternions as SciPy's and the same episodes, bit for bit."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

pytest.importorskip("scipy")
from scipy.spatial.transform import Rotation  # noqa: E402

from metarl.envs import metaworld_fast  # noqa: E402

FAST = metaworld_fast._fast_rotation()
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
        assert isinstance(fast, metaworld_fast._Quaternion), "a rotation matrix takes the fast path"
        assert np.array_equal(fast.as_quat(), scipy_quat(matrix))


@needs_fast
def test_matrices_scipy_would_orthogonalise_or_refuse_go_to_scipy() -> None:
    rng = np.random.default_rng(1)
    rotation = Rotation.random(random_state=rng).as_matrix()
    off = rotation + 1e-6 * rng.normal(size=(3, 3))  # SciPy orthogonalises this one first
    assert not isinstance(FAST.from_matrix(off), metaworld_fast._Quaternion)
    assert np.array_equal(FAST.from_matrix(off).as_quat(), scipy_quat(off))
    batch = Rotation.random(5, random_state=rng).as_matrix()
    assert np.array_equal(FAST.from_matrix(batch).as_quat(), Rotation.from_matrix(batch).as_quat())
    assert np.array_equal(FAST.from_matrix(rotation.tolist()).as_quat(), scipy_quat(rotation))
    with pytest.raises(ValueError, match="determinant"):
        FAST.from_matrix(-rotation)  # left-handed: SciPy's own error
    nan = rotation.copy()
    nan[0, 0] = np.nan
    assert not metaworld_fast._orthogonal_float_matrix(nan), "NaN goes to SciPy (which raises)"


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


#: Meta-World's scripted policies: they grasp, push and turn objects (the goal is hidden from them)
POLICIES = {
    "pick-place-v3": "SawyerPickPlaceV3Policy",
    "push-v3": "SawyerPushV3Policy",
    "door-open-v3": "SawyerDoorOpenV3Policy",
    "assembly-v3": "SawyerAssemblyV3Policy",
    "hammer-v3": "SawyerHammerV3Policy",
    "peg-insert-side-v3": "SawyerPegInsertionSideV3Policy",
}


@pytest.mark.metaworld
@pytest.mark.skipif(not HAS_METAWORLD, reason='metaworld is not installed (pip install -e ".[metaworld]")')
@needs_fast
def test_meta_world_episodes_are_the_same_bit_for_bit_on_meta_worlds_own_code() -> None:
    import sys

    import metaworld.policies

    from metarl.envs.metaworld import MetaWorldEnv, benchmark_tasks

    def episode(name: str) -> tuple[np.ndarray, np.ndarray, list[dict]]:
        env = MetaWorldEnv("ML1", name)
        env.task = benchmark_tasks("ML1", name)["test"][1]
        policy = getattr(metaworld.policies, POLICIES[name])()
        obs = env.reset(seed=4)[0]
        steps, rewards, infos = [obs], [], []
        for _ in range(120):
            obs, reward, _, _, info = env.step(np.clip(policy.get_action(obs), -1, 1))
            steps.append(obs)
            rewards.append(reward)
            infos.append(info)
        env.close()
        return np.array(steps), np.array(rewards), infos

    grasped = 0
    for name in POLICIES:
        fast = episode(name)
        assert metaworld_fast.installed(), "building a Meta-World env installs the replacements"
        with metaworld_fast.meta_worlds_own_code():
            assert not metaworld_fast.installed()
            own = episode(name)
        assert np.array_equal(fast[0], own[0]) and np.array_equal(fast[1], own[1]), name
        assert fast[2] == own[2], name
        grasped += sum(info["grasp_success"] for info in own[2])
    assert grasped > 100, "the episodes exercise touching_object with contacts"
    replaced = sum(
        isinstance(getattr(module, "Rotation", None), metaworld_fast.FastRotation)
        for name, module in list(sys.modules.items())
        if name.startswith(metaworld_fast.MODULE_PREFIX)
    )
    assert replaced >= 20, "the environments that compute quaternions use the fast path"


@pytest.mark.metaworld
@pytest.mark.skipif(not HAS_METAWORLD, reason='metaworld is not installed (pip install -e ".[metaworld]")')
def test_touching_object_answers_as_meta_worlds_for_every_geom_along_a_grasp() -> None:
    import metaworld.policies

    from metarl.envs.metaworld import MetaWorldEnv, benchmark_tasks

    env = MetaWorldEnv("ML1", "pick-place-v3")
    env.task = benchmark_tasks("ML1", "pick-place-v3")["train"][2]
    obs = env.reset(seed=0)[0]
    policy, sawyer = metaworld.policies.SawyerPickPlaceV3Policy(), env._current()
    own = metaworld_fast._OWN["touching_object"]
    answers = set()
    for _ in range(60):
        obs = env.step(np.clip(policy.get_action(obs), -1, 1))[0]
        for geom in range(sawyer.model.ngeom):  # the pads themselves too: contacts with one pad only
            ours = metaworld_fast.touching_object(sawyer, geom)
            assert ours == own(sawyer, geom), geom
            answers.add(ours)
    assert answers == {True, False}
    env.close()
