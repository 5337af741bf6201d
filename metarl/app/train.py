"""``metarl train``: meta-train a config (RL or few-shot) into a run directory, then evaluate it."""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path
from typing import Any

from metarl.agents.maml_trpo import MAMLTRPO
from metarl.app.build import build, build_collector, build_fewshot, oracle_collector
from metarl.app.evaluate import evaluate_methods
from metarl.app.resume import TrainPlan, plan_resume
from metarl.app.runs import load_policy, make_run_dir, misfit, misfit_detail, print_summary, run_dir_for
from metarl.config import FewShotConfig, RLConfig, load_config
from metarl.core.errors import CheckpointError, ConfigError
from metarl.evaluation import evaluate_fewshot
from metarl.training.checkpoints import atomic_write, load_checkpoint, resolve_target
from metarl.training.fewshot import train_fewshot
from metarl.training.rl import train
from metarl.training.run_lock import in_use_message, lock_holder
from metarl.viz.plots import plot_learning_curve


def cmd_train(args: argparse.Namespace) -> int:
    """``metarl train``."""
    plan = prepare_train(args)
    config = plan.config
    if isinstance(config, FewShotConfig):
        return train_fewshot_run(plan, config)
    if config.method == "oracle" and not (plan.resume and config.oracle.algorithm == "trpo"):
        raise ConfigError(
            "method: 'oracle' runs are trained by 'metarl baseline oracle CONFIG.yaml' (a TRPO oracle's run "
            "is continued with 'metarl train --resume RUN_DIR')"
        )
    return train_run(plan, config)


def prepare_train(args: argparse.Namespace) -> TrainPlan:
    """The checked plan of ``metarl train`` (or ``baseline``) for the parsed ``args``; nothing is written.

    Raises:
        ConfigError: no config, ``--resume`` with a config, or a ``--run-dir`` that already holds a run.
    """
    overrides = list(args.set or [])
    if args.seed is not None:
        overrides.append(f"seed={args.seed}")
    if args.device is not None:
        overrides.append(f"device={args.device}")
    if getattr(args, "init_from", None) is not None:
        if args.resume:
            raise ConfigError("--init-from: a resumed run continues from its own checkpoint; start a new run")
        overrides.append(f"policy.init_from={args.init_from}")
    if args.resume:
        if args.config or args.run_dir:
            raise ConfigError("--resume: give only the run directory; its config.yaml and folder are reused")
        return plan_resume(Path(args.resume), overrides)
    if args.config is None:
        raise ConfigError("train: give a CONFIG.yaml or --resume RUN_DIR")
    config = load_config(args.config, overrides)
    run_dir = run_dir_for(config, Path(args.config), args.run_dir)
    if run_dir.exists() and any(run_dir.iterdir()):
        holder = lock_holder(run_dir)
        if holder is not None:
            raise ConfigError(f"--run-dir: {in_use_message(run_dir, holder)}")
        raise ConfigError(
            f"--run-dir: {str(run_dir)!r} already holds a run; use --resume {run_dir} or another folder"
        )
    return TrainPlan(config, run_dir, resume=False)


def train_run(plan: TrainPlan, config: RLConfig) -> int:
    """Meta-train (or, for ``method: pretrained`` or a TRPO oracle, train without inner steps), then evaluate.

    ``config`` is ``plan.config``, known to be a meta-RL one.
    """
    run_dir = plan.run_dir
    built = build(config)
    collector = build_collector(config)
    if config.method == "oracle":  # the TRPO oracle: episodes whose observations carry the task
        collector = oracle_collector(collector, built.distribution)
    start = None
    try:  # a state that does not fit stops here, before the run's files are touched
        if plan.resume:
            latest = run_dir / "checkpoints" / "latest.pt"
            load_policy(built.learner, load_checkpoint(latest), latest)
        elif config.policy.init_from:
            start = start_from(built.learner, config.policy.init_from)
    except BaseException:
        collector.close()
        raise
    make_run_dir(config, run_dir)
    if start is not None:
        atomic_write(run_dir / "init_from.json", json.dumps(start, indent=2) + "\n")
    plan.record()
    try:
        metrics = train(
            config,
            run_dir,
            built.learner,
            collector,
            built.distribution,
            resume=plan.resume,
        )
    finally:
        collector.close()
    plot_learning_curve(run_dir / "metrics.csv", run_dir / "learning_curve.png", config.env.id)
    summary = evaluate_methods(config, run_dir, built)
    if metrics:
        print(
            f"last iteration: return before {metrics['meta/return_before']:.2f}, "
            f"after {metrics['meta/return_after']:.2f}"
        )
    print_summary(summary)
    return 0


def start_from(learner: MAMLTRPO, target: str) -> dict[str, Any]:
    """Load the policy of the checkpoint ``target`` stands for into ``learner`` (``policy.init_from``).

    Returns:
        What ``init_from.json`` records: the checkpoint's path, its iteration and its SHA-256.

    Raises:
        ConfigError: ``target`` is not a checkpoint, or its policy does not fit ``learner``.
    """
    try:
        path, _ = resolve_target(target)
        state = load_checkpoint(path)
    except CheckpointError as exc:
        raise ConfigError(f"policy.init_from: {exc}") from None
    try:
        learner.load_state_dict(state["policy"])
    except (RuntimeError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ConfigError(
            f"policy.init_from: {target!r} holds a policy that does not fit this config's policy "
            f"({misfit_detail(exc)})"
        ) from None
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return {"path": str(path), "iteration": int(state["iteration"]), "sha256": digest}


def train_fewshot_run(plan: TrainPlan, config: FewShotConfig) -> int:
    """``metarl train`` of a few-shot config (``plan.config``): meta-train, learning and adaptation curves."""
    run_dir = plan.run_dir
    built = build_fewshot(config)
    if plan.resume:  # a state that does not fit stops here, before the run's files are touched
        latest = run_dir / "checkpoints" / "latest.pt"
        state = load_checkpoint(latest)
        try:
            built.learner.model.load_state_dict(state["policy"])
            built.learner.optimizer.load_state_dict(state["optimizer"])
        except (RuntimeError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise misfit(latest, exc) from None
    make_run_dir(config, run_dir)
    plan.record()
    begin = time.perf_counter()
    metrics = train_fewshot(
        config,
        run_dir,
        built.learner,
        built.tasks,
        resume=plan.resume,
    )
    seconds = time.perf_counter() - begin
    columns = (("meta/loss_before", "query loss before adaptation"), ("meta/loss_after", "after adaptation"))
    plot_learning_curve(
        run_dir / "metrics.csv",
        run_dir / "learning_curve.png",
        config.data.dataset,
        columns,
        "query loss",
        True,
    )
    summary = evaluate_fewshot(built.learner, built.tasks, config, run_dir)
    if metrics:
        print(
            f"trained to iteration {config.meta.iterations} in {seconds:.1f} s; last query loss "
            f"before {metrics['meta/loss_before']:.4f}, after {metrics['meta/loss_after']:.4f}"
        )
    print_summary(summary)
    return 0
