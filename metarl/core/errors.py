"""Errors raised for user mistakes: each names the field, the value received and what is allowed."""

from __future__ import annotations

import contextlib
import difflib
from collections.abc import Iterable, Iterator
from pathlib import Path


class ConfigError(ValueError):
    """A configuration value (YAML, ``--set`` or command-line flag) that cannot be used."""


class CheckpointError(ValueError):
    """A checkpoint that is missing, unreadable or does not match the run."""


class RunError(RuntimeError):
    """A run that cannot go on (not a user mistake); the message is one line and says what was kept."""


class CollectorError(RunError):
    """Collection failed: a worker raised, or workers died more often than ``collector.max_restarts``."""


class NonFiniteError(RunError):
    """NaN or inf in a quantity of the update.

    Attributes:
        quantity: what was not finite, e.g. ``observations`` or ``gradient``.
    """

    def __init__(self, quantity: str, message: str | None = None) -> None:
        """``quantity`` names what was not finite; ``message`` defaults to a sentence saying so."""
        super().__init__(message or f"{quantity} contain NaN or inf")
        self.quantity = quantity


class WriteError(RunError):
    """A file that could not be written (a full disk, a read-only folder); the file it would replace is kept.

    Attributes:
        path: the file (or folder) that could not be written.
        cause: the ``OSError`` (``errno.ENOSPC``, ``errno.EROFS``, ...).
    """

    def __init__(self, path: str | Path, cause: OSError, note: str = "") -> None:
        """``note``: what was kept and how to go on, appended to the message after ``; ``."""
        reason = cause.strerror or str(cause)
        super().__init__(f"cannot write {path}: {reason}" + (f"; {note}" if note else ""))
        self.path, self.cause = str(path), cause

    def with_note(self, note: str) -> WriteError:
        """The same error with ``note`` (e.g. the checkpoint to resume from) in its message."""
        return WriteError(self.path, self.cause, note)


@contextlib.contextmanager
def writing(path: str | Path) -> Iterator[None]:
    """Raise an ``OSError`` from the block as a :class:`WriteError` that names ``path``."""
    try:
        yield
    except OSError as exc:
        raise WriteError(path, exc) from exc


def resume_note(latest: str | Path, iteration: int, run_dir: str | Path) -> str:
    """What a run that stopped on a fault kept, and the command that continues it."""
    kept = f"{latest} holds iteration {iteration}" if iteration else "no checkpoint was written yet"
    return f"{kept}; once the folder can be written again, resume with: metarl train --resume {run_dir}"


class Interrupted(KeyboardInterrupt):
    """A signal that stops the process at once (a second Ctrl-C, or SIGTERM outside the training loop).

    A ``KeyboardInterrupt``, so that no ``except Exception`` on the way swallows it.

    Attributes:
        signum: the signal's number; ``metarl`` exits with ``128 + signum`` (130 for SIGINT, 143 for SIGTERM).
    """

    def __init__(self, signum: int) -> None:
        """``signum``: the signal received."""
        super().__init__(signum)
        self.signum = signum


class Stopped(Exception):
    """Training stopped on a signal after a completed iteration whose checkpoint is written.

    Attributes:
        signum: the signal's number (``metarl`` exits with ``128 + signum``).
        iteration: the last completed iteration, the one ``checkpoints/latest.pt`` holds.
    """

    def __init__(self, signum: int, iteration: int, total: int, run_dir: str) -> None:
        """The signal, the last completed iteration of ``total`` and the run directory."""
        import signal

        name = signal.Signals(signum).name
        super().__init__(
            f"stopped by {name} after iteration {iteration} of {total}; its checkpoint is "
            f"{run_dir}/checkpoints/latest.pt; resume with: metarl train --resume {run_dir}"
        )
        self.signum, self.iteration = signum, iteration


def closest(name: str, choices: Iterable[str]) -> str:
    """Return ``" (did you mean 'x'?)"`` for the closest of ``choices``, or ``""`` when none is close."""
    match = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.5)
    return f" (did you mean {match[0]!r}?)" if match else ""
