"""Graceful stop of a training loop: SIGINT or SIGTERM finishes the iteration, checkpoints it, then stops.

The loop polls :attr:`StopRequest.signum` after each iteration; the first signal only records itself (and
says so on stderr), so nothing is cut off halfway. A second signal while the request is pending raises
:class:`metarl.core.errors.Interrupted` at once: the files written before it (checkpoints are written
atomically) stay loadable.
"""

from __future__ import annotations

import signal
import sys
import threading
from types import FrameType, TracebackType
from typing import Any

from metarl.core.errors import Interrupted

#: the signals a training loop stops on gracefully
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequest:
    """Catch :data:`STOP_SIGNALS` for the ``with`` block (in the main thread; elsewhere it does nothing).

    Attributes:
        signum: the first signal received, or None.
    """

    def __init__(self) -> None:
        """No signal yet; handlers are installed on ``__enter__``."""
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopRequest:
        """Install the handlers, keeping the previous ones."""
        if threading.current_thread() is threading.main_thread():
            for signum in STOP_SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Restore the previous handlers."""
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:
            raise Interrupted(signum)
        self.signum = signum
        print(
            f"metarl: {signal.Signals(signum).name} received: finishing this iteration, then checkpointing "
            "and stopping (Ctrl-C again stops at once)",
            file=sys.stderr,
            flush=True,
        )


def raise_interrupted(signum: int, frame: FrameType | None) -> None:
    """A signal handler that stops at once with :class:`~metarl.core.errors.Interrupted`, unwinding."""
    raise Interrupted(signum)
