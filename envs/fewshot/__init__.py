"""Supervised few-shot task distributions (numpy only): sinusoid regression, Omniglot and MiniImagenet.

Each gives a :class:`~envs.fewshot.base.FewShotBatch` of support and query sets per meta-batch;
:func:`make_fewshot_tasks` builds one by dataset name.
"""

from __future__ import annotations

from metarl.core.errors import ConfigError, closest

from .base import FewShotBatch, FewShotTasks
from .images import ClassificationTask, ImageClassificationTasks
from .sinusoid import SineTask, SinusoidTasks

DATASETS = ("sinusoid", "omniglot", "miniimagenet")


def make_fewshot_tasks(
    dataset: str, root: str = "", ways: int = 5, train_classes: int = 1200, cache_dir: str = ""
) -> FewShotTasks:
    """The task distribution called ``dataset``; image datasets are read (and decoded) from ``root``.

    Raises:
        ConfigError: an unknown dataset, a missing ``root`` or a folder in the wrong layout.
    """
    if dataset == "sinusoid":
        return SinusoidTasks()
    if dataset not in DATASETS:
        raise ConfigError(
            f"data.dataset: unknown {dataset!r}{closest(dataset, DATASETS)}; one of {', '.join(DATASETS)}"
        )
    if not root:
        raise ConfigError(f"data.root: {dataset} needs the folder of its images, e.g. --set data.root=PATH")
    if dataset == "omniglot":
        from .omniglot import load_omniglot

        return load_omniglot(root, ways, train_classes, cache_dir)
    from .miniimagenet import load_miniimagenet

    return load_miniimagenet(root, ways, cache_dir)


__all__ = [
    "DATASETS",
    "ClassificationTask",
    "FewShotBatch",
    "FewShotTasks",
    "ImageClassificationTasks",
    "SineTask",
    "SinusoidTasks",
    "make_fewshot_tasks",
]
