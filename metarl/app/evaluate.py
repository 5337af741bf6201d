"""``metarl evaluate``: the adaptation curve of a checkpoint on new tasks, with baselines and other runs."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from metarl.agents.oracle import OracleAdapter
from metarl.app.build import RLBuild, build, build_collector, build_fewshot, use_local_collector
from metarl.app.runs import load_policy, output_path, print_summary
from metarl.config import FewShotConfig, RLConfig, config_from_dict, config_to_dict, inner_step_sizes
from metarl.core.errors import ConfigError
from metarl.core.seeding import evaluation_generators
from metarl.core.tasks import sample_evaluation_tasks
from metarl.core.types import Adapter, Task
from metarl.envs.wrappers import task_features
from metarl.evaluation import (
    SUCCESS_COLUMN,
    adaptation_csv_path,
    adaptation_curve,
    evaluate_fewshot,
    read_adaptation_csv,
    same_tasks,
    write_adaptation_files,
)
from metarl.training.checkpoints import load_checkpoint, resolve_target

#: evaluate's options that override the config's evaluation section
EVALUATE_OPTIONS = (
    "tasks",
    "steps",
    "episodes",
    "seed",
    "first_step_size",
    "later_step_size",
    "shots",
    "query_shots",
    "split",
    "query_episodes",
    "query_action",
)
#: step sizes tried when fine-tuning the random-initialisation and pretrained baselines, as multiples of
#: inner.step_size (the paper picked the baselines' step sizes from a small grid)
FINE_TUNE_STEP_GRID = (0.25, 0.5, 1.0, 2.0, 4.0)


@dataclass(frozen=True)
class ComparedRun:
    """Another run's ``adaptation.csv``, added to the figure by ``--compare``.

    Attributes:
        name: the CSV's path.
        curves: method -> returns ``[N, k + 1]``.
        tasks: the tasks it was evaluated on, as field dicts.
        successes: method -> success rates ``[N, k + 1]``, for the methods that have them.
    """

    name: str
    curves: dict[str, Tensor]
    tasks: list[dict[str, float | str]]
    successes: dict[str, Tensor] = field(default_factory=dict)


@dataclass(frozen=True)
class Curve:
    """One method's adaptation curve and the tasks it was measured on.

    Attributes:
        tasks: the ``N`` new tasks.
        returns: mean return ``[N, k + 1]`` after ``0..k`` inner steps.
        successes: success rate ``[N, k + 1]`` (envs that report success), else ``None``.
    """

    tasks: list[Task]
    returns: Tensor
    successes: Tensor | None = None


def cmd_evaluate(args: argparse.Namespace) -> int:
    """``metarl evaluate``: adaptation curve of a checkpoint (or a run's latest) on new tasks."""
    path, default_out = resolve_target(args.target)
    state = load_checkpoint(path)
    config = config_from_dict(state["config"])
    use_local_collector(config)
    for key in EVALUATE_OPTIONS:
        if getattr(args, key) is not None:
            setattr(config.evaluation, key, getattr(args, key))
    if args.batch_unit is not None:
        config.collector.batch_unit = args.batch_unit
    config = config_from_dict(config_to_dict(config))
    out_dir = output_path(args.out, default_out)
    if isinstance(config, FewShotConfig):
        if args.baselines or args.compare:
            raise ConfigError("evaluate: --baselines and --compare are for meta-RL runs, not few-shot ones")
        return _evaluate_fewshot(config, state, out_dir)
    compared = [read_compared(Path(other)) for other in args.compare or []]
    built = build(config)
    load_policy(built.learner, state)
    summary = evaluate_methods(config, out_dir, built, args.baselines or [], compared)
    print(f"wrote {out_dir / 'adaptation.csv'}, adaptation.json, adaptation.png")
    print_summary(summary)
    return 0


def _evaluate_fewshot(config: FewShotConfig, state: dict[str, Any], out_dir: Path) -> int:
    built = build_fewshot(config)
    built.learner.model.load_state_dict(state["policy"])
    summary = evaluate_fewshot(built.learner, built.tasks, config, out_dir)
    print(f"wrote {out_dir / 'adaptation.csv'}, adaptation.json, adaptation.png")
    print_summary(summary)
    return 0


def read_compared(path: Path) -> ComparedRun:
    """The curves of ``path`` (a run directory or an ``adaptation.csv``) for ``--compare``.

    Raises:
        ConfigError: no readable ``adaptation.csv`` there.
    """
    csv_path = adaptation_csv_path(path)
    try:
        curves, tasks = read_adaptation_csv(csv_path)
        successes, _ = read_adaptation_csv(csv_path, SUCCESS_COLUMN)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return ComparedRun(str(csv_path), curves, tasks, successes)


def evaluate_methods(
    config: RLConfig,
    out_dir: Path,
    built: RLBuild,
    baselines: Sequence[str] = (),
    compared: Sequence[ComparedRun] = (),
) -> dict[str, Any]:
    """MAML's curve, the requested baselines and the compared runs' curves, all on the same new tasks.

    Returns:
        The summary :func:`metarl.evaluation.write_adaptation_files` wrote to ``out_dir``.
    """
    collector = build_collector(config, config.evaluation.tasks, config.evaluation.episodes)
    query = None
    if config.evaluation.query_episodes:
        query = build_collector(config, config.evaluation.tasks, config.evaluation.query_episodes)

    def curve_of(adapter: Adapter, step_sizes: list[float]) -> Curve:
        rng, gen = evaluation_generators(config.evaluation.seed)  # every method: same tasks, resets and noise
        tasks = sample_evaluation_tasks(
            built.distribution, config.evaluation.tasks, rng, config.evaluation.split
        )
        if config.method == "oracle" and adapter is built.learner:
            features = torch.as_tensor(np.stack([task_features(t) for t in tasks]))
            adapter = OracleAdapter(built.learner, features)
        measured = adaptation_curve(
            adapter, collector, tasks, step_sizes, rng, gen, query, config.evaluation.query_action
        )
        return Curve(tasks, measured.returns, measured.successes)

    def best_over_grid(adapter: Adapter) -> tuple[float, Curve]:
        """Fine-tune with each step size of the grid; keep the one with the best final return."""
        trials = {}
        for factor in FINE_TUNE_STEP_GRID:
            first = factor * config.inner.step_size
            sizes = inner_step_sizes(first, 0.0, config.evaluation.steps)  # alpha, then alpha/2
            trials[first] = curve_of(adapter, sizes)  # the same tasks every time
        best = max(trials, key=lambda a: trials[a].returns[:, -1].mean().item())
        return best, trials[best]

    try:
        meta: dict[str, Any] = {
            "env_id": config.env.id,
            "seed": config.evaluation.seed,
            "split": config.evaluation.split,
            "batch_unit": config.collector.batch_unit,
            "query_episodes": config.evaluation.query_episodes,
            "query_action": config.evaluation.query_action,
        }
        if config.method == "pretrained":
            meta["pretrained_step_size"], curve = best_over_grid(built.learner)
        else:
            curve = curve_of(built.learner, config.evaluation_step_sizes)
            meta["step_sizes"] = config.evaluation_step_sizes
        curves: dict[str, Tensor] = {}
        successes: dict[str, Tensor] = {}

        def keep(method: str, measured: Curve) -> None:
            curves[method] = measured.returns
            if measured.successes is not None:
                successes[method] = measured.successes

        keep(config.method, curve)
        if "random" in baselines:
            random_config = config_from_dict(
                {**config_to_dict(config), "seed": config.evaluation.seed + 10_000, "method": "maml"}
            )
            assert isinstance(random_config, RLConfig)  # the same keys as `config`, a meta-RL one
            meta["random_step_size"], random_curve = best_over_grid(build(random_config).learner)
            keep("random", random_curve)
        for other in compared:
            if not same_tasks(other.tasks, curve.tasks):
                raise ConfigError(
                    f"--compare: {other.name} was evaluated on other tasks; "
                    "evaluate both with the same --tasks and --seed"
                )
            successes.update({m: c for m, c in other.successes.items() if m not in curves})
            curves.update({m: c for m, c in other.curves.items() if m not in curves})
    finally:
        collector.close()
        if query is not None:
            query.close()
    return write_adaptation_files(out_dir, curves, curve.tasks, meta, successes=successes)
