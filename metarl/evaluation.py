"""Adaptation curves: mean return on new tasks after 0, 1, ..., k inner steps, with the training inner loop.

The protocol of the MAML paper: for each step, fresh episodes are collected with the parameters adapted so
far; step 1 uses ``alpha`` and later steps ``alpha / 2`` (:func:`metarl.config.inner_step_sizes`). For envs
that report success (Meta-World's), each step also gives each task's success rate, Meta-World's protocol: the
fraction of the task's episodes that succeeded at some step.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from metarl.collection import Collector
from metarl.config import FewShotConfig, QueryAction
from metarl.core.seeding import evaluation_generators
from metarl.core.types import Adapter, EpisodeBatch, Task
from metarl.training.checkpoints import atomic_write
from metarl.training.fewshot import FewShotLearner, FewShotTasks, as_task_batch

#: the ``adaptation.csv`` column of a task's success rate (envs that report success)
SUCCESS_COLUMN = "success_rate"


@dataclass(frozen=True)
class AdaptationCurve:
    """Each task's mean return, and success rate where the env reports success, after ``0..k`` inner steps.

    Attributes:
        returns: ``[N, k + 1]``; column ``k`` is the mean episode return after ``k`` steps.
        successes: ``[N, k + 1]`` fraction of the task's episodes that succeeded; ``None`` for envs without
            success.
    """

    returns: Tensor
    successes: Tensor | None = None


def adaptation_curve(
    adapter: Adapter,
    collector: Collector,
    tasks: Sequence[Task],
    step_sizes: Sequence[float],
    rng: np.random.Generator,
    generator: torch.Generator,
    query: Collector | None = None,
    query_action: QueryAction = "sample",
) -> AdaptationCurve:
    """Mean episode return (and success rate) of each task before and after each inner step.

    Without ``query`` (the MAML paper's protocol), step ``k``'s point is the mean over its support episodes,
    the batch step ``k + 1`` adapts on. With ``query`` (Meta-World's: 10 support, then 3 query episodes
    acting with the ``mean`` action), the point is measured on ``query``'s episodes with step ``k``'s
    parameters, and the support episodes only adapt; the last step needs no support batch.

    Returns:
        Curves of ``[N, len(step_sizes) + 1]``; column ``k`` is after ``k`` steps.
    """
    params = adapter.initial_params(len(tasks))
    returns, successes = [], []

    def record(batch: EpisodeBatch) -> None:
        returns.append(batch.mean_returns())
        rates = batch.task_success_rates()
        if rates is not None:
            successes.append(rates)

    for k in range(len(step_sizes) + 1):
        if query is not None:  # separate episodes, with step k's parameters
            policy = adapter.policy_fn(params, generator, deterministic=query_action == "mean")
            record(query.collect(tasks, policy, seed=int(rng.integers(2**31))))
            if k == len(step_sizes):
                break
        support = collector.collect(
            tasks, adapter.policy_fn(params, generator), seed=int(rng.integers(2**31))
        )
        if query is None:
            record(support)
        if k < len(step_sizes):
            params = adapter.adapt(params, support, step_sizes[k])
    return AdaptationCurve(torch.stack(returns, dim=1), torch.stack(successes, dim=1) if successes else None)


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
    """A task's ``adaptation.csv`` columns: its ``describe()`` where it has one, else its dataclass fields."""
    if callable(getattr(task, "describe", None)):
        return dict(task.describe())
    if dataclasses.is_dataclass(task) and not isinstance(task, type):
        return dataclasses.asdict(task)
    return {"task": repr(task)}


def _cell(text: str) -> float | str:
    """A task field read back from ``adaptation.csv``: a number where it is one, else the text."""
    try:
        return float(text)
    except ValueError:
        return text


def write_adaptation_files(
    out_dir: str | Path,
    curves: dict[str, Tensor],
    tasks: Sequence[Task],
    meta: dict[str, Any] | None = None,
    value_name: str = "mean_return",
    label: str = "mean return",
    title: str | None = None,
    successes: dict[str, Tensor] | None = None,
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
        successes: method name -> ``[N, k + 1]`` success rates, for the methods that have them (envs that
            report success): a ``success_rate`` column (empty for the other methods), a ``success`` summary in
            the JSON and a second panel in the figure.

    Returns:
        The JSON content.
    """
    out_dir = Path(out_dir)
    successes = {m: s for m, s in (successes or {}).items() if m in curves}
    fields = list(_task_fields(tasks[0]))
    table = io.StringIO(newline="")
    writer = csv.writer(table)
    header = ["method", "task_index", *(f"task_{f}" for f in fields), "step", value_name]
    writer.writerow(header + [SUCCESS_COLUMN] * bool(successes))
    for method, curve in curves.items():
        success = successes.get(method)
        for i, task in enumerate(tasks):
            values = list(_task_fields(task).values())
            for k in range(curve.shape[1]):
                row = [method, i, *values, k, f"{curve[i, k].item():.6f}"]
                if successes:
                    row.append("" if success is None else f"{success[i, k].item():.6f}")
                writer.writerow(row)
    atomic_write(out_dir / "adaptation.csv", table.getvalue())
    summary: dict[str, Any] = {
        "methods": {m: summarize(c) for m, c in curves.items()},
        "num_tasks": len(tasks),
        **(meta or {}),
    }
    if successes:
        summary["success"] = {m: summarize(s) for m, s in successes.items()}
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


def read_adaptation_csv(
    path: str | Path, column: str = "mean_return"
) -> tuple[dict[str, Tensor], list[dict[str, float | str]]]:
    """Read an ``adaptation.csv``, or the one in a folder: method -> ``[N, k + 1]`` values, and task fields.

    Args:
        path: the file or its folder.
        column: which values: ``mean_return``, or ``success_rate`` (only the methods that have one; none
            when the file has no such column).

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
    tasks: dict[int, dict[str, float | str]] = {}
    for row in rows:
        i, k = int(row["task_index"]), int(row["step"])
        if row.get(column):  # a method without success rates leaves that cell empty
            values.setdefault(row["method"], {})[(i, k)] = float(row[column])
        tasks[i] = {c.removeprefix("task_"): _cell(row[c]) for c in task_columns}
    curves = {}
    for method, cells in values.items():
        n, steps = max(i for i, _ in cells) + 1, max(k for _, k in cells) + 1
        curves[method] = torch.tensor([[cells[(i, k)] for k in range(steps)] for i in range(n)])
    return curves, [tasks[i] for i in range(len(tasks))]


def same_tasks(a: Sequence[dict[str, float | str]], b: Sequence[Task], tol: float = 1e-5) -> bool:
    """Whether task fields read from a CSV (``a``) describe the tasks ``b`` (numbers to within ``tol``)."""
    if len(a) != len(b):
        return False
    for fields_a, task in zip(a, b, strict=True):
        fields_b = {k: _cell(str(v)) for k, v in _task_fields(task).items()}
        if set(fields_a) != set(fields_b):
            return False
        for key, value in fields_a.items():
            other = fields_b[key]
            if isinstance(value, str) or isinstance(other, str):
                if value != other:
                    return False
            elif abs(value - other) > tol:
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
        split = config.evaluation.split
        batch = as_task_batch(tasks.sample(n, rng, split=split, shots=shots, query_shots=query_shots))
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
        "split": config.evaluation.split,
        "step_sizes": config.evaluation_step_sizes,
        "learned_step_sizes": config.inner.learn_step_size,
    }
    title = f"{config.data.dataset} {shots}-shot" + (
        f" {config.data.ways}-way" if tasks.kind == "classification" else ""
    )
    return write_adaptation_files(
        out_dir, {config.method_name: curve}, described, meta, value_name=value_name, label=label, title=title
    )
