"""``metarl benchmark --env metarl/ML1-<env>-v3``: our collector against Meta-World's vector envs, one run.

The same for ``metarl/ML10-v3`` and ``metarl/ML45-v3``. Every row steps the same number of sub-envs for the
same number of steps with the same policy (the Meta-World paper's 2 x 128 tanh MLP, sampled in the loop), so
the ratios compare the machinery around the simulator:

- ``metarl-sync`` / ``metarl-async``: :class:`~metarl.collection.VectorCollector` on our registered id
  (Gymnasium's synchronous vector env, or one process per sub-env), tasks set per sub-env, episodes packed.
- ``metarl-sync-own-code``: ``metarl-sync`` on Meta-World's own step code instead of the faster
  replacements of :mod:`metarl.envs.metaworld_fast`, which give the same numbers.
- ``metaworld-sync`` / ``metaworld-async``: ``metaworld.make_ml_envs`` (what
  ``gym.make_vec("Meta-World/...")`` builds) driven by a bare loop (observation -> policy -> step) that
  keeps nothing: a lower bound on any collector built on it. They run Meta-World's code as it is (SciPy's
  code), also where this process has the replacements installed.
"""

from __future__ import annotations

import statistics
import time
from contextlib import nullcontext
from typing import Any

import numpy as np
import torch

from metarl.app.build import build
from metarl.app.measure import collection_rate, make_backend, seed_everything
from metarl.collection import PolicyFn, VectorCollector
from metarl.config import RLConfig
from metarl.core.tasks import unbuildable
from metarl.envs.metaworld_fast import meta_worlds_own_code

ROWS = ("metarl-sync", "metarl-async", "metarl-sync-own-code", "metaworld-sync", "metaworld-async")
#: goals per environment and split in Meta-World
GOALS_PER_CLASS = 50
#: training environments of the multi-environment benchmarks (ML1 has one)
TRAIN_ENVIRONMENTS = {"ML10": 10, "ML45": 45}


def is_metaworld_id(env_id: str) -> bool:
    """Whether ``env_id`` is one of our Meta-World ids (``metarl/ML1-<env>-v3``, ``ML10-v3``, ``ML45-v3``)."""
    return env_id.startswith(("metarl/ML1-", "metarl/ML10-", "metarl/ML45-"))


def _benchmark_name(env_id: str) -> str:
    """Meta-World's name for ``make_ml_envs``: ML1's environment (``reach-v3``), else ``ML10`` or ``ML45``."""
    name = env_id.removeprefix("metarl/")
    return name.removeprefix("ML1-") if name.startswith("ML1-") else name.removesuffix("-v3")


def _time_metaworld_vector(
    env_id: str, num_envs: int, horizon: int, strategy: str, policy: PolicyFn, repeats: int
) -> dict[str, Any]:
    """Env steps/s of Meta-World's own vector env under a bare policy loop (median of ``repeats``)."""
    import metaworld

    classes = TRAIN_ENVIRONMENTS.get(_benchmark_name(env_id), 1)
    if num_envs % classes:
        raise ValueError(f"Meta-World's vector env needs a multiple of {classes} sub-envs, not {num_envs}")
    per_class = num_envs // classes  # each sub-env cycles through an equal share of its class's 50 goals
    start = time.perf_counter()
    envs = metaworld.make_ml_envs(
        _benchmark_name(env_id),
        seed=0,
        meta_batch_size=num_envs,
        total_tasks_per_cls=GOALS_PER_CLASS // per_class * per_class,
        split="train",
        vector_strategy=strategy,
        max_episode_steps=horizon,
        terminate_on_success=False,
    )
    try:
        obs, _ = envs.reset(seed=0)
        startup = time.perf_counter() - start
        rates = []
        for _ in range(repeats):
            begin = time.perf_counter()
            for _ in range(horizon):
                with torch.no_grad():
                    actions = policy(torch.as_tensor(obs, dtype=torch.float32)[:, None, :])[:, 0]
                obs, *_ = envs.step(actions.numpy().astype(np.float64))
            rates.append(num_envs * horizon / (time.perf_counter() - begin))
    finally:
        envs.close()
    return {
        "steps_per_s": statistics.median(rates),
        "samples": rates,
        "num_envs": num_envs,
        "startup_s": startup,
    }


def _one_per_environment(distribution: Any, n: int) -> list[Any]:
    """``n`` training tasks, the environments in turn (ML1: ``n`` goals of its one environment)."""
    from metarl.envs.metaworld import balanced_draw, benchmark_tasks

    train = benchmark_tasks(distribution.benchmark, distribution.env_name)["train"]
    return balanced_draw(train, n, np.random.default_rng(0))


