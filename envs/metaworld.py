"""Meta-World (Yu et al., 2019; the Farama Foundation's release 3.1.1) as task distributions: ML1, ML10, ML45.

Optional: ``pip install -e ".[metaworld]"`` installs ``metaworld==3.1.1``, which pins ``mujoco==3.3.0``. The
ids are registered whether or not it is installed, so that using one without it fails with a one-line error
naming the install command (:class:`MetaWorldMissing`).

- ``metarl/ML1-<env>-v3`` (e.g. ``metarl/ML1-reach-v3``, any of :data:`ENV_NAMES`): one environment, its 50
  training goals and 50 held-out test goals.
- ``metarl/ML10-v3``: 10 training environments and 5 held-out test environments, 50 goals each.
- ``metarl/ML45-v3``: 45 training environments and 5 held-out test environments.

Tasks are :class:`MetaWorldTask` values: the environment's name, the split, the index in Meta-World's task
list and Meta-World's own task data, so a sub-env (in this process, a worker or a Ray actor) sets a task
without building the benchmark. The benchmark (which draws the goals: ML45 takes tens of seconds) is built
once per process, from :data:`BENCHMARK_SEED`, the first time tasks are drawn: every run of an id has the
same split.

Episodes: 500 steps (Meta-World's ``max_path_length``); observation 39 values (the goal hidden, zeros), action
4 in ``[-1, 1]``; ``info["success"]`` is 1.0 on a step where the task is solved. An episode succeeds if any
of its steps does (Meta-World's evaluation protocol); ``metadata["reports_success"]`` tells the collector to
record it.
"""

from __future__ import annotations

import dataclasses
import functools
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np

#: the 50 environments of Meta-World v3 (``metaworld.ALL_V3_ENVIRONMENTS``; a test compares the two)
ENV_NAMES: tuple[str, ...] = (
    "assembly-v3", "basketball-v3", "bin-picking-v3", "box-close-v3", "button-press-topdown-v3",
    "button-press-topdown-wall-v3", "button-press-v3", "button-press-wall-v3", "coffee-button-v3",
    "coffee-pull-v3", "coffee-push-v3", "dial-turn-v3", "disassemble-v3", "door-close-v3", "door-lock-v3",
    "door-open-v3", "door-unlock-v3", "hand-insert-v3", "drawer-close-v3", "drawer-open-v3", "faucet-open-v3",
    "faucet-close-v3", "hammer-v3", "handle-press-side-v3", "handle-press-v3", "handle-pull-side-v3",
    "handle-pull-v3", "lever-pull-v3", "pick-place-wall-v3", "pick-out-of-hole-v3", "pick-place-v3",
    "plate-slide-v3", "plate-slide-side-v3", "plate-slide-back-v3", "plate-slide-back-side-v3",
    "peg-insert-side-v3", "peg-unplug-side-v3", "soccer-v3", "stick-push-v3", "stick-pull-v3", "push-v3",
    "push-wall-v3", "push-back-v3", "reach-v3", "reach-wall-v3", "shelf-place-v3", "sweep-into-v3",
    "sweep-v3", "window-open-v3", "window-close-v3",
)  # fmt: skip
BENCHMARKS = ("ML1", "ML10", "ML45")
#: Meta-World's benchmark seed: it draws each environment's 50 train and 50 test goals
BENCHMARK_SEED = 0
#: Meta-World's episode length
HORIZON = 500
INSTALL = 'pip install -e ".[metaworld]"'
#: environments one sub-env keeps built (ML10 and ML45 switch environments between tasks)
CACHED_ENVS = 3


class MetaWorldMissing(ImportError):
    """A Meta-World id was used without the ``metaworld`` package (its message is one line)."""


@dataclasses.dataclass(frozen=True)
class MetaWorldTask:
    """One goal variation of one Meta-World environment.

    Attributes:
        env_name: e.g. ``"reach-v3"``.
        split: ``"train"`` or ``"test"``.
        index: position in the benchmark's ``train_tasks`` or ``test_tasks``.
        data: Meta-World's task data (the pickled goal), passed to ``env.set_task`` as it is.
    """

    env_name: str
    split: str
    index: int
    data: bytes = dataclasses.field(repr=False)

    def describe(self) -> dict[str, Any]:
        """Its ``adaptation.csv`` columns: environment, split and goal index (not the pickled data)."""
        return {"env": self.env_name, "split": self.split, "goal": self.index}


