"""Omniglot (Lake et al., 2015) in its standard layout, as the MAML paper used it.

Expected folder (``data.root``)::

    images_background/<alphabet>/<character>/*.png    (964 characters in the official release)
    images_evaluation/<alphabet>/<character>/*.png    (659 characters)

The 1623 characters, background first and each folder sorted by name, are split into the first
``train_classes`` (paper: 1200) for meta-training and the rest for testing. Images are resized to 28x28 and,
as in the paper, every character rotated by 90, 180 and 270 degrees is a further class.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

import numpy as np

from metarl.core.errors import ConfigError

from .images import ClassImages, ImageClassificationTasks, cached_split, decode_images

FOLDERS = ("images_background", "images_evaluation")
IMAGE_SIZE = 28


def _listing(path: Path) -> str:
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in path.iterdir())
    return ", ".join(names[:6]) + (f", ... ({len(names)} entries)" if len(names) > 6 else "") or "nothing"


def find_characters(root: str | Path) -> list[tuple[str, list[str]]]:
    """``(alphabet/character, sorted png paths)`` for every character, background then evaluation.

    Raises:
        ConfigError: the folder is missing or not in the standard layout.
    """
    root = Path(root)
    if not root.is_dir():
        raise ConfigError(
            f"data.root: {str(root)!r} does not exist (expected the Omniglot folder holding "
            f"{' and '.join(FOLDERS)})"
        )
    missing = [f for f in FOLDERS if not (root / f).is_dir()]
    if missing:
        raise ConfigError(
            f"data.root: expected {'/ and '.join(FOLDERS)}/ in {str(root)!r} (the standard Omniglot layout), "
            f"missing {', '.join(missing)}; found: {_listing(root)}"
        )
    characters = []
    for folder in FOLDERS:
        alphabets = sorted(p for p in (root / folder).iterdir() if p.is_dir())
        if not alphabets:
            raise ConfigError(
                f"data.root: expected <alphabet>/<character>/*.png folders in {str(root / folder)!r}, "
                f"found: {_listing(root / folder)}"
            )
        for alphabet in alphabets:
            chars = sorted(p for p in alphabet.iterdir() if p.is_dir())
            if not chars:
                raise ConfigError(
                    f"data.root: expected <character>/*.png folders in alphabet {str(alphabet)!r}, "
                    f"found: {_listing(alphabet)}"
                )
            for char in chars:
                pngs = sorted(str(p) for p in char.glob("*.png"))
                if not pngs:
                    raise ConfigError(
                        f"data.root: character folder {str(char)!r} holds no .png images, "
                        f"found: {_listing(char)}"
                    )
                characters.append((f"{alphabet.name}/{char.name}", pngs))
    return characters


def _decode(characters: list[tuple[str, list[str]]]) -> ClassImages:
    paths = [p for _, pngs in characters for p in pngs]
    offsets = np.cumsum([0] + [len(pngs) for _, pngs in characters])
    return ClassImages(decode_images(paths, IMAGE_SIZE, "L"), offsets, tuple(n for n, _ in characters))


def load_omniglot(
    root: str | Path, ways: int, train_classes: int = 1200, cache_dir: str = ""
) -> ImageClassificationTasks:
    """Omniglot ``ways``-way tasks with ``train`` and ``test`` splits (decoded once, optionally cached).

    Args:
        root: the folder holding ``images_background`` and ``images_evaluation``.
        ways: classes per task.
        train_classes: characters used for meta-training (paper: 1200); the rest are the test split.
        cache_dir: if set, decoded splits are stored there as ``.npz`` and reused by later runs.

    Raises:
        ConfigError: a wrong layout, or fewer characters than ``train_classes`` plus one task's worth.
    """
    characters = find_characters(root)
    if len(characters) < train_classes + 1:
        raise ConfigError(
            f"data.root: Omniglot needs more than data.train_classes={train_classes} characters "
            f"(1623 in the standard release), found {len(characters)} in {str(root)!r}"
        )
    parts = {"train": characters[:train_classes], "test": characters[train_classes:]}
    key = hashlib.sha1(f"{Path(root).resolve()}|{len(characters)}|{train_classes}".encode()).hexdigest()[:10]
    splits = {
        name: cached_split(
            str(Path(cache_dir) / f"omniglot-{name}-{IMAGE_SIZE}-{key}.npz") if cache_dir else "",
            functools.partial(_decode, part),
        )
        for name, part in parts.items()
    }
    return ImageClassificationTasks("omniglot", splits, ways, rotations=True)
