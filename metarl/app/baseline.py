"""``metarl baseline {pretrained,oracle} CONFIG.yaml``: the paper's baselines, each in a run directory."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import torch

from metarl.app.build import RLBuild, build, use_local_collector
from metarl.app.evaluate import evaluate_methods
from metarl.app.runs import make_run_dir, print_summary
from metarl.app.train import prepare_train, train_run
from metarl.config import FewShotConfig, RLConfig, config_to_dict
from metarl.core.errors import ConfigError
from metarl.envs.wrappers import TaskInObservation
from metarl.training.checkpoints import save_checkpoint


def cmd_baseline(args: argparse.Namespace) -> int:
    """``metarl baseline``: train a baseline (``pretrained``: TRPO, no inner step; ``oracle``: PPO, TRPO)."""
    args.set = [*(args.set or []), f"method={args.kind}"]
    args.resume, args.device = None, None
    plan = prepare_train(args)
    config = plan.config
    if isinstance(config, FewShotConfig):  # the few-shot schema refuses these methods first; kept as a guard
        raise ConfigError(
            f"baseline: data.dataset {config.data.dataset!r} is few-shot; baselines are meta-RL"
        )
    if args.kind == "pretrained" or config.oracle.algorithm == "trpo":
        return train_run(plan, config)  # a new run: prepare_train got no --resume
    return _train_oracle(config, plan.run_dir)


def _train_oracle(config: RLConfig, run_dir: Path) -> int:
    """PPO with the task in the observation; the actor is saved as a metarl checkpoint and evaluated."""
    from metarl.agents.oracle import train_oracle_ppo  # stable-baselines3 only for this command

    distribution = build(config).distribution  # checks the config and env first
    make_run_dir(config, run_dir)
    env_id, oracle = config.env.id, config.oracle
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    start = time.perf_counter()
    policy = train_oracle_ppo(
        lambda: TaskInObservation(gym.make(env_id)),
        timesteps=oracle.timesteps,
        num_envs=oracle.num_envs,
        hidden_sizes=tuple(config.policy.hidden_sizes),
        activation=config.policy.activation,
        gamma=config.meta.gamma,
        seed=config.seed,
        out_dir=run_dir,
        ppo_kwargs={
            "n_steps": oracle.n_steps,
            "batch_size": oracle.batch_size,
            "n_epochs": oracle.n_epochs,
            "learning_rate": oracle.learning_rate,
            "gae_lambda": oracle.gae_lambda,
            "clip_range": oracle.clip_range,
        },
        progress=config.logging.progress,
    )
    print(f"oracle PPO: {oracle.timesteps} env steps in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    payload: dict[str, Any] = {
        "iteration": oracle.timesteps,
        "policy": {k: v.detach().clone() for k, v in policy.state_dict().items()},
        "config": config_to_dict(config),
    }
    save_checkpoint(run_dir / "checkpoints" / "latest.pt", payload)
    use_local_collector(config)  # the oracle's task-augmented policy is sampled in this process
    learner = build(config).learner
    learner.policy.load_state_dict(payload["policy"])
    print_summary(evaluate_methods(config, run_dir, RLBuild(distribution, learner)))
    return 0
