"""Meta-World's object quaternions without SciPy's per-call overhead, bit for bit the same.

Every Meta-World v3 environment puts the object's orientation in its observation each step with
``Rotation.from_matrix(xmat).as_quat()`` (SciPy). For one 3 x 3 matrix SciPy spends about 70 us there, most of
it checking the input (determinant, orthogonality with ``isclose``) in array-API code, where the conversion
itself (``_from_matrix_orthogonal``, compiled) takes about 5 us; on ``reach-v3`` the call was 31% of an env
step (cProfile, docs/BENCHMARKS.md).

:func:`install` replaces the ``Rotation`` name in Meta-World's environment modules by :data:`ROTATION`, whose
``from_matrix`` checks a single matrix in plain Python floats, more strictly than SciPy does (every entry of
``M M^T - I`` within 1e-12, SciPy's ``atol``, without its ``rtol``; determinant positive), and then calls the
same compiled conversion SciPy calls for a matrix that passes its own check. So the quaternion is SciPy's to
the bit; anything else (a batch, a matrix off orthogonal, another method, ``as_quat`` with arguments) goes to
SciPy unchanged. :func:`install` checks that on a few matrices first and leaves SciPy in place if they differ
(another SciPy version, say) or the compiled function is missing.
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
    (a, b, c), (d, e, f), (g, h, i) = matrix.tolist()
    rows = ((a, b, c), (d, e, f), (g, h, i))
    for r in range(3):
        for s in range(r, 3):
            dot = rows[r][0] * rows[s][0] + rows[r][1] * rows[s][1] + rows[r][2] * rows[s][2]
            if not abs(dot - (1.0 if r == s else 0.0)) <= ORTHOGONAL_ATOL:  # NaN fails too
                return False
    return a * (e * i - f * h) - b * (d * i - f * g) + c * (d * h - e * g) > 0.0


class _Quaternion:
    """What ``ROTATION.from_matrix`` returns for one orthogonal matrix: ``as_quat()``, the rest via SciPy."""

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
            return _Quaternion(matrix, np.asarray(self._convert(matrix)))
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


def install() -> bool:
    """Put :class:`FastRotation` in every loaded Meta-World environment module; whether it was put there."""
    from scipy.spatial.transform import Rotation

    fast = _fast_rotation()
    if fast is None:
        return False
    for module in _modules():
        if getattr(module, "Rotation", None) is Rotation:
            module.Rotation = fast
    return True


def uninstall() -> None:
    """Give Meta-World's environment modules SciPy's ``Rotation`` back."""
    for module in _modules():
        rotation = getattr(module, "Rotation", None)
        if isinstance(rotation, FastRotation):
            module.Rotation = rotation._scipy


def installed() -> bool:
    """Whether any loaded Meta-World environment module uses :class:`FastRotation`."""
    return any(isinstance(getattr(module, "Rotation", None), FastRotation) for module in _modules())


@contextlib.contextmanager
def scipy_rotations() -> Iterator[None]:
    """Meta-World's own code path (SciPy's ``Rotation``) inside the block, as it was after it."""
    was = installed()
    uninstall()
    try:
        yield
    finally:
        if was:
            install()
