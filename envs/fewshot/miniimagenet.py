"""MiniImagenet (Vinyals et al., 2016) with the Ravi and Larochelle (2017) split, as the MAML paper used it.

Expected folder (``data.root``)::

    train.csv  val.csv  test.csv     header ``filename,label``; 64 / 16 / 20 classes of 600 images
    images/<filename>                the images named in the CSVs (any size; resized to 84x84)
"""

from __future__ import annotations

import csv
import functools
import hashlib
from pathlib import Path

import numpy as np

from metarl.core.errors import ConfigError

from .images import ClassImages, ImageClassificationTasks, cached_split, decode_images

SPLITS = ("train", "val", "test")
IMAGE_SIZE = 84


def read_split(root: Path, split: str) -> list[tuple[str, list[str]]]:
    """``(label, image paths)`` per class of ``split.csv``, classes in order of first appearance.

    Raises:
        ConfigError: the CSV is malformed or names images that are not in ``images/``.
    """
    path = root / f"{split}.csv"
    with path.open(newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        rows = list(reader)
    if header is None or [h.strip() for h in header[:2]] != ["filename", "label"] or not rows:
        raise ConfigError(
            f"data.root: {str(path)!r} should start with the header 'filename,label' followed by one row per "
            f"image, found {','.join(header) if header else 'an empty file'!r} and {len(rows)} rows"
        )
    classes: dict[str, list[str]] = {}
    for row in rows:
        if len(row) >= 2:
            classes.setdefault(row[1].strip(), []).append(str(root / "images" / row[0].strip()))
    files = [p for paths in classes.values() for p in paths]
    missing = [p for p in files if not Path(p).is_file()]
    if missing:
        raise ConfigError(
            f"data.root: {split}.csv lists {len(files)} images but {len(missing)} are not in "
            f"{str(root / 'images')!r}, e.g. {Path(missing[0]).name!r}"
        )
    return list(classes.items())


def _decode(classes: list[tuple[str, list[str]]]) -> ClassImages:
    paths = [p for _, files in classes for p in files]
    offsets = np.cumsum([0] + [len(files) for _, files in classes])
    return ClassImages(decode_images(paths, IMAGE_SIZE, "RGB"), offsets, tuple(n for n, _ in classes))


def load_miniimagenet(root: str | Path, ways: int, cache_dir: str = "") -> ImageClassificationTasks:
    """MiniImagenet ``ways``-way tasks with ``train``, ``val`` and ``test`` splits.

    Args:
        root: the folder holding the three CSV files and ``images/``.
        ways: classes per task.
        cache_dir: if set, decoded splits are stored there as ``.npz`` and reused by later runs.

    Raises:
        ConfigError: a missing folder, CSV or image, or a malformed CSV.
    """
    root = Path(root)
    if not root.is_dir():
        raise ConfigError(
            f"data.root: {str(root)!r} does not exist (expected the MiniImagenet folder holding "
            "train.csv, val.csv, test.csv and images/)"
        )
    expected = [f"{s}.csv" for s in SPLITS] + ["images"]
    missing = [name for name in expected if not (root / name).exists()]
    if missing:
        found = ", ".join(sorted(p.name for p in root.iterdir())[:8]) or "nothing"
        raise ConfigError(
            f"data.root: expected train.csv, val.csv, test.csv and images/ in {str(root)!r} (the standard "
            f"MiniImagenet layout), missing {', '.join(missing)}; found: {found}"
        )
    splits = {}
    for split in SPLITS:
        classes = read_split(root, split)
        key = hashlib.sha1(f"{root.resolve()}|{split}|{sum(len(f) for _, f in classes)}".encode()).hexdigest()
        cache = (
            str(Path(cache_dir) / f"miniimagenet-{split}-{IMAGE_SIZE}-{key[:10]}.npz") if cache_dir else ""
        )
        splits[split] = cached_split(cache, functools.partial(_decode, classes))
    return ImageClassificationTasks("miniimagenet", splits, ways)
