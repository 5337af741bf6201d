"""One process per run directory: an exclusive ``flock`` on ``RUN_DIR/.lock`` while a command writes there.

The kernel drops the lock when its process ends, however it ends (SIGKILL included), so a killed run never
leaves its directory stuck; the file keeps the holder's process id so that the refusal can name it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from metarl.core.errors import ConfigError

LOCK_NAME = ".lock"


def lock_holder(run_dir: str | Path) -> int | None:
    """The process id holding ``run_dir``'s lock, or None when no process holds it."""
    path = Path(run_dir) / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_pid(fd) or -1
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def in_use_message(run_dir: str | Path, pid: int) -> str:
    """The one line that refuses a second process on ``run_dir``."""
    who = f"process {pid}" if pid > 0 else "another process"
    stop = f"; stop it with: kill -INT {pid}" if pid > 0 else ""
    return f"run directory {str(run_dir)!r} is in use by {who} (one metarl process per run directory){stop}"


@contextlib.contextmanager
def hold_run_dir(run_dir: str | Path) -> Iterator[None]:
    """Hold ``run_dir``'s lock for the block (creating the folder if needed).

    Raises:
        ConfigError: another process holds it (the message names that process).
    """
    root = Path(run_dir)
    try:
        root.mkdir(parents=True, exist_ok=True)
        fd = os.open(root / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise ConfigError(f"--run-dir: cannot create {str(root)!r}: {exc.strerror}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(in_use_message(root, _read_pid(fd) or -1)) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _read_pid(fd: int) -> int | None:
    try:
        return int(os.pread(fd, 32, 0).decode().strip() or 0) or None
    except (OSError, ValueError):
        return None
