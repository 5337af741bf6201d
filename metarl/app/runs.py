"""What the commands share: output folders, the run directory's lock, restoring a policy, the summary line."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from metarl.agents.maml_trpo import MAMLTRPO
from metarl.config import AnyConfig, FewShotConfig, config_to_dict
from metarl.core.errors import CheckpointError, ConfigError
from metarl.training.checkpoints import atomic_write
from metarl.training.run_files import damaged
from metarl.training.run_lock import hold_run_dir

#: the run-directory locks the running command holds (:func:`~metarl.training.run_lock.hold_run_dir`),
#: released when :func:`holding_run_locks` exits
_RUN_LOCKS: contextlib.ExitStack | None = None


@contextlib.contextmanager
def holding_run_locks() -> Iterator[None]:
    """Keep the locks :func:`make_run_dir` takes until the command ends (``metarl.app.main.main``)."""
    global _RUN_LOCKS
    with contextlib.ExitStack() as locks:
        _RUN_LOCKS = locks
        try:
            yield
        finally:
            _RUN_LOCKS = None


def run_dir_for(config: AnyConfig, config_path: Path, option: str | None) -> Path:
    """``--run-dir`` if given, else ``runs_root/<env>__<config>[__<method>]__s<seed>__<time>``."""
    if option:
        return Path(option)
    env_name = config.data.dataset if isinstance(config, FewShotConfig) else config.env.id.split("/")[-1]
    stamp = time.strftime("%Y%m%d-%H%M%S")
    method = "" if config.method == "maml" else f"__{config.method}"
    return Path(config.logging.runs_root) / f"{env_name}__{config_path.stem}{method}__s{config.seed}__{stamp}"


def output_path(option: str | None, default: Path) -> Path:
    """``--out`` if given, else ``default`` (a folder or file beside the checkpoint's run)."""
    return Path(option) if option else default


def make_run_dir(config: AnyConfig, run_dir: Path) -> None:
    """Take the run directory for this process (its lock, held until the command ends), write config.yaml.

    Raises:
        ConfigError: the folder cannot be created.
    """
    if _RUN_LOCKS is not None:
        _RUN_LOCKS.enter_context(hold_run_dir(run_dir))
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"--run-dir: cannot create {str(run_dir)!r}: {exc.strerror}") from None
    text = yaml.safe_dump(config_to_dict(config), sort_keys=False)
    atomic_write(run_dir / "config.yaml", text)
    print(f"run directory: {run_dir}", file=sys.stderr)


def load_policy(learner: MAMLTRPO, state: dict[str, Any], path: Path | None = None) -> None:
    """Load a checkpoint's ``policy`` entry into ``learner`` (with its learned step sizes, if any).

    Raises:
        CheckpointError: a state that does not fit the config stored beside it (``path`` names the file).
    """
    try:
        learner.load_state_dict(state["policy"])
    except (RuntimeError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise misfit(path, exc) from None


def misfit_detail(exc: Exception) -> str:
    """The lines of a failed ``load_state_dict`` worth a one-line error (at most 200 characters)."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    return "; ".join(lines[1:3] or lines[:1])[:200]  # torch's first line only says "Error(s) in loading"


def misfit(path: Path | None, exc: Exception) -> CheckpointError:
    """The error for a checkpoint whose state does not fit the learner built from its config."""
    detail = misfit_detail(exc)
    if path is None:
        return CheckpointError(f"checkpoint: its policy does not match its config ({detail})")
    return damaged(path, f"its policy does not fit the run's config.yaml ({detail})")


def print_summary(summary: dict[str, Any]) -> None:
    """Print one line per method of an adaptation summary (as ``write_adaptation_files`` returns it)."""
    if "metric" in summary:  # few-shot: a mean squared error or an accuracy, with its 95% interval
        for method, rows in summary["methods"].items():
            cells = ", ".join(
                f"{r['step']}: {r['mean']:.4f} [{r['ci95_low']:.4f}, {r['ci95_high']:.4f}]" for r in rows
            )
            print(
                f"{summary['metric']} ({method}, {summary['num_tasks']} test tasks, mean [95% interval] "
                f"after k steps) {cells}"
            )
        return
    for method, rows in summary["methods"].items():
        cells = ", ".join(f"{r['step']}: {r['mean']:.2f} ± {r['stderr']:.2f}" for r in rows)
        print(f"adaptation ({method}, {summary['num_tasks']} new tasks, mean ± s.e. after k steps) {cells}")
    for method, rows in summary.get("success", {}).items():
        cells = ", ".join(f"{r['step']}: {r['mean']:.1%} ± {r['stderr']:.1%}" for r in rows)
        print(f"success rate ({method}, {summary['num_tasks']} new tasks, mean ± s.e. after k steps) {cells}")
