"""``metarl train --resume RUN_DIR``: what may change, and every file checked before any is written."""

from __future__ import annotations

import csv
import dataclasses
import datetime
import io
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from metarl.config import AnyConfig, config_from_dict, config_to_dict, config_value, load_config
from metarl.core.errors import CheckpointError, ConfigError
from metarl.training.checkpoints import atomic_write, load_checkpoint
from metarl.training.run_files import (
    UNCHANGED,
    check_config_matches,
    check_metrics,
    checkpoint_iteration,
    damaged,
)

#: keys that may change when resuming a run; any other difference is a different experiment (every collector
#: backend returns the same episodes, so a run may resume on another backend or cluster)
RESUMABLE_CHANGES = (
    "meta.iterations",
    "logging.",
    "device",
    "collector.backend",
    "collector.workers",
    "collector.start_method",
    "collector.address",
    "collector.timeout_s",
    "collector.startup_timeout_s",
    "collector.max_restarts",
)
#: keys that change how the TRPO step is computed, not what is learned from; they may change on ``--resume``,
#: and each change is appended to ``RUN_DIR/resumes.csv`` with the iteration it took effect
RECORDED_RESUMABLE_CHANGES = (
    "num_threads",
    "trpo.fisher_product",
    "trpo.fisher_subsample",
    "trpo.fisher_subsample_grow_at",
)


def _nothing() -> None:
    """A ``record`` with nothing to record."""


@dataclasses.dataclass(frozen=True)
class TrainPlan:
    """What ``metarl train`` (or ``baseline``) is about to do, checked before anything is written.

    Attributes:
        config: the run's config, overrides applied.
        run_dir: the run directory (new, or the one resumed).
        resume: whether training continues from ``run_dir/checkpoints/latest.pt``.
        record: appends this resume's changes to ``resumes.csv``; called once the run has been rebuilt, so a
            resume that fails on the way (a device that is not there, say) leaves the file as it was.
    """

    config: AnyConfig
    run_dir: Path
    resume: bool
    record: Callable[[], None] = _nothing


def plan_resume(run_dir: Path, overrides: list[str]) -> TrainPlan:
    """The plan of ``--resume run_dir`` with ``overrides`` (``--set``, ``--seed``, ``--device``).

    Raises:
        ConfigError: not a run directory, or an override that would make it another experiment.
        CheckpointError: a damaged or hand-edited ``config.yaml``, checkpoint or ``metrics.csv``.
    """
    if not (run_dir / "config.yaml").is_file():
        raise ConfigError(f"--resume: {str(run_dir)!r} is not a run directory (no config.yaml)")
    config_path = run_dir / "config.yaml"
    if not config_path.read_text(errors="replace").strip():
        raise damaged(config_path, "is empty (a run's config.yaml holds every setting it was trained with)")
    try:
        stored = load_config(config_path)
    except ConfigError as exc:  # a damaged or hand-edited config.yaml: name it
        message = str(exc)
        raise ConfigError(message if str(config_path) in message else f"{config_path}: {message}") from None
    config = load_config(config_path, overrides)
    differences = _diff(config_to_dict(stored), config_to_dict(config))
    changed = [k for k in differences if not k.startswith(RESUMABLE_CHANGES + RECORDED_RESUMABLE_CHANGES)]
    if changed:
        raise ConfigError(
            f"--resume: the run was trained with another {', '.join(changed)}; only meta.iterations, "
            "logging.*, device, num_threads, trpo.fisher_product, trpo.fisher_subsample(_grow_at) and "
            "the collector's backend, workers, start_method, address, timeout_s, startup_timeout_s and "
            "max_restarts may change when resuming (start a new run instead)"
        )
    latest = run_dir / "checkpoints" / "latest.pt"
    recorded = [k for k in differences if k.startswith(RECORDED_RESUMABLE_CHANGES)]
    if not latest.exists():
        warnings.warn(
            f"--resume: {str(run_dir)!r} has no checkpoint yet (stopped before the first one); "
            "training it from iteration 0",
            UserWarning,
            stacklevel=3,
        )
        return TrainPlan(config, run_dir, resume=False)
    iteration = _check_resumable(run_dir, stored)
    if not recorded:
        return TrainPlan(config, run_dir, resume=True)
    return TrainPlan(
        config,
        run_dir,
        resume=True,
        record=lambda: _record_resume_changes(run_dir, iteration, recorded, stored, config),
    )


def _diff(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between the nested dicts ``a`` and ``b``."""
    keys = sorted(set(a) | set(b))
    out = []
    for key in keys:
        va, vb = a.get(key), b.get(key)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += _diff(va, vb, f"{prefix}{key}.")
        elif va != vb:
            out.append(f"{prefix}{key}")
    return out


def _check_resumable(run_dir: Path, stored: AnyConfig) -> int:
    """The iteration ``latest.pt`` holds, once every file a resume reads or rewrites has been checked.

    Raises:
        CheckpointError: a damaged or hand-edited checkpoint, ``config.yaml`` or ``metrics.csv``
            (:mod:`metarl.training.run_files`), before anything is written.
    """
    latest, best = run_dir / "checkpoints" / "latest.pt", run_dir / "checkpoints" / "best.pt"
    state = load_checkpoint(latest)
    keys = ("numpy_rng", "optimizer") if stored.is_fewshot else ("numpy_rng", "torch_rng", "best_return")
    iteration = checkpoint_iteration(latest, state, keys)
    try:
        with warnings.catch_warnings():  # its warnings were shown when it was trained
            warnings.simplefilter("ignore")
            trained = config_to_dict(config_from_dict(state["config"]))
    except (ConfigError, TypeError, AttributeError) as exc:
        raise damaged(latest, f"its config is not a valid one ({exc})") from None
    check_config_matches(
        run_dir / "config.yaml",
        config_to_dict(stored),
        trained,
        RESUMABLE_CHANGES + RECORDED_RESUMABLE_CHANGES,
    )
    check_metrics(run_dir / "metrics.csv", iteration, latest)
    if best.exists() and not stored.is_fewshot:
        try:
            load_checkpoint(best)
        except CheckpointError as exc:
            raise CheckpointError(
                f"{exc}: the run would overwrite it; move it away to resume without it ({UNCHANGED})"
            ) from None
    return iteration


def _record_resume_changes(
    run_dir: Path, iteration: int, keys: list[str], before: AnyConfig, after: AnyConfig
) -> None:
    """Append ``iteration,key,before,after,date`` rows to ``run_dir/resumes.csv`` and say so on stderr.

    The rows say from which iteration on the run was computed another way (the metrics do not show it).
    """
    path = run_dir / "resumes.csv"
    old = path.read_text() if path.is_file() else "first_iteration,key,before,after,date\n"
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    today = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    for key in keys:
        old_value, new_value = config_value(before, key), config_value(after, key)
        writer.writerow([iteration + 1, key, old_value, new_value, today])
        print(
            f"--resume: {key} changes from {old_value!r} to {new_value!r} at iteration "
            f"{iteration + 1} (recorded in {path})",
            file=sys.stderr,
        )
    atomic_write(path, old + buffer.getvalue())
