"""Issue 6, acceptance 1: the quick HalfCheetahVel config trains to identical metrics on every backend."""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

import pytest
import torch
from conftest import tiny_settings  # noqa: E402

from metarl.cli import main

REPO = Path(__file__).resolve().parents[2]
TINY = tiny_settings("meta.iterations=2", "collector.workers=2")
BACKENDS = [
    "local",
    "subprocess",
    pytest.param(
        "ray",
        marks=pytest.mark.skipif(
            importlib.util.find_spec("ray") is None, reason="ray is not installed (pip install 'metarl[ray]')"
        ),
    ),
]


def rows(run: Path) -> list[dict[str, str]]:
    with (run / "metrics.csv").open() as handle:
        return [{k: v for k, v in r.items() if not k.startswith("time/")} for r in csv.DictReader(handle)]


@pytest.fixture(scope="module")
def local_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train("local", tmp_path_factory.mktemp("local") / "run")


def train(backend: str, run: Path) -> Path:
    args = ["train", str(REPO / "experiments" / "half_cheetah_vel-quick.yaml"), "--run-dir", str(run)]
    for item in [*TINY, f"collector.backend={backend}"]:
        args += ["--set", item]
    assert main(args) == 0
    return run


@pytest.mark.slow  # over 20 s here; CI runs the slow tests after the default run
@pytest.mark.mujoco
@pytest.mark.parametrize("backend", BACKENDS)
def test_half_cheetah_vel_quick_trains_to_identical_metrics(
    backend: str, local_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # MuJoCo writes MUJOCO_LOG.TXT into the working directory
    run = local_run if backend == "local" else train(backend, tmp_path / "run")
    assert rows(run) == rows(local_run)
    assert (run / "adaptation.csv").read_text() == (local_run / "adaptation.csv").read_text()
    ours = torch.load(run / "checkpoints" / "latest.pt", weights_only=True)["policy"]
    theirs = torch.load(local_run / "checkpoints" / "latest.pt", weights_only=True)["policy"]
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs)
