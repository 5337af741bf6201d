"""A full disk or a read-only folder under a real ``metarl train`` process, on a tmpfs of the test's own.

A checkpoint, metrics row, event file or figure that cannot be written stops the run with one line naming the
file and the cause (exit 1); the previous checkpoint stays whole, no temp file is left, and once the folder
can be written again ``--resume`` ends with the metrics and parameters of a run that never failed.
"""

from __future__ import annotations

import errno
import re
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from conftest import metric_rows, rows_written, start_metarl, tiny_settings, train_command  # noqa: E402

from metarl.core.errors import WriteError
from metarl.training.checkpoints import atomic_write, load_checkpoint
from metarl.training.sinks import CSVSink
from metarl.viz.plots import plot_adaptation

REPO = Path(__file__).resolve().parents[2]
CONFIG = str(REPO / "experiments" / "navigation2d-quick.yaml")
SETTINGS = tiny_settings("policy.hidden_sizes=[16]", "logging.checkpoint_every=2", "logging.tensorboard=true")
CAUSES = {"full": "No space left on device", "read-only": "Read-only file system"}


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MiB tmpfs mounted for the test (root only: skipped with the reason elsewhere)."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    try:
        result = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount_point)],
            capture_output=True,
            text=True,
        )
    except FileNotFoundError:
        pytest.skip("no mount command: the full-disk tests mount a small tmpfs")
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {result.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def fill(disk: Path) -> Callable[[], None]:
    """Fill ``disk`` to the last byte; returns what frees it again."""
    filler = disk / "filler"
    with filler.open("wb", buffering=0) as handle:
        for size in (1 << 16, 1 << 12, 1):  # down to the last partial page
            try:
                while True:
                    handle.write(b"\0" * size)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
    return lambda: filler.unlink()


def make_read_only(folder: Path) -> Callable[[], None]:
    """Remount ``folder`` read-only (the whole tmpfs, or a bind mount of a folder in it: a file open for
    writing keeps a whole file system from going read-only); returns what makes it writable again."""
    if folder.is_mount():
        subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)
        return lambda: subprocess.run(["mount", "-o", "remount,rw", str(folder)], check=True)
    subprocess.run(["mount", "--bind", str(folder), str(folder)], check=True)
    subprocess.run(["mount", "-o", "remount,bind,ro", str(folder)], check=True)
    return lambda: subprocess.run(["umount", str(folder)], check=True)


#: each fault, applied to the tmpfs under a running ``metarl train``
FAULTS = {"full": fill, "read-only": lambda disk: make_read_only(disk / "run" / "checkpoints")}


def train_args(run: Path, *changes: str) -> list[str]:
    return train_command(CONFIG, run, tiny_settings(*SETTINGS, *changes))


@pytest.mark.slow  # over 20 s here; CI runs the slow tests after the default run
@pytest.mark.parametrize("fault", ["full", "read-only"])
def test_a_failed_write_stops_the_run_with_one_line_keeps_its_checkpoint_and_resume_gives_the_unfailed_run(
    disk: Path, tmp_path: Path, fault: str
) -> None:
    run = disk / "run"
    process = start_metarl(train_args(run, "meta.iterations=100000"), tmp_path)
    rows = 0
    while rows < 3:
        assert process.poll() is None, process.stderr.read()
        rows = rows_written(run)
    repair = FAULTS[fault](disk)
    assert process.wait(timeout=120) == 1
    stderr = process.stderr.read()
    assert "Traceback" not in stderr and "Exception in thread" not in stderr, stderr
    lines = [line for line in stderr.strip().splitlines() if not line.startswith("run directory:")]
    assert len(lines) == 1, stderr
    latest = run / "checkpoints" / "latest.pt"
    kept = load_checkpoint(latest)["iteration"]  # whole and loadable
    assert kept >= 2 and kept % 2 == 0
    pattern = (
        rf"metarl: stopped: cannot write {re.escape(str(run))}/\S+: {CAUSES[fault]}; "
        rf"{re.escape(str(latest))} holds iteration {kept}; once the folder can be written again, "
        rf"resume with: metarl train --resume {re.escape(str(run))}"
    )
    assert re.fullmatch(pattern, lines[0]), lines[0]
    assert not [p for p in run.rglob("*.tmp")], "a temp file was left"
    assert rows_written(run) >= kept

    repair()
    total = kept + 2
    resumed = start_metarl(["train", "--resume", str(run), "--set", f"meta.iterations={total}"], tmp_path)
    assert resumed.wait(timeout=240) == 0, resumed.stderr.read()
    reference = tmp_path / "reference"
    unfailed = start_metarl(train_args(reference, f"meta.iterations={total}"), tmp_path)
    assert unfailed.wait(timeout=240) == 0, unfailed.stderr.read()
    assert metric_rows(run) == metric_rows(reference)
    ours = torch.load(latest, weights_only=True)["policy"]
    theirs = torch.load(reference / "checkpoints" / "latest.pt", weights_only=True)["policy"]
    assert all(torch.equal(ours[k], v) for k, v in theirs.items())


def test_atomic_write_on_a_full_disk_names_the_file_and_keeps_the_old_one_whole(disk: Path) -> None:
    target = disk / "checkpoints" / "latest.pt"
    atomic_write(target, b"old")
    free = fill(disk)
    with pytest.raises(
        WriteError, match=rf"^cannot write {re.escape(str(target))}: No space left on device$"
    ):
        atomic_write(target, b"new" * 100_000)
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in target.parent.iterdir()) == ["latest.pt"]
    free()
    atomic_write(target, b"new")
    assert target.read_bytes() == b"new"


def test_a_metrics_row_or_figure_in_a_read_only_folder_names_the_file(disk: Path) -> None:
    sink = CSVSink(disk / "metrics.csv")
    sink.write(1, {"meta/return_after": 1.0})
    make_read_only(disk)
    with pytest.raises(
        WriteError, match=rf"^cannot write {re.escape(str(disk))}/metrics.csv: Read-only file"
    ):
        sink.write(2, {"meta/return_after": 2.0})
    summary = {
        "methods": {"maml": [{"step": 0, "mean": 0.0, "ci95_low": -1.0, "ci95_high": 1.0}]},
        "num_tasks": 1,
    }
    with pytest.raises(
        WriteError, match=rf"^cannot write {re.escape(str(disk))}/adaptation.png: Read-only file"
    ):
        plot_adaptation(summary, disk / "adaptation.png", title="t", ylabel="return")
    assert (disk / "metrics.csv").read_text().splitlines()[1].startswith("1,")
