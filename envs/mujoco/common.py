"""Helpers shared by the MuJoCo task distributions: task validation and solver settings."""

from __future__ import annotations

import dataclasses
import math
import numbers
import warnings
from typing import Any, ClassVar, TypeVar, cast

import mujoco
import numpy as np
from numpy.typing import NDArray

from .rewards import TaskTerms

TaskT = TypeVar("TaskT")


def check_task(task: object, task_type: type[TaskT]) -> TaskT:
    """Return ``task`` if it is a ``task_type`` whose fields are finite real numbers.

    Values outside the training distribution's ``task_ranges`` are accepted on purpose: evaluating on them
    probes extrapolation. Command-line input is checked against the ranges where it enters
    (``metarl render``).

    Args:
        task: The value to check.
        task_type: The frozen task dataclass expected, e.g. :class:`~envs.tasks.VelocityTask`.

    Returns:
        ``task`` unchanged.

    Raises:
        TypeError: ``task`` is not a ``task_type`` or a field is not a real number.
        ValueError: A field is not finite.
    """
    if not isinstance(task, task_type) or not dataclasses.is_dataclass(type(task)):
        raise TypeError(f"task must be a {task_type.__name__}, got {task!r}")
    for field in dataclasses.fields(cast(Any, task)):  # a dataclass instance, checked above
        value = getattr(task, field.name)
        if not isinstance(value, numbers.Real) or isinstance(value, bool):
            raise TypeError(f"task field {field.name!r} must be a real number, got {value!r}")
        if not math.isfinite(value):
            raise ValueError(f"task field {field.name!r} must be finite, got {value!r}")
    return task


def task_fields(task: Any) -> tuple[Any, ...]:
    """A task dataclass's field values in declaration order: ``GoalTask(1.0, 2.0) -> (1.0, 2.0)``."""
    return tuple(getattr(task, field.name) for field in dataclasses.fields(task))


def check_num_tasks(n: int) -> None:
    """Raise ``ValueError`` unless ``n`` (the number of tasks to sample) is a non-negative integer."""
    if not isinstance(n, numbers.Integral) or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")


def check_frame_skip(frame_skip: int) -> None:
    """Raise ``ValueError`` unless ``frame_skip`` (physics steps per env step) is a positive integer."""
    if not isinstance(frame_skip, numbers.Integral) or isinstance(frame_skip, bool) or frame_skip < 1:
        raise ValueError(f"frame_skip must be a positive integer, got {frame_skip!r}")


def disable_warmstart(model: mujoco.MjModel) -> None:
    """Turn off the constraint solver's warm-start in ``model``.

    With warm-start the solver starts from the previous step's accelerations, so a step depends on history
    that is not in ``qpos``/``qvel``. Without it, a step is a function of the state and action alone, which
    lets a batched stepper reproduce the single env exactly.
    """
    model.opt.disableflags |= int(mujoco.mjtDisableBit.mjDSBL_WARMSTART)


#: MuJoCo >= 3.3 warns on every load of Gymnasium's half_cheetah.xml; the model is Gymnasium's and unchanged.
KNOWN_MODEL_WARNINGS = ("compiler attribute 'settotalmass' is deprecated",)


def _forward_mujoco_warning(message: str) -> None:
    if not message.startswith(KNOWN_MODEL_WARNINGS):
        warnings.warn(f"MuJoCo: {message}", RuntimeWarning, stacklevel=2)


def install_warning_handler() -> None:
    """Route MuJoCo's warnings to Python's ``warnings`` and drop the known deprecation of Gymnasium's models.

    MuJoCo's default handler prints every warning and appends it to ``MUJOCO_LOG.TXT`` in the working
    directory, once per model load, i.e. once per sub-env.
    """
    mujoco.set_mju_user_warning(_forward_mujoco_warning)


class TaskEnvMixin:
    """The task plumbing of the MuJoCo task envs, mixed in before Gymnasium's env class.

    Subclasses set ``task_type``, ``default_task``, ``task_ranges`` and ``task_terms``, define
    ``sample_tasks(n, rng)``, and assign ``self.task`` in ``__init__`` (before Gymnasium's constructor, whose
    reset already reads it). ``VectorEnv.set_attr("task", ...)`` assigns the attribute, so assignment
    validates like :meth:`set_task`.
    """

    task_type: ClassVar[type]
    default_task: ClassVar[Any]
    #: The training distribution's closed range of every task field (tasks outside it are accepted).
    task_ranges: ClassVar[dict[str, tuple[float, float]]]
    #: The task's reward term (a function of :mod:`.rewards`), which the fast vector env calls too.
    task_terms: ClassVar[TaskTerms]
    #: The constructor's arguments that pickling and ``copy.deepcopy`` pass again (besides the task), each
    #: read from the attribute of the same name.
    pickled_arguments: ClassVar[tuple[str, ...]] = (
        "render_mode",
        "width",
        "height",
        "camera_name",
        "frame_skip",
    )
    _task: Any

    @property
    def task(self) -> Any:
        """The current task; assigning checks it like :meth:`set_task`."""
        return self._task

    @task.setter
    def task(self, task: Any) -> None:
        self._task = check_task(task, self.task_type)

    def set_task(self, task: Any) -> None:
        """Use ``task`` from the next step on.

        Raises:
            TypeError: ``task`` is not of the env's task type.
            ValueError: A field is not finite.
        """
        self.task = task

    def step(self, action: np.ndarray) -> tuple[NDArray[np.float64], np.float64, bool, bool, dict[str, Any]]:
        """Step the Gymnasium env and add the task to ``info``.

        A simulation that became unstable during the step (MuJoCo reset it, which shows as a clock that did
        not advance by ``dt``, or its state, observation or reward is not finite) ends the episode: the step
        is terminated with reward 0 and ``info["unstable"] = True``, as the fast vector envs do.
        """
        time_before = float(self.data.time)  # type: ignore[attr-defined]
        observation, reward, terminated, truncated, info = super().step(action)  # type: ignore[misc]
        info["task"] = self.task
        data = self.data  # type: ignore[attr-defined]
        clock_ok = abs(data.time - (time_before + self.dt)) <= self.dt * 1e-3  # type: ignore[attr-defined]
        finite = all(np.isfinite(x).all() for x in (data.qpos, data.qvel, observation, reward))
        if not (clock_ok and finite):
            terminated, reward, info["unstable"] = True, np.float64(0.0), True
        return observation, reward, terminated, truncated, info

    def _get_reset_info(self) -> dict[str, Any]:
        return {**super()._get_reset_info(), "task": self.task}  # type: ignore[misc]

    def __getstate__(self) -> dict[str, Any]:
        # Gymnasium pickles MuJoCo envs by re-running the constructor; pass ours, with the current task.
        kwargs = {"task": self.task, **{name: getattr(self, name) for name in self.pickled_arguments}}
        return {"_ezpickle_args": (), "_ezpickle_kwargs": kwargs}