def _metaworld() -> Any:
    try:
        import metaworld
    except ImportError:
        raise MetaWorldMissing(f"Meta-World is not installed: {INSTALL} (metaworld 3.1.1)") from None
    _install_fast_code()
    return metaworld


@functools.cache
def _install_fast_code() -> bool:
    """Meta-World's hot spots, faster and bit for bit the same, once per process (:mod:`.metaworld_fast`)."""
    from . import metaworld_fast

    return metaworld_fast.install()


@functools.cache
def benchmark_tasks(benchmark: str, env_name: str | None) -> dict[str, tuple[MetaWorldTask, ...]]:
    """The train and test tasks of ``benchmark`` (``ML1`` with ``env_name``), built once per process."""
    metaworld = _metaworld()
    if benchmark == "ML1":
        built = metaworld.ML1(env_name, seed=BENCHMARK_SEED)
    else:
        built = getattr(metaworld, benchmark)(seed=BENCHMARK_SEED)
    return {
        split: tuple(MetaWorldTask(t.env_name, split, i, t.data) for i, t in enumerate(tasks))
        for split, tasks in (("train", built.train_tasks), ("test", built.test_tasks))
    }


def balanced_draw(tasks: Sequence[MetaWorldTask], n: int, rng: np.random.Generator) -> list[MetaWorldTask]:
    """``n`` of ``tasks``, every one once before any repeats.

    Environments take turns (in order of first appearance), each one's goals in an order drawn with ``rng``.
    """
    by_env: dict[str, list[MetaWorldTask]] = {}
    for task in tasks:
        by_env.setdefault(task.env_name, []).append(task)
    orders = [[goals[int(i)] for i in rng.permutation(len(goals))] for goals in by_env.values()]
    rounds = max(len(order) for order in orders)
    cycle = [order[r] for r in range(rounds) for order in orders if r < len(order)]
    return [cycle[i % len(cycle)] for i in range(n)]


