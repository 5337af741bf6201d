"""keep_freed_memory: set on glibc, a no-op elsewhere, and freed big blocks are then reused."""

from __future__ import annotations

import ctypes
import subprocess
import sys

import pytest

from metarl.training import allocator


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_a_freed_big_block_is_reused_without_page_faults_after_keep_freed_memory() -> None:
    """Writing a 64 MiB block allocated right after freeing one of the same size faults no pages in.

    Without the setting glibc unmaps the freed block and the kernel faults the new one in page by page
    (16,384 pages of 4 KiB; 32 huge pages of 2 MiB where those are on). Each way runs in a fresh
    interpreter: the setting is process-wide.
    """
    probe = (
        "import ctypes, resource, sys\n"
        "from metarl.training.allocator import keep_freed_memory\n"
        "if sys.argv[1] == 'keep': assert keep_freed_memory()\n"
        "libc = ctypes.CDLL('libc.so.6')\n"
        "libc.malloc.restype = ctypes.c_void_p; libc.malloc.argtypes = [ctypes.c_size_t]\n"
        "libc.free.argtypes = [ctypes.c_void_p]\n"
        "size = 64 << 20\n"
        "a = libc.malloc(size); ctypes.memset(a, 1, size); libc.free(a)\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
        "b = libc.malloc(size); ctypes.memset(b, 1, size)\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)\n"
    )
    faults = {
        mode: int(
            subprocess.run(
                [sys.executable, "-c", probe, mode], capture_output=True, text=True, check=True
            ).stdout
        )
        for mode in ("keep", "default")
    }
    assert 10 * faults["keep"] < faults["default"], faults  # (transparent huge pages fault fewer, 2 MiB each)


def test_keep_freed_memory_is_a_no_op_without_glibc(monkeypatch) -> None:
    def no_libc(*args, **kwargs):
        raise OSError("no libc here")

    monkeypatch.setattr(ctypes, "CDLL", no_libc)
    assert allocator.keep_freed_memory() is False
    monkeypatch.setattr(allocator.sys, "platform", "darwin")
    assert allocator.keep_freed_memory() is False
