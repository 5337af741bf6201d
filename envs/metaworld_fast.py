"""Two hot spots of Meta-World's step code, faster, with the same numbers bit for bit.

Both are installed by :func:`install` (once per process, when a Meta-World env is first built) and removed by
:func:`uninstall`; :func:`meta_worlds_own_code` runs a block on Meta-World's code as it is. A cProfile of
stepping ``reach-v3`` and ``pick-place-v3`` (docs/BENCHMARKS.md) put them at 31% and 28% of a step:

- **The object's quaternion.** Every v3 environment puts the object's orientation in its observation each
  step with ``Rotation.from_matrix(xmat).as_quat()`` (SciPy). For one 3 x 3 matrix SciPy spends about 70 us
  there, most of it checking the input (determinant, orthogonality with ``isclose``) in array-API code,
  where the conversion itself (``_from_matrix_orthogonal``, compiled) takes about 5 us. The ``Rotation`` name
  in Meta-World's environment modules becomes a :class:`FastRotation`, whose ``from_matrix`` checks a single
  matrix in plain Python floats, more strictly than SciPy does (every entry of ``M M^T - I`` within 1e-12,
  SciPy's ``atol``, without its ``rtol``; determinant positive), and then calls the same compiled conversion
  SciPy calls for a matrix that passes its own check. Anything else (a batch, a matrix off orthogonal,
  another method, ``as_quat`` with arguments) goes to SciPy unchanged. Installed only where a few matrices
  come out equal both ways (another SciPy version could differ) and the compiled function exists.
- **Whether the gripper touches an object** (``SawyerXYZEnv.touching_object``, in the grasp rewards of the
  pick, place and push environments): a Python loop over every contact, twice, to sum the pads' contact
  forces. :func:`touching_object` selects the contacts with numpy on the contact arrays and sums the same
  forces in the same order.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

#: SciPy's absolute tolerance on ``M M^T - I`` before it orthogonalises a matrix
ORTHOGONAL_ATOL = 1e-12
#: the prefix of the Meta-World modules whose ``Rotation`` is replaced
MODULE_PREFIX = "metaworld.envs."


def _orthogonal_float_matrix(matrix: Any) -> bool:
    """Whether ``matrix`` is one 3 x 3 float64 array SciPy would convert without orthogonalising it."""
    if not isinstance(matrix, np.ndarray) or matrix.shape != (3, 3) or matrix.dtype != np.float64:
        return False
    rows = matrix.tolist()
    (a, b, c), (d, e, f), (g, h, i) = rows
    for r in range(3):
        for s in range(r, 3):
            dot = rows[r][0] * rows[s][0] + rows[r][1] * rows[s][1] + rows[r][2] * rows[s][2]
            if not abs(dot - (1.0 if r == s else 0.0)) <= ORTHOGONAL_ATOL:  # NaN fails too
                return False
    return a * (e * i - f * h) - b * (d * i - f * g) + c * (d * h - e * g) > 0.0


class _Quaternion:
    """``FastRotation.from_matrix`` of one orthogonal matrix: ``as_quat()``, the rest via SciPy."""

    __slots__ = ("_matrix", "_quat")

    def __init__(self, matrix: np.ndarray, quat: np.ndarray) -> None:
        self._matrix, self._quat = matrix, quat

    def as_quat(self, *args: Any, **kwargs: Any) -> np.ndarray:
        """SciPy's ``as_quat()``: ``[x, y, z, w]``; with arguments, SciPy's own."""
        if args or kwargs:
            return self._scipy().as_quat(*args, **kwargs)
        return self._quat.copy()

    def _scipy(self) -> Any:
        from scipy.spatial.transform import Rotation

        return Rotation.from_matrix(self._matrix)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._scipy(), name)


class FastRotation:
    """Stands in for SciPy's ``Rotation`` class in Meta-World's modules (see the module docstring)."""

    def __init__(self, scipy_rotation: Any, convert: Callable[[np.ndarray], np.ndarray]) -> None:
        self._scipy, self._convert = scipy_rotation, convert

    def from_matrix(self, matrix: Any, **kwargs: Any) -> Any:
        """SciPy's ``Rotation.from_matrix``; for one orthogonal float64 matrix, its quaternion directly."""
        if not kwargs and _orthogonal_float_matrix(matrix):
            return _Quaternion(matrix.copy(), np.asarray(self._convert(matrix)))
        return self._scipy.from_matrix(matrix, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._scipy, name)


def _fast_rotation() -> FastRotation | None:
    """A :class:`FastRotation`, or ``None`` where it would not give SciPy's quaternions bit for bit."""
    from scipy.spatial.transform import Rotation

    try:
        from scipy.spatial.transform._rotation_cy import _from_matrix_orthogonal
    except ImportError:
        return None
    fast = FastRotation(Rotation, _from_matrix_orthogonal)
    rng = np.random.default_rng(0)
    checks = [np.eye(3), np.diag([1.0, -1.0, -1.0]), np.diag([-1.0, 1.0, -1.0]), np.diag([-1.0, -1.0, 1.0])]
    checks += list(Rotation.random(16, random_state=rng).as_matrix())
    for matrix in checks:
        if not np.array_equal(fast.from_matrix(matrix).as_quat(), Rotation.from_matrix(matrix).as_quat()):
            return None
    return fast


def _modules() -> list[Any]:
    return [module for name, module in list(sys.modules.items()) if name.startswith(MODULE_PREFIX)]


def touching_object(self: Any, object_geom_id: int) -> bool:
    """``SawyerXYZEnv.touching_object``: both pads' contact forces with the object positive (see above)."""
    data = self.data
    if data.ncon == 0:
        return False
    geoms = data.contact.geom  # [ncon, 2]
    with_object = (geoms == object_geom_id).any(axis=1)
    totals = []
    for pad in (data.geom("leftpad_geom").id, data.geom("rightpad_geom").id):
        rows = data.contact.efc_address[with_object & (geoms == pad).any(axis=1)]
        totals.append(sum(data.efc_force[rows].tolist()))  # Python's sum in contact order, as Meta-World's
    return 0 < totals[0] and 0 < totals[1]


def _sawyer_env() -> Any:
    from metaworld.sawyer_xyz_env import SawyerXYZEnv

    return SawyerXYZEnv


#: Meta-World's own ``touching_object`` while :func:`touching_object` stands in for it
_OWN: dict[str, Any] = {}


def install() -> bool:
    """Install both replacements (see the module docstring); whether the quaternions' one could be."""
    from scipy.spatial.transform import Rotation

    sawyer = _sawyer_env()
    if "touching_object" not in _OWN:
        _OWN["touching_object"] = sawyer.touching_object
        sawyer.touching_object = touching_object
    fast = _fast_rotation()
    if fast is None:
        return False
    for module in _modules():
        if getattr(module, "Rotation", None) is Rotation:
            module.Rotation = fast
    return True


def uninstall() -> None:
    """Give Meta-World its own code back."""
    for module in _modules():
        rotation = getattr(module, "Rotation", None)
        if isinstance(rotation, FastRotation):
            module.Rotation = rotation._scipy
    if "touching_object" in _OWN:
        _sawyer_env().touching_object = _OWN.pop("touching_object")


def installed() -> bool:
    """Whether Meta-World runs :func:`touching_object` (and, where SciPy allows, :class:`FastRotation`)."""
    return "touching_object" in _OWN


@contextlib.contextmanager
def meta_worlds_own_code() -> Iterator[None]:
    """Meta-World's own code inside the block, as it was after it."""
    was = installed()
    uninstall()
    try:
        yield
    finally:
        if was:
            install()
