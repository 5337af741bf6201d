"""``metarl benchmark``: speed of the collector's backends and of a meta-iteration, measured in one run.

Everything is timed in the same process on the same machine, so the ratios are comparable; absolute
numbers move with machine load (quote medians and ratios). The measurements are in
:mod:`metarl.app.measure`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, get_args

import numpy as np
import torch

from metarl.app.benchmark_metaworld import format_metaworld_table, is_metaworld_id, run_metaworld_benchmark
from metarl.app.build import build, build_collector
from metarl.app.measure import (
    BACKENDS,
    collection_rate,
    make_backend,
    measure_in_subprocess,
    measure_meta_iteration,
    physics_rate,
    seed_everything,
)
from metarl.collection import VectorCollector
from metarl.config import Backend, RLConfig
from metarl.core.errors import ConfigError
from metarl.core.tasks import check_env_id
from metarl.training.checkpoints import atomic_write


def cmd_benchmark(args: argparse.Namespace) -> int:
    """``metarl benchmark``: collector backends, physics limit and meta-iteration time, in one run."""
    check_env_id(args.env)
    if args.workers < 1:
        raise ConfigError(f"--workers: must be >= 1, got {args.workers}")
    metaworld = not args.backends and is_metaworld_id(args.env)
    if not args.backends and not metaworld and not args.env.startswith(("metarl/HalfCheetah", "metarl/Ant")):
        raise ConfigError(
            f"--env: {args.env!r} has no MuJoCo model; benchmark a metarl/HalfCheetah*, metarl/Ant* or "
            "Meta-World (metarl/ML1-<env>-v3, metarl/ML10-v3, metarl/ML45-v3) id"
        )
    out = Path(args.out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"--out: cannot create {str(out.parent)!r}: {exc.strerror}") from None
    command = ["metarl benchmark", "--env", args.env, *(["--quick"] if args.quick else [])]
    if args.backends:
        result = run_backend_benchmark(args.env, args.quick, args.backends, args.workers)
        command += ["--backends", *args.backends, "--workers", str(args.workers)]
    elif metaworld:
        result = run_metaworld_benchmark(args.env, args.quick)
    else:
        result = run_benchmark(args.env, args.quick)
    result["date"] = time.strftime("%Y-%m-%d %H:%M:%S")
    result["command"] = " ".join(command)
    atomic_write(out, json.dumps(result, indent=2))
    table = format_backend_table if args.backends else format_metaworld_table if metaworld else format_table
    print(table(result))
    print(f"wrote {out}")
    return 0


def format_table(results: dict[str, Any]) -> str:
    """The printed summary of a benchmark result."""
    lines = [f"env {results['env_id']}, {results['num_envs']} sub-envs, horizon {results['horizon']}"]
    fast = results["collectors"].get("fast", {}).get("steps_per_s")
    for name, row in results["collectors"].items():
        if "error" in row:
            lines.append(f"  collector {name:16s} failed: {row['error']}")
            continue
        ratio = f"  fast/this {fast / row['steps_per_s']:.2f}x" if fast else ""
        lines.append(f"  collector {name:16s} {row['steps_per_s']:10.0f} env steps/s{ratio}")
    physics = results.get("physics_steps_per_s")
    if physics:
        share = f" (fast collector = {fast / physics:.0%} of it)" if fast else ""
        lines.append(f"  physics limit (mujoco.rollout, no policy) {physics:10.0f} env steps/s{share}")
    for name, row in results.get("meta_iterations", {}).items():
        lines.append(
            f"  meta-iteration {name} ({row['policy']}): {row['total']:.2f} s = "
            f"{row['total'] / row['physics_s']:.2f}x physics (sampling {row['sampling']:.2f}, adaptation "
            f"{row['adaptation']:.2f}, meta-update {row['meta_update']:.2f}); "
            f"peak memory {row['peak_mib']:.0f} MiB"
        )
        for variant, f in row["fisher"].items():
            lines.append(
                f"    Fisher product {variant:20s} {f['product_s']:.3f} s each, "
                f"meta-update {f['meta_update_s']:.2f} s, iteration {f['iteration_s']:.2f} s = "
                f"{f['iteration_over_physics']:.2f}x physics; step norm {f['step_norm']:.4f}, cosine with "
                f"exact {f['step_cosine_with_exact']:.3f}, surrogate gain {f['surrogate_gain']:.5f}"
            )
    return "\n".join(lines)


#: process-per-env backends start a Python process per sub-env; more than this exhausts memory here
PROCESS_BACKEND_MAX_ENVS = 40


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:200]


def run_benchmark(
    env_id: str, quick: bool, backends: Sequence[str] = BACKENDS, threads: int = 2
) -> dict[str, Any]:
    """Measure collectors, the physics limit and meta-iterations for ``env_id``.

    Args:
        env_id: a registered MuJoCo task id (the physics limit needs a MuJoCo model).
        quick: small sizes and one repeat, for a check in under two minutes.
        backends: which of :data:`BACKENDS` to time.
        threads: threads for the physics limit (one per core).

    Returns:
        Plain data: sizes, ``collectors`` (steps/s per backend), ``physics_steps_per_s`` and
        ``meta_iterations``.
    """
    n, e, horizon, repeats = (2, 3, 40, 1) if quick else (40, 20, 200, 3)
    config = RLConfig()
    config.env.id = env_id
    config.meta.batch_size, config.meta.episodes_per_task = n, e
    built = build(config)
    learner = built.learner
    tasks = built.distribution.sample_tasks(n, np.random.default_rng(0))
    policy = learner.policy_fn(learner.initial_params(n), seed_everything(0))
    results: dict[str, Any] = {"env_id": env_id, "num_envs": n * e, "horizon": horizon, "repeats": repeats}
    results["collectors"] = {}
    for backend in backends:
        n_b = (
            n if not backend.endswith(("async", "subproc")) else max(1, min(n, PROCESS_BACKEND_MAX_ENVS // e))
        )
        try:
            start = time.perf_counter()
            env = make_backend(env_id, n_b * e, backend)
            startup = time.perf_counter() - start
            backend_collector = VectorCollector(env, n_b, e, horizon)
            policy_b = learner.policy_fn(learner.initial_params(n_b), seed_everything(0))
            rate, samples = collection_rate(backend_collector, tasks[:n_b], policy_b, repeats)
            backend_collector.close()
            results["collectors"][backend] = {
                "steps_per_s": rate,
                "samples": samples,
                "num_envs": n_b * e,
                "startup_s": startup,
            }
        except Exception as exc:  # a backend that cannot run here is reported, the others still run
            results["collectors"][backend] = {"error": _one_line(exc)}
    del policy
    results["physics_steps_per_s"] = physics_rate(env_id, n * e, horizon, repeats, threads)
    names = ("quick",) if quick else ("160k", "320k")
    results["meta_iterations"] = {
        name: measure_in_subprocess(
            measure_meta_iteration,
            env_id,
            name,
            repeats,
            2 if quick else 5,
            results["physics_steps_per_s"],
        )
        for name in names
    }
    return results


#: the collector backends of ``collector.backend``, compared by :func:`run_backend_benchmark`
COLLECTOR_BACKENDS: tuple[Backend, ...] = get_args(Backend)


def run_backend_benchmark(
    env_id: str, quick: bool, backends: Sequence[Backend], workers: int = 2
) -> dict[str, Any]:
    """Env steps per second of each ``collector.backend``, same tasks, policy and seeds, in one run.

    Each backend first collects once untimed (worker start-up, reported as ``startup_s``), then
    ``repeats`` timed collections; every batch is checked equal to the ``local`` one.

    Args:
        env_id: a registered task id.
        quick: small sizes and one repeat.
        backends: names from :data:`COLLECTOR_BACKENDS`.
        workers: worker processes or actors of ``subprocess`` and ``ray``.

    Returns:
        Plain data: sizes and ``backends`` (median ``steps_per_s``, every sample, ``startup_s``,
        ``same_as_local``).
    """
    n, e, repeats = (2, 2, 1) if quick else (40, 20, 5)
    results: dict[str, Any] = {"env_id": env_id, "num_tasks": n, "episodes_per_task": e, "repeats": repeats}
    results["workers"], results["backends"] = workers, {}
    reference = None
    for backend in backends:
        config = RLConfig()
        config.env.id, config.meta.batch_size, config.meta.episodes_per_task = env_id, n, e
        config.collector.backend, config.collector.workers = backend, workers
        built = build(config)
        learner, collector = built.learner, build_collector(config, n, e)
        tasks = built.distribution.sample_tasks(n, np.random.default_rng(0))
        try:
            start = time.perf_counter()
            batch = collector.collect(
                tasks, learner.policy_fn(learner.initial_params(n), seed_everything(0)), 0
            )
            startup = time.perf_counter() - start
            reference = batch if reference is None else reference
            same = all(
                torch.equal(getattr(batch, f), getattr(reference, f))
                for f in ("observations", "actions", "rewards", "mask", "lengths")
            )
            rates = []
            for seed in range(1, repeats + 1):
                policy = learner.policy_fn(learner.initial_params(n), seed_everything(seed))
                begin = time.perf_counter()
                steps = float(collector.collect(tasks, policy, seed).lengths.sum())
                rates.append(steps / (time.perf_counter() - begin))
        except Exception as exc:  # a backend that cannot run here is reported, the others still run
            results["backends"][backend] = {"error": _one_line(exc)}
            continue
        finally:
            collector.close()
        results["backends"][backend] = {
            "steps_per_s": statistics.median(rates),
            "samples": rates,
            "startup_s": startup,
            "same_as_local": same,
        }
    return results


def format_backend_table(results: dict[str, Any]) -> str:
    """The printed summary of :func:`run_backend_benchmark`."""
    lines = [
        f"env {results['env_id']}, {results['num_tasks']} tasks x {results['episodes_per_task']} episodes, "
        f"{results['workers']} workers, median of {results['repeats']}"
    ]
    local = results["backends"].get("local", {}).get("steps_per_s")
    for name, row in results["backends"].items():
        if "error" in row:
            lines.append(f"  backend {name:10s} failed: {row['error']}")
            continue
        ratio = f"  {row['steps_per_s'] / local:.2f}x local" if local else ""
        lines.append(
            f"  backend {name:10s} {row['steps_per_s']:10.0f} env steps/s{ratio}  start-up "
            f"{row['startup_s']:.1f} s  same batch as the first: {row['same_as_local']}"
        )
    return "\n".join(lines)
