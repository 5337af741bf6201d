"""N-way K-shot image classification tasks from a set of classes held in memory.

A task picks ``ways`` classes without replacement and, from each, ``shots + query_shots`` images without
replacement; its labels are the classes' positions in that random pick, so every task permutes the labels.
Images are decoded once (see :mod:`envs.fewshot.omniglot`, :mod:`envs.fewshot.miniimagenet`) and kept as one
``uint8`` array, so sampling a meta-batch only indexes memory.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from metarl.core.errors import ConfigError

from .base import FewShotBatch


@dataclass(frozen=True)
class ClassificationTask:
    """The split's class indices behind labels ``0..ways-1``, space-separated (rotation in quarter turns)."""

    classes: str


@dataclass(frozen=True)
class ClassImages:
    """Decoded images of one split, class after class.

    Attributes:
        images: ``[M, H, W]`` (grey) or ``[M, H, W, 3]`` (colour) ``uint8``.
        offsets: ``[C + 1]``; class ``c`` owns ``images[offsets[c]:offsets[c + 1]]``.
        names: ``C`` class names (for error messages).
    """

    images: np.ndarray
    offsets: np.ndarray
    names: tuple[str, ...]

    @property
    def counts(self) -> np.ndarray:
        """Images per class ``[C]``."""
        return np.diff(self.offsets)


class ImageClassificationTasks:
    """N-way classification tasks over the classes of each split.

    Args:
        name: dataset name used in messages (``omniglot``, ``miniimagenet``).
        splits: split name (``train``, ``val``, ``test``) -> its decoded classes.
        ways: classes per task ``N``.
        rotations: also use every class rotated by 90, 180 and 270 degrees as new classes (Omniglot, as in the
            paper).
    """

    kind = "classification"

    def __init__(self, name: str, splits: dict[str, ClassImages], ways: int, rotations: bool = False) -> None:
        """See the class docstring."""
        self.name = name
        self.splits = splits
        self.ways = ways
        self.rotations = 4 if rotations else 1
        sample = next(iter(splits.values())).images
        height, width = sample.shape[1:3]
        channels = 3 if sample.ndim == 4 else 1
        self.input_shape: tuple[int, ...] = (channels, height, width)
        self.num_outputs = ways

    def check(self, split: str, shots: int, query_shots: int) -> None:
        """Raise one-line :class:`ConfigError` if ``split`` cannot give ``ways``-way, ``shots``-shot tasks."""
        if split not in self.splits:
            raise ConfigError(f"data: {self.name} has no {split!r} split (it has {', '.join(self.splits)})")
        data = self.splits[split]
        classes = len(data.names) * self.rotations
        if classes < self.ways:
            raise ConfigError(
                f"data.root: the {self.name} {split} split has {classes} classes, "
                f"a {self.ways}-way task needs {self.ways}"
            )
        needed = shots + query_shots
        counts = data.counts
        if counts.min() < needed:
            worst = int(np.argmin(counts))
            raise ConfigError(
                f"data.root: {self.name} class {data.names[worst]!r} ({split}) has {counts[worst]} images; "
                f"{self.ways}-way {shots}-shot with {query_shots} query images needs {needed} per class"
            )

    def sample(
        self, n: int, rng: np.random.Generator, *, split: str = "train", shots: int = 1, query_shots: int = 1
    ) -> FewShotBatch:
        """``n`` tasks with ``shots`` support and ``query_shots`` query images per class.

        Returns:
            A :class:`FewShotBatch`: inputs ``[n, ways * shots, C, H, W]`` float32 in ``[0, 1]`` and labels
            ``[n, ways * shots]`` int64 (class after class), likewise for the query.
        """
        data = self.splits[split]
        per_class = shots + query_shots
        pictures = np.empty((n, self.ways, per_class, *data.images.shape[1:]), dtype=np.uint8)
        tasks = []
        for i in range(n):
            picked = rng.choice(len(data.names) * self.rotations, size=self.ways, replace=False)
            for j, label in enumerate(picked):
                cls, quarter_turns = divmod(int(label), self.rotations)
                begin, count = data.offsets[cls], data.counts[cls]
                chosen = data.images[begin + rng.choice(count, size=per_class, replace=False)]
                pictures[i, j] = np.rot90(chosen, quarter_turns, axes=(1, 2)) if quarter_turns else chosen
            tasks.append(ClassificationTask(" ".join(str(int(c)) for c in picked)))
        inputs = pictures.astype(np.float32) / 255.0
        inputs = inputs[..., None] if inputs.ndim == 5 else inputs  # grey -> one channel, last for now
        inputs = np.moveaxis(inputs, -1, 3)  # [n, ways, per_class, C, H, W]
        labels = np.broadcast_to(np.arange(self.ways)[None, :, None], (n, self.ways, per_class))
        flat = (n, -1, *inputs.shape[3:])
        support_x = np.ascontiguousarray(inputs[:, :, :shots].reshape(flat))
        query_x = np.ascontiguousarray(inputs[:, :, shots:].reshape(flat))
        support_y = labels[:, :, :shots].reshape(n, -1).astype(np.int64)
        query_y = labels[:, :, shots:].reshape(n, -1).astype(np.int64)
        return FewShotBatch(support_x, support_y, query_x, query_y, tuple(tasks))


def decode_images(paths: list[str], size: int, mode: str) -> np.ndarray:
    """Decode image files with Pillow, as ``mode`` (``L`` or ``RGB``), resized to ``size x size`` if needed.

    Returns:
        ``[len(paths), size, size]`` or ``[len(paths), size, size, 3]`` ``uint8``.
    """
    from PIL import Image

    shape = (len(paths), size, size) if mode == "L" else (len(paths), size, size, 3)
    out = np.empty(shape, dtype=np.uint8)
    for i, path in enumerate(paths):
        try:
            with Image.open(path) as opened:
                image = opened.convert(mode)
                if image.size != (size, size):
                    image = image.resize((size, size), Image.Resampling.LANCZOS)
                out[i] = np.asarray(image)
        except OSError as exc:
            raise ConfigError(f"data.root: cannot decode image {path!r} ({exc})") from None
    return out


def cached_split(cache_file: str, build: Callable[[], ClassImages]) -> ClassImages:
    """Load a split from an ``.npz`` cache file, or build it with ``build()`` and write the cache.

    ``cache_file`` empty means memory only.
    """
    from pathlib import Path

    if cache_file and Path(cache_file).is_file():
        with np.load(cache_file) as saved:
            return ClassImages(saved["images"], saved["offsets"], tuple(str(s) for s in saved["names"]))
    split = build()
    if cache_file:
        Path(cache_file).parent.mkdir(parents=True, exist_ok=True)
        tmp = f"{cache_file}.tmp.npz"
        np.savez(tmp, images=split.images, offsets=split.offsets, names=np.array(split.names))
        Path(tmp).replace(cache_file)
    return split
