"""Checkpoints: only tensors and plain types, written atomically, loaded with ``weights_only=True``.

A checkpoint is a dict with ``format_version``, ``iteration``, ``policy`` (state dict), ``config`` (nested
plain data), ``numpy_rng`` (bit-generator state), ``torch_rng`` (generator state tensor) and ``best_return``.
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from metarl.core.errors import CheckpointError, writing

FORMAT_VERSION = 1
REQUIRED_KEYS = ("format_version", "iteration", "policy", "config")


def atomic_write(path: str | Path, data: bytes | bytearray | memoryview | str) -> None:
    """Write a file so that a crash at any moment leaves either the old file or the whole new one.

    ``data`` (a ``str`` is written as UTF-8) goes to a temp file in the same folder, which is flushed,
    fsynced and renamed over ``path``; the folder is fsynced too, so the rename itself survives a power loss.

    Raises:
        metarl.core.errors.WriteError: the file could not be written (full disk, read-only folder); ``path``
        is
            as it was, and no temp file is left.
    """
    path = Path(path)
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data.encode() if isinstance(data, str) else data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        folder = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` to ``path`` atomically (:func:`atomic_write`); a crash never leaves half a file."""
    payload = {"format_version": FORMAT_VERSION, **payload}
    buffer = io.BytesIO()  # serialized first: torch's writer reports a failed write as a RuntimeError
    torch.save(payload, buffer)
    atomic_write(path, buffer.getbuffer())


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint file.

    Raises:
        CheckpointError: the file is missing, unreadable, not a metarl checkpoint, or from a newer format.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint: {str(path)!r} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a damaged file; all mean "unreadable"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"checkpoint: {str(path)!r} is not a readable checkpoint ({first[:120]})"
        ) from None
    if not isinstance(payload, dict) or any(k not in payload for k in REQUIRED_KEYS):
        raise CheckpointError(f"checkpoint: {str(path)!r} lacks the keys {list(REQUIRED_KEYS)}")
    if payload["format_version"] > FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint: {str(path)!r} has format_version {payload['format_version']}, "
            f"this metarl reads up to {FORMAT_VERSION}"
        )
    return payload


def resolve_target(target: str | Path) -> tuple[Path, Path]:
    """The checkpoint file a command's target stands for, and the folder its outputs go to by default.

    ``target`` may be a run directory (its ``checkpoints/latest.pt``; outputs in the run directory), a folder
    holding one checkpoint file, such as a shipped policy's ``experiments/pretrained/<task>/`` (that file;
    outputs there), or a checkpoint file (outputs in its run directory if it lies in ``RUN/checkpoints/``,
    else in its folder).

    Raises:
        CheckpointError: ``target`` does not exist, or is a folder with neither ``checkpoints/latest.pt`` nor
            exactly one ``.pt`` file.
    """
    target = Path(target)
    if target.is_file():
        in_run = target.parent.name == "checkpoints"
        return target, target.parent.parent if in_run else target.parent
    if not target.is_dir():
        raise CheckpointError(f"checkpoint: {str(target)!r} does not exist")
    latest = target / "checkpoints" / "latest.pt"
    if latest.exists():
        return latest, target
    files = sorted(target.glob("*.pt"))
    if len(files) == 1:
        return files[0], target
    found = f"{len(files)} .pt files ({', '.join(f.name for f in files)})" if files else "no .pt file"
    raise CheckpointError(
        f"checkpoint: {str(target)!r} is a folder with no checkpoints/latest.pt and {found}; give a run "
        "directory, a folder holding one checkpoint (such as experiments/pretrained/<task>), or a .pt file"
    )
