"""Checkpoint round trip (weights, RNG states), safe loading and the errors for bad files."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from torch import nn

from metarl.core.errors import CheckpointError
from metarl.training import checkpoints as checkpoint
from metarl.training.checkpoints import FORMAT_VERSION, load_checkpoint, resolve_target, save_checkpoint


class _NotAllowed:
    """A plain class: unpickling it needs arbitrary code, which ``weights_only`` refuses."""

    def __init__(self) -> None:
        self.value = 1


def _payload(seed: int = 0) -> dict:
    torch.manual_seed(seed)
    model = nn.Linear(3, 2)
    rng = np.random.default_rng(seed)
    rng.random(5)
    gen = torch.Generator().manual_seed(seed)
    torch.randn(4, generator=gen)
    return {
        "iteration": 7,
        "policy": model.state_dict(),
        "config": {
            "seed": seed,
            "meta": {"batch_size": 4, "gamma": 0.99},
            "policy": {"hidden_sizes": [8, 8]},
        },
        "numpy_rng": rng.bit_generator.state,
        "torch_rng": gen.get_state(),
        "best_return": -12.5,
    }


def test_round_trip_restores_weights_config_and_plain_values(tmp_path):
    payload = _payload()
    path = tmp_path / "ckpt.pt"
    save_checkpoint(path, payload)
    loaded = load_checkpoint(path)
    assert loaded["format_version"] == FORMAT_VERSION
    assert loaded["iteration"] == 7
    assert loaded["config"] == payload["config"]
    assert loaded["best_return"] == -12.5
    assert loaded["policy"].keys() == payload["policy"].keys()
    for name, tensor in payload["policy"].items():
        assert torch.equal(loaded["policy"][name], tensor)
    model = nn.Linear(3, 2)
    model.load_state_dict(loaded["policy"])


def test_round_trip_numpy_rng_state_reproduces_draws(tmp_path):
    rng = np.random.default_rng(123)
    rng.random(10)
    payload = {**_payload(), "numpy_rng": rng.bit_generator.state}
    save_checkpoint(tmp_path / "ckpt.pt", payload)
    expected = rng.random(6)
    restored = np.random.default_rng()
    restored.bit_generator.state = load_checkpoint(tmp_path / "ckpt.pt")["numpy_rng"]
    np.testing.assert_array_equal(restored.random(6), expected)


def test_round_trip_torch_generator_state_reproduces_draws(tmp_path):
    gen = torch.Generator().manual_seed(99)
    torch.randn(10, generator=gen)
    payload = {**_payload(), "torch_rng": gen.get_state()}
    save_checkpoint(tmp_path / "ckpt.pt", payload)
    expected = torch.randn(6, generator=gen)
    restored = torch.Generator()
    restored.set_state(load_checkpoint(tmp_path / "ckpt.pt")["torch_rng"])
    assert torch.equal(torch.randn(6, generator=restored), expected)


def test_load_uses_weights_only(tmp_path):
    path = tmp_path / "unsafe.pt"
    torch.save(
        {"format_version": 1, "iteration": 0, "policy": {}, "config": {}, "extra": _NotAllowed()}, path
    )
    with pytest.raises(CheckpointError, match=r"is not a readable checkpoint"):
        load_checkpoint(path)


def test_load_passes_weights_only_true(tmp_path, monkeypatch):
    save_checkpoint(tmp_path / "ckpt.pt", _payload())
    seen = {}
    real_load = torch.load

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(checkpoint.torch, "load", spy)
    load_checkpoint(tmp_path / "ckpt.pt")
    assert seen.get("weights_only") is True


def test_missing_file_raises(tmp_path):
    with pytest.raises(CheckpointError, match=r"nope\.pt' does not exist"):
        load_checkpoint(tmp_path / "nope.pt")


def test_directory_is_not_a_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match=r"does not exist"):
        load_checkpoint(tmp_path)


@pytest.mark.parametrize("content", [b"", b"garbage bytes, not a zip", b"PK\x03\x04 truncated zip"])
def test_corrupt_file_raises_one_line(tmp_path, content):
    path = tmp_path / "bad.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=r"is not a readable checkpoint") as info:
        load_checkpoint(path)
    assert "\n" not in str(info.value)


def test_truncated_checkpoint_raises(tmp_path):
    path = tmp_path / "ckpt.pt"
    save_checkpoint(path, _payload())
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(CheckpointError, match=r"is not a readable checkpoint"):
        load_checkpoint(path)


@pytest.mark.parametrize(
    "payload",
    [
        {"format_version": 1, "iteration": 0, "policy": {}},
        {"iteration": 0, "policy": {}, "config": {}},
        [1, 2, 3],
        torch.zeros(3),
    ],
    ids=["no-config", "no-version", "list", "tensor"],
)
def test_payload_lacking_keys_raises(tmp_path, payload):
    path = tmp_path / "ckpt.pt"
    torch.save(payload, path)
    with pytest.raises(
        CheckpointError, match=r"lacks the keys \['format_version', 'iteration', 'policy', 'config'\]"
    ):
        load_checkpoint(path)


def test_newer_format_version_raises(tmp_path):
    path = tmp_path / "ckpt.pt"
    save_checkpoint(path, {**_payload(), "format_version": FORMAT_VERSION + 1})
    with pytest.raises(
        CheckpointError,
        match=rf"has format_version {FORMAT_VERSION + 1}, this metarl reads up to {FORMAT_VERSION}",
    ):
        load_checkpoint(path)


def test_save_creates_parent_folders_and_leaves_no_temp_files(tmp_path):
    path = tmp_path / "run" / "checkpoints" / "latest.pt"
    save_checkpoint(path, _payload(0))
    save_checkpoint(path, {**_payload(1), "iteration": 8})
    assert sorted(p.name for p in path.parent.iterdir()) == ["latest.pt"]
    assert load_checkpoint(path)["iteration"] == 8


def test_failed_save_keeps_old_file_and_removes_temp_file(tmp_path, monkeypatch):
    path = tmp_path / "latest.pt"
    save_checkpoint(path, _payload())
    before = path.read_bytes()

    def failing_save(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint.torch, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, {**_payload(), "iteration": 99})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest.pt"]
    assert path.read_bytes() == before


def test_save_fsyncs_the_file_before_the_rename_and_then_the_folder(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(checkpoint.os, "fsync", lambda fd: (events.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(
        checkpoint.os, "replace", lambda a, b: (events.append("rename"), real_replace(a, b))[1]
    )
    save_checkpoint(tmp_path / "c.pt", {"iteration": 1, "policy": {}, "config": {}})
    assert events == ["fsync", "rename", "fsync"]


def test_a_metrics_row_cut_short_by_a_crash_is_dropped_on_resume(tmp_path):
    from metarl.training.sinks import CSVSink

    path = tmp_path / "metrics.csv"
    sink = CSVSink(path)
    for i in (1, 2, 3):
        sink.write(i, {"a": float(i), "b": 2.0 * i})
    path.write_text(path.read_text() + "1")  # iteration 12's row, killed after its first character
    CSVSink(path, resume_iteration=2)
    assert path.read_text().splitlines() == ["iteration,a,b", "1,1.0,2.0", "2,2.0,4.0"]
    path.write_text("iteration,a,b\n1,1.0,2.0\n2,2.0")  # the last row itself cut short
    CSVSink(path, resume_iteration=5)
    assert path.read_text().splitlines() == ["iteration,a,b", "1,1.0,2.0"]


def test_a_resumed_run_that_logs_new_metrics_widens_the_csv_and_keeps_its_rows(tmp_path):
    from metarl.training.sinks import CSVSink

    path = tmp_path / "metrics.csv"
    sink = CSVSink(path)
    for i in (1, 2):
        sink.write(i, {"a": float(i)})
    sink = CSVSink(path, resume_iteration=2)
    sink.write(3, {"a": 3.0, "c": 9.0})
    sink.write(4, {"c": 16.0, "a": 4.0})
    assert path.read_text().splitlines() == ["iteration,a,c", "1,1.0,", "2,2.0,", "3,3.0,9.0", "4,4.0,16.0"]


def test_resolve_target_reads_a_run_a_policy_folder_or_a_file(tmp_path):
    run = tmp_path / "run"
    save_checkpoint(run / "checkpoints" / "latest.pt", {"iteration": 1, "policy": {}, "config": {}})
    save_checkpoint(run / "checkpoints" / "best.pt", {"iteration": 1, "policy": {}, "config": {}})
    shipped = tmp_path / "pretrained" / "task"
    save_checkpoint(shipped / "policy.pt", {"iteration": 1, "policy": {}, "config": {}})
    assert resolve_target(run) == (run / "checkpoints" / "latest.pt", run)
    assert resolve_target(run / "checkpoints" / "best.pt") == (run / "checkpoints" / "best.pt", run)
    assert resolve_target(shipped) == (shipped / "policy.pt", shipped)
    assert resolve_target(shipped / "policy.pt") == (shipped / "policy.pt", shipped)


def test_resolve_target_names_what_a_folder_lacks(tmp_path):
    with pytest.raises(
        CheckpointError, match=r"no checkpoints/latest.pt and no .pt file; give a run directory"
    ):
        resolve_target(tmp_path)
    (tmp_path / "a.pt").write_bytes(b"")
    (tmp_path / "b.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"2 .pt files \(a.pt, b.pt\)"):
        resolve_target(tmp_path)
    with pytest.raises(CheckpointError, match="does not exist"):
        resolve_target(tmp_path / "missing")
