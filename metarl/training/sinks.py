"""Metric sinks: ``metrics.csv`` (a row per iteration) and TensorBoard event files.

Metric names are ``section/name`` (``meta/``, ``inner/``, ``trpo/``, ``time/``, ``policy/``) and are the CSV's
column names as they are, e.g. ``meta/return_after``; docs/METRICS.md explains each.
"""

from __future__ import annotations

import csv
import io
import math
import threading
from pathlib import Path
from typing import Any, Protocol

from metarl.core.errors import writing
from metarl.training.checkpoints import atomic_write


class MetricSink(Protocol):
    """Receives one dict of float metrics per iteration."""

    def write(self, iteration: int, metrics: dict[str, float]) -> None:
        """Record ``metrics`` for ``iteration``."""
        ...

    def close(self) -> None:
        """Flush and release files."""
        ...


class CSVSink:
    """Append rows to a CSV file; on resume, rows after ``resume_iteration`` are dropped first.

    Each row is appended and flushed when written; a row cut short by a crash is dropped on resume, and the
    file is rewritten then atomically (``metarl.training.checkpoints.atomic_write``).

    Args:
        path: the CSV file.
        resume_iteration: keep only rows with ``iteration <= resume_iteration`` of an existing file
            (None: new file).
    """

    def __init__(self, path: str | Path, resume_iteration: int | None = None) -> None:
        """Open the file; see the class docstring."""
        self.path = Path(path)
        self._columns: list[str] | None = None
        if resume_iteration is not None and self.path.is_file():
            text = self.path.read_text()
            if not text.endswith("\n"):  # a row cut short by a crash
                text = text[: text.rfind("\n") + 1]
            reader = csv.DictReader(io.StringIO(text, newline=""))
            self._columns = list(reader.fieldnames or []) or None
            kept = [
                r
                for r in reader
                if None not in r.values() and None not in r and int(r["iteration"]) <= resume_iteration
            ]
            if self._columns is not None:
                out = io.StringIO(newline="")
                writer = csv.DictWriter(out, self._columns)
                writer.writeheader()
                writer.writerows(kept)
                atomic_write(self.path, out.getvalue())
        elif self.path.exists():
            self.path.unlink()

    def write(self, iteration: int, metrics: dict[str, float]) -> None:
        """Append one row (the header comes from the first row written).

        A row with metrics the header lacks (a run resumed by a newer metarl that logs more) widens the
        file once: it is rewritten atomically with the new columns appended, empty in the earlier rows.
        """
        row: dict[str, Any] = {"iteration": iteration, **metrics}
        columns = self._columns
        new_file = columns is None
        if columns is None:
            columns = self._columns = list(row)
        elif added := [k for k in row if k not in columns]:
            columns = [*columns, *added]
            self._widen(columns)
        with writing(self.path), self.path.open("a", newline="") as handle:
            writer = csv.DictWriter(handle, columns, extrasaction="ignore")
            if new_file:
                writer.writeheader()
            writer.writerow(row)

    def _widen(self, columns: list[str]) -> None:
        with self.path.open(newline="") as handle:
            rows = list(csv.DictReader(handle))
        out = io.StringIO(newline="")
        writer = csv.DictWriter(out, columns, restval="")
        writer.writeheader()
        writer.writerows(rows)
        atomic_write(self.path, out.getvalue())
        self._columns = columns

    def close(self) -> None:
        """Nothing to release: each row is written and closed at once."""


def _quiet_event_writer_failures() -> None:
    """Leave a failed event-file write (a full disk) to the main thread to report.

    TensorBoard's writer thread keeps the ``OSError`` and raises it again on the next ``add_scalar``,
    ``flush`` or ``close``, where :class:`TensorBoardSink` turns it into a
    :class:`metarl.core.errors.WriteError`;
    the thread also lets it escape, and Python's default ``threading.excepthook`` would print its traceback.
    """
    previous = threading.excepthook
    if getattr(previous, "metarl_quiet", False):
        return

    def hook(args: threading.ExceptHookArgs) -> None:
        if type(args.thread).__name__ == "_AsyncWriterThread" and isinstance(args.exc_value, OSError):
            return
        previous(args)

    hook.metarl_quiet = True  # type: ignore[attr-defined]
    threading.excepthook = hook


class TensorBoardSink:
    """Scalars under their metric names; steps after ``purge_step`` of an earlier run are discarded."""

    def __init__(self, log_dir: str | Path, purge_step: int | None = None) -> None:
        """Open a ``SummaryWriter`` (imported here: tensorboard is only needed when this sink is used)."""
        from torch.utils.tensorboard import SummaryWriter

        self._log_dir = Path(log_dir)
        _quiet_event_writer_failures()
        with writing(self._log_dir):
            self._writer = SummaryWriter(log_dir=str(log_dir), purge_step=purge_step)

    def write(self, iteration: int, metrics: dict[str, float]) -> None:
        """Add every finite metric as a scalar."""
        with writing(self._log_dir):
            for name, value in metrics.items():
                if math.isfinite(value):
                    self._writer.add_scalar(name, value, iteration)
            self._writer.flush()

    def close(self) -> None:
        """Close the event file."""
        with writing(self._log_dir):
            self._writer.close()


class Logger:
    """Fan out metrics to several sinks."""

    def __init__(self, sinks: list[MetricSink]) -> None:
        """Keep the sinks."""
        self.sinks = sinks

    def write(self, iteration: int, metrics: dict[str, float]) -> None:
        """Send ``metrics`` to every sink."""
        for sink in self.sinks:
            sink.write(iteration, metrics)

    def close(self, quiet: bool = False) -> None:
        """Close every sink, then raise the first sink's error unless ``quiet`` (a run already failing)."""
        failure: Exception | None = None
        for sink in self.sinks:
            try:
                sink.close()
            except Exception as exc:
                failure = failure or exc
        if failure is not None and not quiet:
            raise failure