def run_metaworld_benchmark(env_id: str, quick: bool) -> dict[str, Any]:
    """Env steps per second of our collector and of Meta-World's vector envs on ``env_id``, in one run.

    Args:
        env_id: one of our Meta-World ids.
        quick: 50 steps, one repeat, ML1 2 goals x 2 episodes (a check of seconds); else Meta-World's 500
            steps, median of 3, ML1 4 goals x 5 episodes. ML10 and ML45 take one task per training
            environment: 10 x 2 episodes (quick 10 x 1), 45 x 1.

    Returns:
        Plain data: sizes and ``rows`` (median ``steps_per_s``, every sample, ``num_envs``, ``startup_s``, or
        ``error`` for a row that could not run).

    Raises:
        ConfigError: Meta-World is not installed (one line naming the install command).
    """
    # ML10 and ML45: one task per training environment, as Meta-World's vector env has an equal share of
    # sub-envs per environment, so both step the same mix of environments (their costs differ 2-3x)
    classes = TRAIN_ENVIRONMENTS.get(_benchmark_name(env_id), 1)
    n = classes if classes > 1 else (2 if quick else 4)
    e = max(1, (4 if quick else 20) // n)
    horizon, repeats = (50, 1) if quick else (500, 3)
    config = RLConfig()
    config.env.id = env_id
    config.policy.hidden_sizes, config.policy.activation = [128, 128], "tanh"  # the Meta-World paper's policy
    config.meta.batch_size, config.meta.episodes_per_task = n, e
    try:
        built = build(config)
        tasks = _one_per_environment(built.distribution, n)
    except ImportError as exc:
        raise unbuildable(env_id, exc) from None
    learner = built.learner
    num_envs = n * e
    results: dict[str, Any] = {
        "env_id": env_id,
        "num_tasks": n,
        "episodes_per_task": e,
        "num_envs": num_envs,
        "horizon": horizon,
        "repeats": repeats,
        "policy": "2 x 128 tanh",
        "rows": {},
    }
    for row in ROWS:
        own = row.endswith("-own-code") or row.startswith("metaworld-")
        own_code = meta_worlds_own_code() if own else nullcontext()
        try:
            with own_code:
                results["rows"][row] = _time_row(row, env_id, learner, tasks, n, e, horizon, repeats)
        except Exception as exc:  # a row that cannot run here is reported, the others still run
            text = str(exc).strip().splitlines()
            results["rows"][row] = {"error": f"{type(exc).__name__}: {text[0] if text else ''}"[:200]}
    return results


def _time_row(
    row: str, env_id: str, learner: Any, tasks: list[Any], n: int, e: int, horizon: int, repeats: int
) -> dict[str, Any]:
    """One row of :func:`run_metaworld_benchmark`: its median env steps/s, samples and start-up."""
    num_envs = n * e
    if row.startswith("metarl-"):
        start = time.perf_counter()
        backend = row.removeprefix("metarl-").removesuffix("-own-code")
        env = make_backend(env_id, num_envs, "gymnasium-" + backend)
        startup = time.perf_counter() - start
        collector = VectorCollector(env, n, e, horizon)
        try:
            policy = learner.policy_fn(learner.initial_params(n), seed_everything(0))
            rate, samples = collection_rate(collector, tasks, policy, repeats)
        finally:
            collector.close()
        return {"steps_per_s": rate, "samples": samples, "num_envs": num_envs, "startup_s": startup}
    policy = learner.policy_fn(learner.initial_params(num_envs), seed_everything(0))
    return _time_metaworld_vector(env_id, num_envs, horizon, row.removeprefix("metaworld-"), policy, repeats)


def format_metaworld_table(results: dict[str, Any]) -> str:
    """The printed summary of :func:`run_metaworld_benchmark`."""
    lines = [
        f"env {results['env_id']}, {results['num_envs']} sub-envs ({results['num_tasks']} tasks x "
        f"{results['episodes_per_task']} episodes) x {results['horizon']} steps, policy {results['policy']}, "
        f"median of {results['repeats']}"
    ]
    ours = results["rows"].get("metarl-sync", {}).get("steps_per_s")
    for name, row in results["rows"].items():
        if "error" in row:
            lines.append(f"  {name:20s} failed: {row['error']}")
            continue
        ratio = f"  {row['steps_per_s'] / ours:.2f}x metarl-sync" if ours else ""
        lines.append(
            f"  {name:20s} {row['steps_per_s']:10.0f} env steps/s{ratio}  start-up {row['startup_s']:.1f} s"
        )
    return "\n".join(lines)
