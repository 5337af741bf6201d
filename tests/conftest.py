"""Shared fixtures: small few-shot data folders in the standard Omniglot and MiniImagenet layouts."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

#: ``--set`` overrides that shrink any meta-RL config to a run of seconds
TINY_SETTINGS = (
    "meta.batch_size=2",
    "meta.episodes_per_task=2",
    "policy.hidden_sizes=[8]",
    "evaluation.tasks=2",
    "evaluation.steps=1",
    "evaluation.episodes=2",
    "logging.progress=false",
    "logging.tensorboard=false",
)


def tiny_settings(*changes: str) -> list[str]:
    """:data:`TINY_SETTINGS` with ``key=value`` ``changes`` replacing the same keys or added after them."""
    merged = dict(item.split("=", 1) for item in TINY_SETTINGS)
    merged.update(item.split("=", 1) for item in changes)
    return [f"{key}={value}" for key, value in merged.items()]


REPO = Path(__file__).resolve().parents[1]


def start_metarl(args: list[str], cwd: Path, new_session: bool = False) -> subprocess.Popen:
    """``python -m metarl.cli ARGS`` as a process (stderr piped); ``new_session``: its own process group."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen(
        [sys.executable, "-m", "metarl.cli", *args], cwd=cwd, env=env, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True, start_new_session=new_session,
    )  # fmt: skip


def train_command(config: str | Path, run: Path, settings: list[str]) -> list[str]:
    """``metarl train CONFIG --run-dir RUN --set ...`` arguments (without the program)."""
    return ["train", str(config), "--run-dir", str(run), *[a for item in settings for a in ("--set", item)]]


def load_experiment(name: str):
    """The module of ``experiments/NAME.py`` (the scripts are not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, REPO / "experiments" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def metric_rows(run: Path) -> list[dict[str, str]]:
    """``run/metrics.csv``'s rows without the ``time/`` columns (which differ between equal runs)."""
    with (run / "metrics.csv").open() as handle:
        return [{k: v for k, v in r.items() if not k.startswith("time/")} for r in csv.DictReader(handle)]


def rows_written(run: Path) -> int:
    """Rows in ``run/metrics.csv`` so far (0 before it exists)."""
    try:
        return max(0, len((run / "metrics.csv").read_text().splitlines()) - 1)
    except FileNotFoundError:
        return 0


def write_omniglot(
    root: Path, alphabets: dict[str, tuple[str, int]], images: int = 4, size: int = 32, seed: int = 0
) -> Path:
    """``images_background`` / ``images_evaluation`` trees: ``alphabets`` maps ``folder/alphabet`` -> count.

    Args:
        root: where to write.
        alphabets: ``{"images_background/Latin": ("character", 3), ...}`` -> 3 character folders.
        images: PNGs per character (random strokes, ``size x size`` grey).
        size: image side (the loader resizes to 28).
        seed: pixel seed.
    """
    from PIL import Image

    rng = np.random.default_rng(seed)
    for folder, (prefix, count) in alphabets.items():
        for c in range(count):
            char = root / folder / f"{prefix}{c + 1:02d}"
            char.mkdir(parents=True)
            for i in range(images):
                pixels = np.where(rng.random((size, size)) < 0.1, 0, 255).astype(np.uint8)
                Image.fromarray(pixels, mode="L").save(char / f"{c:04d}_{i + 1:02d}.png")
    return root


def write_miniimagenet(
    root: Path, classes: dict[str, int], images: int = 4, size: int = 24, seed: int = 0
) -> Path:
    """``train.csv``/``val.csv``/``test.csv`` + ``images/``; ``classes`` maps split -> number of classes."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    for split, count in classes.items():
        with (root / f"{split}.csv").open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["filename", "label"])
            for c in range(count):
                label = f"n{split}{c:05d}"
                for i in range(images):
                    name = f"{label}{i:08d}.jpg"
                    pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
                    Image.fromarray(pixels, mode="RGB").save(root / "images" / name)
                    writer.writerow([name, label])
    return root


@pytest.fixture(scope="session")
def omniglot_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """14 characters (8 background, 6 evaluation), 10 images each; train_classes=8 leaves 6 x 4 = 24."""
    root = tmp_path_factory.mktemp("omniglot")
    return write_omniglot(
        root,
        {
            "images_background/Alpha": ("character", 5),
            "images_background/Beta": ("character", 3),
            "images_evaluation/Gamma": ("character", 6),
        },
        images=10,
    )


@pytest.fixture(scope="session")
def miniimagenet_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """5 classes per split, 20 small colour JPEGs each (5-way 5-shot with 15 query images fits exactly)."""
    return write_miniimagenet(tmp_path_factory.mktemp("miniimagenet"), {"train": 5, "val": 5, "test": 5}, 20)


@pytest.fixture
def omniglot_writer():
    """:func:`write_omniglot`, for tests that need their own (often broken) folder."""
    return write_omniglot


@pytest.fixture
def miniimagenet_writer():
    """:func:`write_miniimagenet`, for tests that need their own (often broken) folder."""
    return write_miniimagenet


@pytest.fixture
def gl() -> str:
    """The off-screen OpenGL backend ``metarl render`` picks; skips the test where none works."""
    from metarl.core.errors import ConfigError
    from metarl.viz import render

    try:
        return render.choose_gl_backend()
    except ConfigError as exc:
        pytest.skip(f"no off-screen OpenGL here: {exc}")
