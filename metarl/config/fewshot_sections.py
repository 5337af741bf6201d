"""The sections only few-shot runs use: ``data`` and ``model``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, ClassVar

from pydantic import ConfigDict

from metarl.config.choices import DataSource
from metarl.config.fields import Bool, Int, Sizes, Str, setting
from metarl.config.sections import STRICT


@dataclass
class DataConfig:
    """Supervised few-shot data (`envs/fewshot/`).

    An empty `data.dataset` means a meta-RL run on `env.id`; setting it makes the run a few-shot one, and
    `env`, `policy`, `trpo` and `collector` are then unused.
    """

    __pydantic_config__: ClassVar[ConfigDict] = STRICT

    dataset: Annotated[
        DataSource,
        setting(
            "The task distribution.",
            expected="one of sinusoid, omniglot, miniimagenet, or empty for meta-RL",
        ),
    ] = ""
    root: Annotated[
        Str,
        setting(
            'The image dataset in its standard layout (README, "Few-shot data"). A wrong layout, too few '
            "classes or images stop the run with one line.",
            allowed="a folder",
        ),
    ] = ""
    ways: Annotated[
        Int,
        setting(
            "Classes per task (N).",
            paper="5, 20",
            ge=2,
        ),
    ] = 5
    shots: Annotated[
        Int,
        setting(
            "Support examples per class (K); sinusoid: support points.",
            paper="1, 5; sinusoid 10",
            ge=1,
        ),
    ] = 1
    query_shots: Annotated[
        Int,
        setting(
            "Query examples per class; sinusoid: query points.",
            paper="K (Omniglot), 15 (MiniImagenet)",
            ge=1,
        ),
    ] = 1
    train_classes: Annotated[
        Int,
        setting(
            "Omniglot characters for meta-training; the rest are the test split.",
            paper="1200",
            ge=1,
        ),
    ] = 1200
    cache_dir: Annotated[
        Str,
        setting(
            "Keep decoded images there as `.npz` for later runs; empty: memory only.",
            allowed="a folder",
        ),
    ] = ""


@dataclass
class ModelConfig:
    """Few-shot network (`agents/fewshot_models.py`)."""

    __pydantic_config__: ClassVar[ConfigDict] = STRICT

    hidden_sizes: Annotated[
        Sizes,
        setting(
            "ReLU MLP widths (sinusoid).",
            paper="`[40, 40]`",
            expected="a non-empty list of sizes >= 1",
            allowed="non-empty, `>= 1`",
        ),
    ] = field(default_factory=lambda: [40, 40])
    filters: Annotated[
        Int,
        setting(
            "Channels of each of the 4 conv blocks (3x3 conv, batch norm with batch statistics, ReLU).",
            paper="64 Omniglot, 32 MiniImagenet",
            ge=1,
        ),
    ] = 64
    max_pool: Annotated[
        Bool,
        setting(
            "2x2 max-pooling after each block and flattened features (MiniImagenet), instead of stride-2 "
            "convolutions and features averaged over space (Omniglot).",
            paper="MiniImagenet: true",
        ),
    ] = False
