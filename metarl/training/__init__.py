"""Training: the one loop for RL and few-shot, checkpoints, metric sinks and a run's guards.

May import :mod:`metarl.core`, :mod:`metarl.collection` and :mod:`metarl.config` (and, lazily, the
evaluation's
file writers); never the envs, the agents or the app. :mod:`~metarl.training.loop` (the loop, ``RunPaths``),
:mod:`~metarl.training.rl` (RL meta-training: collect, meta-update, recollect on NaN, ``best.pt``),
:mod:`~metarl.training.fewshot` (few-shot training and its 600-task evaluation),
:mod:`~metarl.training.checkpoints`, :mod:`~metarl.training.sinks` (CSV, TensorBoard),
:mod:`~metarl.training.stopping`, :mod:`~metarl.training.run_lock`, :mod:`~metarl.training.run_files` (a run's
guards) and :mod:`~metarl.training.allocator` (memory reuse across iterations).
"""

from metarl.training.loop import LoopSettings, RunPaths, Work, run_loop
from metarl.training.rl import MetaLearner, non_finite_quantity, sample_and_step, train

__all__ = [
    "LoopSettings",
    "MetaLearner",
    "RunPaths",
    "Work",
    "non_finite_quantity",
    "run_loop",
    "sample_and_step",
    "train",
]
