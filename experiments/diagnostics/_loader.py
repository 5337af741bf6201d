"""What the diagnostics share: config and checkpoint to a learner and collector, a meta-batch, a run's files.

Imported by the scripts beside it (``python experiments/diagnostics/SCRIPT.py`` puts this folder on the path);
never by metarl.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
from pathlib import Path
from typing import Any

import torch
import yaml

from metarl.agents.maml_trpo import MAMLTRPO
from metarl.app.build import build, build_collector
from metarl.collection.vector import Collector
from metarl.config import Config, apply_overrides, config_from_dict, load_config
from metarl.core.seeding import training_generators
from metarl.core.tasks import TaskDistribution
from metarl.core.types import MetaBatch
from metarl.training.checkpoints import load_checkpoint, resolve_target


@dataclasses.dataclass
class Probe:
    """A run rebuilt for probing: its config, task distribution, learner (policy restored) and collector.

    The collector's workers run until :func:`sample_meta_batch` (or the caller) closes it.
    """

    config: Config
    distribution: TaskDistribution
    learner: MAMLTRPO
    collector: Collector


def add_run_arguments(parser: argparse.ArgumentParser, seed: int = 0) -> None:
    """Add ``config``, ``--checkpoint``, ``--threads`` and ``--seed`` (of the meta-batch) to ``parser``."""
    parser.add_argument("config")
    parser.add_argument(
        "--checkpoint",
        help="a checkpoint whose policy to start from: a .pt file, a run directory (its latest.pt) or a "
        "folder holding one .pt file (default: a fresh policy)",
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=seed, help="seed of the meta-batch's tasks and episodes")


def read_state(checkpoint: str | Path) -> dict[str, Any]:
    """The checkpoint a run directory, a folder holding one ``.pt`` file or a ``.pt`` file stands for."""
    path, _ = resolve_target(checkpoint)
    return load_checkpoint(path)


def probe_config(config: str | Path | None, state: dict[str, Any] | None, overrides: list[str]) -> Config:
    """The YAML file ``config`` with ``overrides``, or, without one, the config stored in ``state``.

    Raises:
        ValueError: neither a config file nor a checkpoint state.
    """
    if config is not None:
        return load_config(config, overrides)
    if state is None:
        raise ValueError("config: give a config file or a checkpoint that stores one")
    return config_from_dict(apply_overrides(state["config"], overrides))


def build_probe(config: Config, state: dict[str, Any] | None = None) -> Probe:
    """The learner and collector of ``config``; the policy (and learned rates) from ``state`` when given."""
    built = build(config)
    probe = Probe(config, built.distribution, built.learner, build_collector(config))
    if state is not None:
        probe.learner.load_state_dict(state["policy"])
    return probe


def load_probe(
    config: str | Path | None, checkpoint: str | Path | None = None, overrides: list[str] | None = None
) -> Probe:
    """:func:`build_probe` of the config file (else the checkpoint's own config), the checkpoint's policy."""
    state = read_state(checkpoint) if checkpoint else None
    return build_probe(probe_config(config, state, overrides or []), state)


def sample_meta_batch(probe: Probe, seed: int) -> MetaBatch:
    """A meta-batch of ``meta.batch_size`` tasks from ``seed``'s training generators; closes the collector."""
    rng, gen = training_generators(seed)
    tasks = probe.distribution.sample_tasks(probe.config.meta.batch_size, rng)
    try:
        return probe.learner.sample(probe.collector, tasks, rng, gen)
    finally:
        probe.collector.close()  # its workers are not needed for the rest


def probe_from_args(args: argparse.Namespace) -> tuple[Probe, MetaBatch]:
    """For the arguments of :func:`add_run_arguments`: threads set, the probe loaded, one meta-batch sampled
    from ``--seed`` and its returns printed."""
    torch.set_num_threads(args.threads)
    probe = load_probe(args.config, args.checkpoint)
    meta_batch = sample_meta_batch(probe, args.seed)
    print(returns_line(probe.config, meta_batch))
    return probe, meta_batch


def returns_line(config: Config, meta_batch: MetaBatch) -> str:
    """``ENV: return before R0, after one step R1``: the meta-batch's mean episode returns."""
    before = meta_batch.support[0].mean_episode_return()
    after = meta_batch.query.mean_episode_return()
    return f"{config.env.id}: return before {before:.2f}, after one step {after:.2f}"


def read_run_config(run: Path) -> dict[str, Any]:
    """``run/config.yaml`` as plain data (not validated: runs written by older versions still read)."""
    return yaml.safe_load((run / "config.yaml").read_text())


def read_metrics(run: Path) -> list[dict[str, str]]:
    """The rows of ``run/metrics.csv``, as strings."""
    with (run / "metrics.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))
