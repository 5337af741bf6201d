"""Adaptation curves: mean return on new tasks after 0, 1, ..., k inner steps, with the training inner loop.

The protocol of the MAML paper: for each step, fresh episodes are collected with the parameters adapted so
far; step 1 uses ``alpha`` and later steps ``alpha / 2`` (:func:`metarl.config.inner_step_sizes`).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from metarl.collection import Collector
from metarl.config import FewShotConfig
from metarl.core.seeding import evaluation_generators
from metarl.core.types import Adapter, Task
from metarl.training.checkpoints import atomic_write
from metarl.training.fewshot import FewShotLearner, FewShotTasks, as_task_batch


def adaptation_curve(
    adapter: Adapter,
    collector: Collector,
    tasks: Sequence[Task],
    step_sizes: Sequence[float],
    rng: np.random.Generator,
    generator: torch.Generator,
) -> Tensor:
    """Mean episode return of each task before and after each inner step.

    Returns:
        ``[N, len(step_sizes) + 1]``; column ``k`` is the return after ``k`` steps.
    """
    params = adapter.initial_params(len(tasks))
    columns = []
    for k in range(len(step_sizes) + 1):
        batch = collector.collect(tasks, adapter.policy_fn(params, generator), seed=int(rng.integers(2**31)))
        columns.append(batch.mean_returns())
        if k < len(step_sizes):
            params = adapter.adapt(params, batch, step_sizes[k])
    return torch.stack(columns, dim=1)


def summarize(curve: Tensor) -> list[dict[str, float]]:
    """Per step: mean, standard error and normal 95% interval over tasks of ``curve [N >= 2, k + 1]``."""
    out = []
    n = curve.shape[0]
    for k in range(curve.shape[1]):
        column = curve[:, k].double()
        mean = column.mean().item()
        stderr = column.std().item() / math.sqrt(n)  # n >= 2: config rule evaluation.tasks
        out.append(
            {
                "step": k,
                "mean": mean,
                "stderr": stderr,
                "ci95_low": mean - 1.96 * stderr,
                "ci95_high": mean + 1.96 * stderr,
            }
        )
    return out


def paired_difference(a: Tensor, b: Tensor) -> dict[str, float]:
    """Mean, standard error and number of tasks ahead of ``a - b`` for ``a, b [N >= 2]`` on the same tasks.

    The paired comparison: task difficulty cancels, so it is far tighter than two separate means.
    """
    if a.shape != b.shape or a.dim() != 1 or a.shape[0] < 2:
        raise ValueError(
            f"paired_difference needs two [N >= 2] tensors of one shape, got {tuple(a.shape)}, "
            f"{tuple(b.shape)}"
        )
    diff = a.double() - b.double()
    n = diff.shape[0]
    return {
        "mean": diff.mean().item(),
        "stderr": diff.std().item() / math.sqrt(n),
        "ahead": int((diff > 0).sum().item()),
        "n": n,
    }


def _task_fields(task: Task) -> dict[str, Any]:
    if dataclasses.is_dataclass(task) and not isinstance(task, type):
        return dataclasses.asdict(task)
    return {"task": repr(task)}


def write_adaptation_files(
    out_dir: str | Path,
    curves: dict[str, Tensor],
    tasks: Sequence[Task],
    meta: dict[str, Any] | None = None,
    value_name: str = "mean_return",
    label: str = "mean return",
    title: str | None = None,
) -> dict[str, Any]:
    """Write ``adaptation.csv`` (long form), ``adaptation.json`` (summary) and ``adaptation.png``.

    Args:
        out_dir: folder to write into.
        curves: method name -> ``[N, k + 1]`` values (returns; few-shot: mean squared error or accuracy) on
            the same ``tasks``.
        tasks: the ``N`` tasks.
        meta: extra plain data stored in the JSON (env id, seed, step sizes, ...).
        value_name: the CSV column of the values (``mean_return``; few-shot ``mse`` or ``accuracy``).
        label: the figure's y-axis label.
        title: the figure's title (default: ``meta["env_id"]``).

    Returns:
        The JSON content.
    """
    out_dir = Path(out_dir)
    fields = list(_task_fields(tasks[0]))
    table = io.StringIO(newline="")
    writer = csv.writer(table)
    writer.writerow(["method", "task_index", *(f"task_{f}" for f in fields), "step", value_name])
    for method, curve in curves.items():
        for i, task in enumerate(tasks):
            values = list(_task_fields(task).values())
            for k in range(curve.shape[1]):
                writer.writerow([method, i, *values, k, f"{curve[i, k].item():.6f}"])
    atomic_write(out_dir / "adaptation.csv", table.getvalue())
    summary = {
        "methods": {m: summarize(c) for m, c in curves.items()},
        "num_tasks": len(tasks),
        **(meta or {}),
    }
    atomic_write(out_dir / "adaptation.json", json.dumps(summary, indent=2))
    from metarl.viz.plots import plot_adaptation

    if title is None:
        title = str((meta or {}).get("env_id", ""))
    plot_adaptation(summary, out_dir / "adaptation.png", title=title, ylabel=label)
    return summary


def adaptation_csv_path(path: str | Path) -> Path:
    """``path`` itself, or the ``adaptation.csv`` inside it when it is a folder."""
    path = Path(path)
    return path / "adaptation.csv" if path.is_dir() else path


def read_adaptation_csv(path: str | Path) -> tuple[dict[str, Tensor], list[dict[str, float]]]:
    """Read an ``adaptation.csv``, or the one in a folder: method -> ``[N, k + 1]`` returns, and task fields.

    Raises:
        ValueError: the file is missing or not in the long form :func:`write_adaptation_files` writes.
    """
    path = adaptation_csv_path(path)
    if not path.is_file():
        raise ValueError(f"--compare: {str(path)!r} does not exist (run metarl evaluate on that run first)")
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    required = {"method", "task_index", "step", "mean_return"}
    if not rows or not required <= set(rows[0]):
        raise ValueError(
            f"--compare: {str(path)!r} is not an adaptation.csv (columns {sorted(required)} needed)"
        )
    task_columns = [c for c in rows[0] if c.startswith("task_") and c != "task_index"]
    values: dict[str, dict[tuple[int, int], float]] = {}
    tasks: dict[int, dict[str, float]] = {}
    for row in rows:
        i, k = int(row["task_index"]), int(row["step"])
        values.setdefault(row["method"], {})[(i, k)] = float(row["mean_return"])
        tasks[i] = {c.removeprefix("task_"): float(row[c]) for c in task_columns}
    curves = {}
    for method, cells in values.items():
        n, steps = max(i for i, _ in cells) + 1, max(k for _, k in cells) + 1
        curves[method] = torch.tensor([[cells[(i, k)] for k in range(steps)] for i in range(n)])
    return curves, [tasks[i] for i in range(len(tasks))]


def same_tasks(a: Sequence[dict[str, float]], b: Sequence[Task], tol: float = 1e-5) -> bool:
    """Whether task fields read from a CSV (``a``) describe the tasks ``b``."""
    if len(a) != len(b):
        return False
    for fields_a, task in zip(a, b, strict=True):
        fields_b = _task_fields(task)
        if set(fields_a) != set(fields_b) or any(
            abs(fields_a[k] - float(fields_b[k])) > tol for k in fields_a
        ):
            return False
    return True


#: what ``adaptation.csv`` calls the value of each task kind, and the figure's axis label
METRIC_NAMES = {"regression": ("mse", "mean squared error"), "classification": ("accuracy", "accuracy")}


def fewshot_adaptation_curve(
    learner: FewShotLearner, tasks: FewShotTasks, config: FewShotConfig, chunk: int = 50
) -> tuple[Tensor, list[Any]]:
    """Query metric on ``evaluation.tasks`` new ``test``-split tasks after ``0..evaluation.steps`` steps.

    Tasks come from the evaluation stream of ``evaluation.seed`` in chunks of ``chunk`` (so memory stays
    bounded), with ``evaluation.shots`` support and ``evaluation.query_shots`` query examples per class.

    Returns:
        ``([tasks, steps + 1]`` mean squared error or accuracy, the task descriptions``)``.
    """
    rng, _ = evaluation_generators(config.evaluation.seed)
    shots, query_shots = config.evaluation_shots
    columns: list[Tensor] = []
    described: list[Any] = []
    remaining = config.evaluation.tasks
    while remaining > 0:
        n = min(chunk, remaining)
        batch = as_task_batch(tasks.sample(n, rng, split="test", shots=shots, query_shots=query_shots))
        columns.append(learner.adaptation_metrics(batch, config.evaluation_step_sizes))
        described += batch.tasks
        remaining -= n
    return torch.cat(columns), described


def evaluate_fewshot(
    learner: FewShotLearner, tasks: FewShotTasks, config: FewShotConfig, out_dir: str | Path
) -> dict[str, Any]:
    """Write ``adaptation.csv/json/png`` for a few-shot run (see :func:`fewshot_adaptation_curve`)."""
    curve, described = fewshot_adaptation_curve(learner, tasks, config)
    value_name, label = METRIC_NAMES[tasks.kind]
    shots, query_shots = config.evaluation_shots
    meta = {
        "dataset": config.data.dataset,
        "metric": value_name,
        "ways": config.data.ways if tasks.kind == "classification" else None,
        "shots": shots,
        "query_shots": query_shots,
        "seed": config.evaluation.seed,
        "step_sizes": config.evaluation_step_sizes,
        "learned_step_sizes": config.inner.learn_step_size,
    }
    title = f"{config.data.dataset} {shots}-shot" + (
        f" {config.data.ways}-way" if tasks.kind == "classification" else ""
    )
    return write_adaptation_files(
        out_dir, {config.method_name: curve}, described, meta, value_name=value_name, label=label, title=title
    )
