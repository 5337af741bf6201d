"""The benchmark's measurements: env steps per second of a collector, the physics limit, meta-iterations.

Everything is timed in the same process on the same machine, so the ratios are comparable; absolute
numbers move with machine load (quote medians and ratios). ``metarl benchmark``
(:mod:`metarl.app.benchmark`) runs them and prints the tables.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import resource
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from metarl.agents.maml_trpo import MAMLTRPO
from metarl.app.build import build
from metarl.collection import PolicyFn, VectorCollector, make_vector_env
from metarl.config import Activation, FisherProduct, RLConfig
from metarl.core.types import MetaBatch, Task

if TYPE_CHECKING:
    from stable_baselines3.common.vec_env import VecEnv

BACKENDS = ("fast", "gymnasium-sync", "gymnasium-async", "sb3-dummy", "sb3-subproc")


class SB3VectorEnv(VectorEnv):
    """A stable-baselines3 ``VecEnv`` behind Gymnasium's ``VectorEnv`` API, for the same collector to drive.

    SB3 resets a finished sub-env inside the step that ended it (Gymnasium's ``SAME_STEP``). Tasks are set
    with ``env_method("set_task", ...)`` per sub-env: SB3's ``set_attr`` would set the attribute on the
    outermost wrapper, where the env never sees it.

    Args:
        venv: an SB3 ``DummyVecEnv`` or ``SubprocVecEnv`` of task envs.
    """

    metadata: dict[str, Any] = {"autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(self, venv: VecEnv) -> None:
        """Wrap ``venv``."""
        self.venv = venv
        self.num_envs = venv.num_envs
        self.single_observation_space = venv.observation_space
        self.single_action_space = venv.action_space
        self.observation_space = batch_space(venv.observation_space, self.num_envs)
        self.action_space = batch_space(venv.action_space, self.num_envs)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Reset every sub-env (sub-env ``i`` seeded ``seed + i``)."""
        if seed is not None:
            self.venv.seed(seed)
        return self.venv.reset(), {}

    def step(self, actions: np.ndarray):
        """One step of every sub-env, as Gymnasium's 5-tuple."""
        obs, rewards, dones, infos = self.venv.step(actions)
        truncated = np.array([info.get("TimeLimit.truncated", False) for info in infos])
        return obs, rewards, dones & ~truncated, truncated, {}

    def set_attr(self, name: str, values: Sequence[Any] | Any) -> None:
        """Set ``task`` per sub-env through the env's ``set_task``."""
        if name != "task":
            raise AttributeError(f"only 'task' can be set, not {name!r}")
        values = list(values) if isinstance(values, (list, tuple)) else [values] * self.num_envs
        for i, value in enumerate(values):
            self.venv.env_method("set_task", value, indices=[i])

    def close_extras(self, **kwargs: Any) -> None:
        """Close the SB3 env."""
        self.venv.close()


def make_backend(env_id: str, num_envs: int, backend: str) -> VectorEnv:
    """Build ``num_envs`` sub-envs of ``env_id`` with one of :data:`BACKENDS`."""
    if backend == "fast":
        return make_vector_env(env_id, num_envs, "auto")
    if backend.startswith("gymnasium-"):
        return make_vector_env(env_id, num_envs, backend.removeprefix("gymnasium-"))
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

    # the spec, not the id: worker processes have not imported the package that registered the id
    spec = gym.spec(env_id)
    factories: list[Callable[[], gym.Env]] = [functools.partial(gym.make, spec) for _ in range(num_envs)]
    venv = (
        DummyVecEnv(factories)
        if backend == "sb3-dummy"
        else SubprocVecEnv(factories, start_method="forkserver")
    )
    return SB3VectorEnv(venv)


def collection_rate(
    collector: VectorCollector, tasks: Sequence[Task], policy: PolicyFn, repeats: int
) -> tuple[float, list[float]]:
    """Median env steps per second of ``collector.collect`` with the policy in the loop, and every sample."""
    rates = []
    for seed in range(repeats):
        start = time.perf_counter()
        batch = collector.collect(tasks, policy, seed=seed)
        rates.append(float(batch.lengths.sum()) / (time.perf_counter() - start))
    return statistics.median(rates), rates


def physics_rate(env_id: str, num_envs: int, horizon: int, repeats: int, threads: int) -> float:
    """Median env steps/s of open-loop ``mujoco.rollout`` (no policy, no rewards): the physics limit."""
    import mujoco
    import mujoco.rollout
    from gymnasium.envs.mujoco.mujoco_env import MujocoEnv

    env = gym.make(env_id).unwrapped
    if not isinstance(env, MujocoEnv):
        raise TypeError(f"{env_id!r} is not a MuJoCo env; the physics limit needs its model")
    model, frame_skip = env.model, env.frame_skip
    data = [mujoco.MjData(model) for _ in range(threads)]
    state = np.zeros((1, mujoco.mj_stateSize(model, mujoco.mjtState.mjSTATE_FULLPHYSICS)))
    env.reset(seed=0)
    mujoco.mj_getState(model, env.data, state[0], mujoco.mjtState.mjSTATE_FULLPHYSICS)
    initial = np.repeat(state, num_envs, axis=0)
    control = np.zeros((num_envs, horizon * frame_skip, model.nu))
    rates = []
    with mujoco.rollout.Rollout(nthread=threads) as pool:
        for _ in range(repeats):
            start = time.perf_counter()
            pool.rollout(model, data, initial, control, chunk_size=max(1, num_envs // threads))
            rates.append(num_envs * horizon / (time.perf_counter() - start))
    env.close()
    return statistics.median(rates)


def time_meta_iterations(
    sample: Callable[[], MetaBatch], step: Callable[[MetaBatch], dict[str, float]], repeats: int
) -> tuple[dict[str, float], MetaBatch]:
    """Median seconds of sampling, inner adaptation and meta-update over ``repeats`` meta-iterations.

    Returns the medians and the last meta-batch (for the Fisher-product comparison).
    """
    parts: dict[str, list[float]] = {"sampling": [], "adaptation": [], "meta_update": [], "total": []}
    meta_batch: MetaBatch | None = None
    for _ in range(repeats):
        start = time.perf_counter()
        meta_batch = sample()
        middle = time.perf_counter()
        step(meta_batch)
        parts["meta_update"].append(time.perf_counter() - middle)
        parts["sampling"].append(meta_batch.timings["time/sampling"])
        parts["adaptation"].append(meta_batch.timings["time/adaptation"])
        parts["total"].append(time.perf_counter() - start)
    if meta_batch is None:
        raise ValueError(f"repeats: must be >= 1, got {repeats}")
    return {k: statistics.median(v) for k, v in parts.items()}, meta_batch


#: meta-iteration configs: name -> (tasks, episodes, horizon, hidden sizes, activation)
META_CONFIGS: dict[str, tuple[int, int, int, tuple[int, ...], Activation]] = {
    "160k": (40, 20, 100, (64, 64), "tanh"),  # pytorch-maml-rl's HalfCheetahVel config (REFERENCE.md)
    "320k": (40, 20, 200, (100, 100), "relu"),  # the MAML paper's locomotion config
    "quick": (2, 3, 40, (100, 100), "relu"),
}
#: Fisher-vector product variants compared: name -> (trpo.fisher_product, trpo.fisher_subsample)
FISHER_VARIANTS: dict[str, tuple[FisherProduct, float]] = {
    "jfj": ("jfj", 1.0),
    "double_backprop": ("double_backprop", 1.0),
    "jfj_subsample_0.25": ("jfj", 0.25),  # a quarter of the tasks, each exact
    "closed_form": ("closed_form", 1.0),  # jfj's numbers, the MLP's derivatives written out
    "closed_form_subsample_0.5": ("closed_form", 0.5),
}


def compare_fisher_products(
    learner: MAMLTRPO, meta_batch: MetaBatch, products: int
) -> dict[str, dict[str, float]]:
    """Time every variant of :data:`FISHER_VARIANTS` on the same meta-batch from the same parameters.

    Per variant: seconds to set up (the gradient included), per product (median of ``products``) and for a
    whole meta-update; and what the update did, since a cheaper product is only worth it if the step stays
    the same: the accepted step's norm, its cosine with the first variant's (the exact ``jfj``), the
    surrogate gain and the KL.
    """
    saved = learner.state_dict()
    theta = learner.meta_parameters().clone()
    default = learner.trpo
    out: dict[str, dict[str, float]] = {}
    reference: torch.Tensor | None = None
    for name, (product, subsample) in FISHER_VARIANTS.items():
        learner.trpo = dataclasses.replace(default, fisher_product=product, fisher_subsample=subsample)
        start = time.perf_counter()
        _, grad, fvp, _ = learner.linearize(meta_batch)
        setup = time.perf_counter() - start
        samples = []
        for _ in range(products):
            start = time.perf_counter()
            fvp(grad)
            samples.append(time.perf_counter() - start)
        del fvp
        start = time.perf_counter()
        metrics = learner.step(meta_batch)
        elapsed = time.perf_counter() - start
        step = learner.meta_parameters() - theta
        reference = step if reference is None else reference
        out[name] = {
            "setup_s": setup,
            "product_s": statistics.median(samples),
            "meta_update_s": elapsed,
            "ls_steps": metrics["trpo/ls_steps"],
            "step_norm": float(step.norm()),
            "step_cosine_with_exact": float(torch.nn.functional.cosine_similarity(step, reference, dim=0)),
            "surrogate_gain": metrics["trpo/improvement"],
            "kl": metrics["trpo/kl"],
        }
        learner.load_state_dict(saved)
    learner.trpo = default
    return out


def measure_meta_iteration(
    env_id: str, name: str, repeats: int, products: int, physics_steps_per_s: float
) -> dict[str, Any]:
    """One row of the meta-iteration table, meant to run in a fresh process so its peak memory is its own.

    Default learner (``trpo.fisher_product: jfj``, exact) for ``repeats`` meta-iterations, then the
    Fisher-product comparison on the last meta-batch.

    Returns:
        Plain data (JSON): the median seconds of :func:`time_meta_iterations`, sizes, peak memory and
        ``fisher`` (:func:`compare_fisher_products`, with each variant's whole-iteration time).
    """
    n, e, horizon, hidden, activation = META_CONFIGS[name]
    config = RLConfig()
    config.env.id = env_id
    config.meta.batch_size, config.meta.episodes_per_task = n, e
    config.policy.hidden_sizes, config.policy.activation = list(hidden), activation
    torch.set_num_threads(2)
    built = build(config)
    learner = built.learner
    collector = VectorCollector(make_vector_env(env_id, n * e), n, e, horizon)
    rng, gen = np.random.default_rng(1), seed_everything(1)
    timings, meta_batch = time_meta_iterations(
        lambda: learner.sample(collector, built.distribution.sample_tasks(n, rng), rng, gen),
        learner.step,
        repeats,
    )
    collector.close()
    row: dict[str, Any] = dict(timings)
    row["peak_mib"] = peak_memory_mib()
    row["env_steps"] = 2 * n * e * horizon
    row["physics_s"] = row["env_steps"] / physics_steps_per_s
    row["policy"] = f"{'x'.join(map(str, hidden))} {activation}"
    row["fisher"] = compare_fisher_products(learner, meta_batch, products)
    for variant in row["fisher"].values():  # the whole iteration had the meta-update used this variant
        variant["iteration_s"] = row["sampling"] + row["adaptation"] + variant["meta_update_s"]
        variant["iteration_over_physics"] = variant["iteration_s"] / row["physics_s"]
    row["peak_mib_with_comparison"] = peak_memory_mib()
    return row


def _exit_with_parent() -> None:
    """On Linux, have the kernel end this worker when the benchmark process dies (even by SIGKILL).

    The worker also keeps freed memory as the ``metarl`` command does
    (:func:`metarl.training.allocator.keep_freed_memory`), so that its timings are those of a training run.
    """
    import ctypes
    import signal
    import sys

    from metarl.training.allocator import keep_freed_memory

    keep_freed_memory()
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def measure_in_subprocess(fn: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    """``fn(*args)`` in a fresh spawned process (its own peak memory), returning its result."""
    import concurrent.futures
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(
        max_workers=1, mp_context=context, initializer=_exit_with_parent
    ) as pool:
        return pool.submit(fn, *args).result()


def peak_memory_mib() -> float:
    """Peak resident memory of this process so far, MiB.

    On Linux from ``VmHWM`` in ``/proc/self/status``: ``ru_maxrss`` survives ``exec``, so in a freshly spawned
    worker it would still report the parent's peak whenever that is larger.
    """
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def seed_everything(seed: int) -> torch.Generator:
    """A torch generator for action noise (nothing global is seeded)."""
    return torch.Generator().manual_seed(seed)
