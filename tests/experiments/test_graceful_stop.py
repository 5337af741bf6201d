"""Signals sent to a real ``metarl train`` process: graceful stop, stop at once, and one process per run.

SIGINT (Ctrl-C) or SIGTERM (a scheduler's preemption, ``timeout``) lets the iteration in progress finish,
writes ``latest.pt`` for it, prints one line naming the iteration, the run directory and the resume command,
and exits with 130 or 143; ``--resume`` then ends with the metrics and parameters of a run never stopped. A
second Ctrl-C stops at once and leaves the last checkpoint loadable. No worker process outlives the run. A
second ``metarl train`` on a run directory in use stops with one line naming the process, writing nothing.
"""

from __future__ import annotations

import hashlib
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from conftest import metric_rows, rows_written, start_metarl, tiny_settings  # noqa: E402

from metarl.training.run_lock import lock_holder

REPO = Path(__file__).resolve().parents[2]
CONFIG = str(REPO / "experiments" / "navigation2d-quick.yaml")
#: 8 iterations with no periodic checkpoint before the stop: the one a stopped run leaves is the stop's own
SETTINGS = tiny_settings("meta.iterations=8", "policy.hidden_sizes=[16]", "logging.checkpoint_every=100")


def train_args(run: Path, *changes: str) -> list[str]:
    args = ["train", CONFIG, "--run-dir", str(run)]
    for item in tiny_settings(*SETTINGS, *changes):
        args += ["--set", item]
    return args


def resume_args(run: Path, *changes: str) -> list[str]:
    return ["train", "--resume", str(run), *[a for c in changes for a in ("--set", c)]]


def start(args: list[str], cwd: Path) -> subprocess.Popen:
    """A session of its own: its process group is its id, so its workers can be found after it exits."""
    return start_metarl(args, cwd, new_session=True)


def wait_for_rows(process: subprocess.Popen, run: Path, rows: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while rows_written(run) < rows:
        assert process.poll() is None, process.stderr.read()
        assert time.monotonic() < deadline, f"no {rows} metrics rows within {timeout} s"
        time.sleep(0.01)


def group_members(group: int) -> list[int]:
    """Processes still alive in process group ``group`` (zombies excluded)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == group and fields[0] != "Z":
            members.append(int(entry.name))
    return members


def parameters(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["policy"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same run, never stopped."""
    run = tmp_path_factory.mktemp("reference") / "run"
    process = start(train_args(run), run.parent)
    assert process.wait(timeout=240) == 0, process.stderr.read()
    return run


@pytest.mark.slow  # over 20 s here; CI runs the slow tests after the default run
@pytest.mark.parametrize(
    ("signum", "code", "backend"),
    [(signal.SIGINT, 130, "local"), (signal.SIGTERM, 143, "local"), (signal.SIGTERM, 143, "subprocess")],
    ids=["sigint", "sigterm", "sigterm-subprocess-workers"],
)
def test_a_signal_finishes_the_iteration_checkpoints_it_and_resume_gives_the_unstopped_run(
    tmp_path: Path, reference: Path, signum: int, code: int, backend: str
) -> None:
    run = tmp_path / "run"
    settings = [f"collector.backend={backend}", "collector.workers=2"] if backend != "local" else []
    process = start(train_args(run, *settings), tmp_path)
    wait_for_rows(process, run, 3)
    process.send_signal(signum)
    assert process.wait(timeout=120) == code
    stderr = process.stderr.read()
    last = stderr.strip().splitlines()[-1]
    stopped_at = rows_written(run)
    assert 3 <= stopped_at < 8, stderr
    assert last == (
        f"metarl: stopped by {signal.Signals(signum).name} after iteration {stopped_at} of 8; its checkpoint "
        f"is {run}/checkpoints/latest.pt; resume with: metarl train --resume {run}"
    )
    assert "Traceback" not in stderr
    assert torch.load(run / "checkpoints" / "latest.pt", weights_only=True)["iteration"] == stopped_at
    assert group_members(process.pid) == [], "a worker outlived the run"

    resumed = start(resume_args(run), tmp_path)
    assert resumed.wait(timeout=240) == 0, resumed.stderr.read()
    assert metric_rows(run) == metric_rows(reference)
    for name in ("latest.pt", "best.pt"):
        ours, theirs = parameters(run / "checkpoints" / name), parameters(reference / "checkpoints" / name)
        assert all(torch.equal(ours[k], v) for k, v in theirs.items()), name


def test_a_second_ctrl_c_stops_at_once_and_the_last_checkpoint_stays_loadable(tmp_path: Path) -> None:
    run = tmp_path / "run"
    # iterations slow enough that the second signal lands inside one; a checkpoint every iteration
    process = start(
        train_args(run, "meta.iterations=200", "meta.episodes_per_task=40", "logging.checkpoint_every=1"),
        tmp_path,
    )
    wait_for_rows(process, run, 2)
    # latest.pt is written after the loop's stop check: once it holds iteration 2, iteration 3 is running, so
    # both signals land inside it (right after the row, the first could meet iteration 2's check and stop)
    deadline = time.monotonic() + 60
    while torch.load(run / "checkpoints" / "latest.pt", weights_only=True)["iteration"] < 2:
        assert time.monotonic() < deadline and process.poll() is None
        time.sleep(0.01)
    process.send_signal(signal.SIGINT)
    time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=60) == 130
    stderr = process.stderr.read()
    assert "Traceback" not in stderr
    assert (
        stderr.strip()
        .splitlines()[-1]
        .startswith("metarl: interrupted by SIGINT; checkpoints written so far")
    )
    state = torch.load(run / "checkpoints" / "latest.pt", weights_only=True)
    assert 2 <= state["iteration"] <= rows_written(run) < 200


def snapshot(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


@pytest.mark.slow  # over 20 s here; CI runs the slow tests after the default run
def test_a_second_process_on_a_run_directory_in_use_stops_at_once_naming_it(tmp_path: Path) -> None:
    run = tmp_path / "run"
    first = start(train_args(run, "meta.iterations=200", "logging.checkpoint_every=1"), tmp_path)
    try:
        wait_for_rows(first, run, 2)
        first.send_signal(signal.SIGSTOP)  # hold it still, so that nothing changes under the comparison
        before = snapshot(run)
        for args in (resume_args(run), train_args(run)):
            second = start(args, tmp_path)
            assert second.wait(timeout=60) == 2
            lines = second.stderr.read().strip().splitlines()
            assert len(lines) == 1, lines
            assert f"is in use by process {first.pid}" in lines[0] and f"kill -INT {first.pid}" in lines[0]
        assert snapshot(run) == before
    finally:
        first.send_signal(signal.SIGCONT)
        first.send_signal(signal.SIGINT)
        assert first.wait(timeout=120) == 130

    resumed = start(resume_args(run), tmp_path)  # the lock went with the first process
    deadline = time.monotonic() + 60
    while lock_holder(run) != resumed.pid:
        assert resumed.poll() is None and time.monotonic() < deadline, resumed.stderr.read()
        time.sleep(0.01)
    resumed.send_signal(signal.SIGKILL)
    resumed.wait()
    assert lock_holder(run) is None  # a killed holder leaves no stuck lock
    again = start(resume_args(run, "meta.iterations=1"), tmp_path)
    assert again.wait(timeout=120) == 0, again.stderr.read()
