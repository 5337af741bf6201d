"""The ``subprocess`` backend: worker processes on this machine, each owning whole tasks.

:class:`SubprocessCollector` runs the workers of a :class:`~metarl.collection.remote.RemoteCollector` as
processes (``spawn`` or ``forkserver``; torch limited to one thread in each). Jobs go through a pipe (pickled
by value), and the episodes come back through a shared-memory block per worker
(``multiprocessing.shared_memory``) that outlives the worker, so a replacement writes into the same block.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.connection
import pickle
import signal
import threading
from collections.abc import Sequence
from multiprocessing.context import ForkServerContext, SpawnContext
from multiprocessing.shared_memory import SharedMemory
from typing import Any, get_args

import numpy as np
import torch

from metarl.collection.remote import Layout, RemoteCollector, one_line
from metarl.collection.vector import CollectorSpec
from metarl.config.choices import StartMethod
from metarl.core.types import Task


def _views(buffer: Any, layout: Layout) -> dict[str, np.ndarray]:
    views, offset = {}, 0
    for name, (shape, dtype) in layout.items():
        size = int(np.prod(shape)) * np.dtype(dtype).itemsize
        views[name] = np.ndarray(shape, dtype=dtype, buffer=buffer, offset=offset)
        offset += -(-size // 8) * 8
    return views


def _nbytes(layout: Layout) -> int:
    return sum(-(-int(np.prod(s)) * np.dtype(d).itemsize // 8) * 8 for s, d in layout.values())


def worker_main(spec: CollectorSpec, num_tasks: int, shm_name: str, layout: Layout, conn: Any) -> None:
    """Body of a worker process: build a collector, then answer jobs until told to stop or the pipe closes."""
    # Ctrl-C and SIGTERM are the main process's to handle: it finishes the iteration, then closes the pipe
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    torch.set_num_threads(1)
    shm = SharedMemory(name=shm_name)
    views = _views(shm.buf, layout)
    try:
        collector = spec.build(num_tasks)
    except Exception as exc:
        with contextlib.suppress(OSError):
            conn.send(("error", f"building the envs: {one_line(exc)}"))
        return
    try:
        while True:
            try:
                job = conn.recv_bytes()
            except (EOFError, OSError):
                break
            if not job:
                break
            tasks, policy, seed = pickle.loads(job)
            reply: tuple[str, dict[str, float] | str]
            try:
                batch = collector.collect(tasks, policy, seed)
                for name, view in views.items():
                    view[...] = getattr(batch, name).numpy()
                reply = ("done", collector.pop_stats())
            except Exception as exc:
                reply = ("error", one_line(exc))
            try:
                conn.send(reply)
            except OSError:  # the main process is gone
                break
    finally:
        collector.close()
        views.clear()
        shm.close()


def _send_quietly(conn: Any, message: bytes) -> None:
    with contextlib.suppress(OSError, ValueError):  # the worker died: the main loop sees its sentinel
        conn.send_bytes(message)


class SubprocessCollector(RemoteCollector):
    """Worker processes on this machine (``collector.workers`` of them, ``collector.start_method``).

    Args:
        spec: how each worker builds its collector.
        num_tasks: ``N``.
        start_method: ``spawn`` or ``forkserver`` (``multiprocessing``).
        limits: ``workers``, ``timeout_s``, ``startup_timeout_s``, ``max_restarts`` of
            :class:`~metarl.collection.remote.RemoteCollector`.
    """

    backend = "subprocess"

    def __init__(
        self, spec: CollectorSpec, num_tasks: int, *, start_method: str = "spawn", **limits: Any
    ) -> None:
        """See the class docstring."""
        if start_method not in get_args(StartMethod):
            allowed = " or ".join(repr(m) for m in get_args(StartMethod))
            raise ValueError(f"start_method: expected {allowed}, got {start_method!r}")
        super().__init__(spec, num_tasks, **limits)
        self._context: SpawnContext | ForkServerContext = (
            multiprocessing.get_context("spawn")
            if start_method == "spawn"
            else multiprocessing.get_context("forkserver")
        )
        self._shms: list[SharedMemory] = []
        self._processes: dict[int, Any] = {}
        self._conns: dict[int, Any] = {}

    def worker_pids(self) -> list[int]:
        """Process ids of the running workers (tests kill them)."""
        return [self._processes[k].pid for k in sorted(self._processes)]

    def _start(self, k: int) -> None:
        if not self._shms:
            self._shms = [
                SharedMemory(create=True, size=max(8, _nbytes(self.layout(j))))
                for j in range(len(self.slices))
            ]
        lo, hi = self.slices[k]
        parent, child = self._context.Pipe()
        process = self._context.Process(
            target=worker_main,
            args=(self.spec, hi - lo, self._shms[k].name, self.layout(k), child),
            name=f"metarl-collector-{k}",
            daemon=True,
        )
        process.start()
        child.close()
        self._processes[k], self._conns[k] = process, parent

    def _submit(self, k: int, tasks: list[Task], policy: Any, seed: int) -> None:
        lo, hi = self.slices[k]
        # Plain pickle, by value: multiprocessing's own pickler would pass tensors as shared-memory handles
        # once anything has imported torch.multiprocessing, and those could be freed before the worker reads.
        message = pickle.dumps((tasks, policy.select(lo, hi), seed), protocol=pickle.HIGHEST_PROTOCOL)
        # a thread, so that a worker that is still importing (or hung) never blocks the main process
        threading.Thread(target=_send_quietly, args=(self._conns[k], message), daemon=True).start()

    def _wait(self, pending: Sequence[int], timeout: float) -> dict[int, tuple[str, Any]]:
        handles = {}
        for k in pending:
            handles[self._conns[k]] = k
            handles[self._processes[k].sentinel] = k
        ready = multiprocessing.connection.wait(list(handles), timeout)
        outcomes: dict[int, tuple[str, Any]] = {}
        for k in sorted({handles[h] for h in ready}):
            conn, process = self._conns[k], self._processes[k]
            try:
                message = conn.recv() if conn.poll() else None
            except (EOFError, OSError):
                message = None
            if message is None:
                process.join(1.0)
                code = process.exitcode
                how = f"was killed by signal {-code}" if code and code < 0 else f"exited with code {code}"
                outcomes[k] = ("dead", f"(pid {process.pid}) {how} during collection")
            elif message[0] == "done":
                views = _views(self._shms[k].buf, self.layout(k))
                outcomes[k] = ("done", ({name: v.copy() for name, v in views.items()}, message[1]))
            else:
                outcomes[k] = ("error", message[1])
        return outcomes

    def _kill(self, k: int) -> None:
        process = self._processes.pop(k)
        process.kill()
        process.join(5.0)
        self._conns.pop(k).close()

    def _shutdown(self) -> None:
        for conn in self._conns.values():
            _send_quietly(conn, b"")  # empty: stop
        for k, process in self._processes.items():
            process.join(5.0)
            if process.is_alive():
                process.kill()
                process.join(5.0)
            self._conns[k].close()
        self._processes, self._conns = {}, {}
        for shm in self._shms:
            shm.close()
            shm.unlink()
        self._shms = []
