"""experiments/merge_adaptation.py: curves evaluated on the same tasks join; other tasks are refused."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from metarl.envs.tasks import VelocityTask
from metarl.evaluation import read_adaptation_csv, write_adaptation_files

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "experiments" / "merge_adaptation.py"


def load_script():
    spec = importlib.util.spec_from_file_location("merge_adaptation", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write(folder: Path, curves: dict, velocities: list[float], meta: dict) -> Path:
    write_adaptation_files(folder, curves, [VelocityTask(velocity=v) for v in velocities], meta)
    return folder


def test_joined_files_hold_every_method_with_its_values_and_the_first_inputs_meta(tmp_path: Path) -> None:
    maml = torch.tensor([[1.0, 2.0], [3.0, 5.0], [0.5, 0.25]])
    random = torch.tensor([[-1.0, 0.0], [-2.0, -1.0], [-3.0, -2.5]])
    oracle = torch.tensor([[7.0, 7.0], [9.0, 8.0], [6.0, 6.5]])
    velocities = [0.1, 1.7, 2.9]
    first = _write(tmp_path / "a", {"maml": maml, "random": random}, velocities, {"env_id": "x", "seed": 3})
    # the oracle's own file repeats a "maml"-named curve: the first input's must win
    meta = {"env_id": "y", "oracle_steps": 7}
    second = _write(tmp_path / "b", {"oracle": oracle, "maml": maml + 100}, velocities, meta)
    assert (
        load_script().main([str(first), str(second / "adaptation.csv"), "--out", str(tmp_path / "out")]) == 0
    )
    curves, tasks = read_adaptation_csv(tmp_path / "out" / "adaptation.csv")
    assert set(curves) == {"maml", "random", "oracle"}
    torch.testing.assert_close(curves["maml"], maml)
    torch.testing.assert_close(curves["oracle"], oracle)
    assert [t["velocity"] for t in tasks] == velocities
    summary = json.loads((tmp_path / "out" / "adaptation.json").read_text())
    assert summary["env_id"] == "x" and summary["seed"] == 3 and summary["num_tasks"] == 3
    assert summary["oracle_steps"] == 7  # what only the second input's JSON holds is kept
    assert summary["methods"]["oracle"][1]["mean"] == pytest.approx((7.0 + 8.0 + 6.5) / 3)
    assert (tmp_path / "out" / "adaptation.png").stat().st_size > 0


def test_inputs_on_other_tasks_are_refused_with_a_one_line_error(tmp_path: Path, capsys) -> None:
    curve = torch.zeros(2, 2)
    first = _write(tmp_path / "a", {"maml": curve}, [0.1, 0.2], {})
    second = _write(tmp_path / "b", {"oracle": curve}, [0.1, 0.3], {})
    assert load_script().main([str(first), str(second), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "other tasks" in err and "--seed" in err
    assert not (tmp_path / "out").exists()


def test_inputs_with_different_numbers_of_steps_are_refused(tmp_path: Path, capsys) -> None:
    first = _write(tmp_path / "a", {"maml": torch.zeros(2, 4)}, [0.1, 0.2], {})
    second = _write(tmp_path / "b", {"oracle": torch.zeros(2, 2)}, [0.1, 0.2], {})
    assert load_script().main([str(first), str(second), "--out", str(tmp_path / "out")]) == 2
    assert "inner steps" in capsys.readouterr().err


def test_success_rates_travel_with_the_curve_that_is_kept(tmp_path: Path) -> None:
    maml, oracle = torch.tensor([[1.0, 2.0], [3.0, 5.0]]), torch.tensor([[7.0, 7.0], [9.0, 8.0]])
    velocities = [0.5, 1.5]
    tasks = [VelocityTask(velocity=v) for v in velocities]
    first, second = tmp_path / "a", tmp_path / "b"
    write_adaptation_files(
        first, {"maml": maml}, tasks, {"env_id": "x"}, successes={"maml": torch.zeros(2, 2)}
    )
    write_adaptation_files(
        second,
        {"oracle": oracle, "maml": maml},
        tasks,
        {"env_id": "x"},
        successes={"oracle": torch.ones(2, 2), "maml": torch.ones(2, 2)},
    )
    assert load_script().main([str(first), str(second), "--out", str(tmp_path / "out")]) == 0
    rates, _ = read_adaptation_csv(tmp_path / "out", "success_rate")
    torch.testing.assert_close(rates["maml"], torch.zeros(2, 2))  # the first input's, as its returns
    torch.testing.assert_close(rates["oracle"], torch.ones(2, 2))
    summary = json.loads((tmp_path / "out" / "adaptation.json").read_text())
    assert set(summary["success"]) == {"maml", "oracle"}
