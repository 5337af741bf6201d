"""Checks of a run directory's files before ``--resume`` writes anything to it.

A truncated or hand-edited ``config.yaml``, checkpoint or ``metrics.csv`` is reported in one line naming the
file and what is wrong (:class:`metarl.core.errors.CheckpointError`, exit code 2), before any file of the run
is
rewritten; a row cut short by a crash after the last checkpoint is not damage (resume drops it).
"""

from __future__ import annotations

import csv
import io
import numbers
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from metarl.core.errors import CheckpointError

#: what every message ends with: the check runs before anything is written
UNCHANGED = "nothing in the run was changed"


def damaged(path: str | Path, what: str) -> CheckpointError:
    """The one-line error for a damaged file of a run."""
    return CheckpointError(f"{path}: {what}; {UNCHANGED}")


def checkpoint_iteration(path: str | Path, state: dict[str, Any], keys: Iterable[str] = ()) -> int:
    """The iteration a loaded training checkpoint holds, after checking that it can be resumed from.

    Args:
        path: the checkpoint (for the message).
        state: what :func:`metarl.training.checkpoints.load_checkpoint` returned.
        keys: the entries a resume restores besides ``iteration`` and ``policy`` (``numpy_rng``, ...).

    Raises:
        CheckpointError: an entry missing, or ``iteration`` not a whole number >= 0.
    """
    missing = [k for k in keys if k not in state]
    if missing:
        raise damaged(path, f"lacks {', '.join(missing)}, which a resume restores")
    iteration = state["iteration"]
    if isinstance(iteration, bool) or not isinstance(iteration, numbers.Integral) or iteration < 0:
        raise damaged(path, f"iteration is {iteration!r}, not a whole number >= 0")
    if not isinstance(state["policy"], dict):
        raise damaged(path, f"policy is a {type(state['policy']).__name__}, not a state dict")
    return int(iteration)


def check_config_matches(
    path: str | Path, stored: dict[str, Any], trained: dict[str, Any], free: tuple
) -> None:
    """``config.yaml`` (``stored``) says what the checkpoint was trained with (``trained``), but for ``free``.

    Args:
        path: ``config.yaml`` (for the message).
        stored: nested plain data (``config_to_dict``) of the file.
        trained: the same of the checkpoint's ``config``.
        free: key prefixes that may differ (the settings a resume may change).

    Raises:
        CheckpointError: the first other key that differs, with both values.
    """
    for key, ours, theirs in _differences(stored, trained):
        if not key.startswith(free):
            raise damaged(
                path,
                f"{key} is {ours!r}, but the checkpoint was trained with {theirs!r} (a hand edit? put it "
                "back; settings a resume may change are given with --set)",
            )


def _differences(a: dict, b: dict, prefix: str = "") -> list[tuple[str, Any, Any]]:
    out = []
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key), b.get(key)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += _differences(va, vb, f"{prefix}{key}.")
        elif va != vb:
            out.append((f"{prefix}{key}", va, vb))
    return out


def check_metrics(path: str | Path, iteration: int, checkpoint: str | Path) -> None:
    """``metrics.csv`` holds whole rows for iterations ``1..iteration``, in order, every value a number.

    Rows after ``iteration`` are not checked (a resume drops them), and a last line without its newline (a
    row cut short by a crash) is ignored, as the resume does.

    Args:
        path: the file.
        iteration: the iteration ``checkpoint`` holds.
        checkpoint: the checkpoint resumed from (for the message).

    Raises:
        CheckpointError: the file missing, a header without ``iteration``, a row cut short, a value that is
            not a number, or rows missing, repeated or out of order up to ``iteration``.
    """
    path = Path(path)
    needs = f"{checkpoint} holds iteration {iteration}, so resuming needs rows 1 to {iteration}"
    if iteration == 0:
        return
    if not path.is_file():
        raise damaged(path, f"is missing; {needs}")
    text = path.read_text(errors="replace")
    if not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
    if not text:
        raise damaged(path, f"holds no whole line (cut short); {needs}")
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if not header or header[0] != "iteration":
        raise damaged(
            path, f"line 1 is {','.join(header or [])[:60]!r}, not a header starting with 'iteration'"
        )
    for expected in range(1, iteration + 1):
        row = next(reader, None)
        line = reader.line_num
        if row is None:
            raise damaged(path, f"ends after iteration {expected - 1}; {needs}")
        if len(row) != len(header):
            raise damaged(path, f"line {line} has {len(row)} values, the header {len(header)} columns")
        if row[0] != str(expected):
            raise damaged(
                path, f"line {line} is iteration {row[0]!r} where iteration {expected} belongs; {needs}"
            )
        for column, value in zip(header[1:], row[1:], strict=True):
            if value != "" and not _is_number(value):
                raise damaged(path, f"line {line}: {column} is {value!r}, not a number")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