class MetaWorldEnv(gym.Env[np.ndarray, np.ndarray]):
    """A Meta-World benchmark behind the task-distribution protocol; ``task`` picks environment and goal.

    Args:
        benchmark: ``"ML1"``, ``"ML10"`` or ``"ML45"``.
        env_name: the environment of ``ML1`` (one of :data:`ENV_NAMES`); ``None`` for ``ML10`` and ``ML45``.
        render_mode: passed to the Meta-World environments.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 80, "reports_success": True}  # Meta-World's fps

    def __init__(self, benchmark: str, env_name: str | None = None, render_mode: str | None = None) -> None:
        """See the class docstring."""
        if benchmark not in BENCHMARKS or (benchmark == "ML1") != (env_name is not None):
            raise ValueError(f"benchmark {benchmark!r} with env_name {env_name!r}")
        if env_name is not None and env_name not in ENV_NAMES:
            raise ValueError(f"env_name {env_name!r} is not a Meta-World v3 environment")
        self.benchmark, self.env_name, self.render_mode = benchmark, env_name, render_mode
        self._envs: OrderedDict[str, Any] = OrderedDict()
        first = self._env(env_name or "reach-v3")  # every v3 environment has these spaces
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, first.observation_space.shape, np.float64)
        self.action_space = first.action_space
        self._task: MetaWorldTask | None = None

    def _env(self, name: str) -> Any:
        """The sub-env's Meta-World environment ``name``, built on first use (at most :data:`CACHED_ENVS`)."""
        if name not in self._envs:
            cls = _metaworld().env_dict.ALL_V3_ENVIRONMENTS[name]
            self._envs[name] = cls(render_mode=self.render_mode)
            while len(self._envs) > CACHED_ENVS:
                self._envs.popitem(last=False)[1].close()
        self._envs.move_to_end(name)
        return self._envs[name]

    @property
    def task(self) -> MetaWorldTask | None:
        """The current task (``None`` until one is set)."""
        return self._task

    @task.setter
    def task(self, task: MetaWorldTask) -> None:
        if not isinstance(task, MetaWorldTask):
            raise TypeError(f"task must be a MetaWorldTask, got {task!r}")
        if self.env_name is not None and task.env_name != self.env_name:
            raise ValueError(f"task of {task.env_name!r} given to ML1 of {self.env_name!r}")
        self._task = task

    def set_task(self, task: MetaWorldTask) -> None:
        """Same as ``env.task = task``."""
        self.task = task

    def _current(self) -> Any:
        if self._task is None:
            raise RuntimeError("reset the env before stepping it")
        return self._envs[self._task.env_name]

    @property
    def task_fields_hint(self) -> str:
        """What ``metarl render --task`` accepts for this benchmark (see :meth:`task_from_fields`)."""
        env = "" if self.env_name else "env=<one of the split's environments>,"
        return f"allowed: {env}goal=<index in the split, as adaptation.csv's task_goal>[,split=test|train]"

    def task_from_fields(self, values: dict[str, str]) -> MetaWorldTask:
        """The task ``metarl render --task goal=3`` (ML10, ML45: ``env=...,goal=...``) names.

        ``goal`` is the task's index in its split (default ``test``), as ``adaptation.csv`` writes it.

        Raises:
            ValueError: an unknown field, a split or goal that does not exist, another environment's goal.
        """
        unknown = sorted(set(values) - {"env", "goal", "split"})
        if unknown:
            raise ValueError(f"unknown field {unknown[0]!r}")
        split = values.get("split", "test")
        if split not in ("train", "test"):
            raise ValueError(f"split={split!r} is not train or test")
        if "goal" not in values:
            raise ValueError("missing goal")
        tasks = benchmark_tasks(self.benchmark, self.env_name)[split]
        try:
            goal = int(values["goal"])
        except ValueError:
            raise ValueError(f"goal={values['goal']!r} is not an integer") from None
        if not 0 <= goal < len(tasks):
            raise ValueError(f"goal={goal} is outside 0..{len(tasks) - 1} of the {split} split")
        task = tasks[goal]
        env = values.get("env", self.env_name)
        if env is None:
            raise ValueError("missing env (ML10 and ML45 name the environment)")
        if env != task.env_name:
            raise ValueError(f"goal {goal} of the {split} split is one of {task.env_name!r}, not {env!r}")
        return task

    def sample_tasks(self, n: int, rng: np.random.Generator) -> list[MetaWorldTask]:
        """``n`` training tasks drawn uniformly (with replacement) with ``rng`` alone."""
        return self._sample("train", n, rng)

    def sample_test_tasks(self, n: int, rng: np.random.Generator) -> list[MetaWorldTask]:
        """``n`` held-out test tasks (ML1: test goals; ML10, ML45: test environments), each at most once.

        Evaluation covers the test split evenly: the test environments take turns (ML10's 5 give 10 goals
        each of ``n = 50``), each environment's goals in an order drawn with ``rng``; only ``n`` beyond the
        split's size repeats goals. ML1's ``n = 50`` is every test goal once.
        """
        return self.sample_evaluation_tasks(n, rng, "test")

    def sample_evaluation_tasks(self, n: int, rng: np.random.Generator, split: str) -> list[MetaWorldTask]:
        """``n`` tasks of ``split`` (``test`` or ``train``) drawn as :meth:`sample_test_tasks` draws."""
        if split not in ("train", "test"):
            raise ValueError(f"split {split!r} is not train or test")
        return balanced_draw(benchmark_tasks(self.benchmark, self.env_name)[split], n, rng)

    def _sample(self, split: str, n: int, rng: np.random.Generator) -> list[MetaWorldTask]:
        tasks = benchmark_tasks(self.benchmark, self.env_name)[split]
        return [tasks[int(i)] for i in rng.integers(len(tasks), size=n)]

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Set the current task on its environment and reset it."""
        super().reset(seed=seed)
        if self._task is None:  # no task set yet: the first training task
            self._task = benchmark_tasks(self.benchmark, self.env_name)["train"][0]
        env = self._env(self._task.env_name)
        env.set_task(_metaworld().types.Task(env_name=self._task.env_name, data=self._task.data))
        obs, info = env.reset(seed=seed)
        return np.asarray(obs, dtype=np.float64), dict(info)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """One Meta-World step; ``info["success"]`` is 1.0 where the task is solved."""
        obs, reward, terminated, truncated, info = self._current().step(action)
        return np.asarray(obs, dtype=np.float64), float(reward), bool(terminated), bool(truncated), dict(info)

    def render(self) -> Any:
        """The current environment's frame (``render_mode="rgb_array"``)."""
        return self._current().render()

    def close(self) -> None:
        """Close every built environment."""
        for env in self._envs.values():
            env.close()
        self._envs.clear()
