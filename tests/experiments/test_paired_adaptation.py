"""experiments/paired_adaptation.py: paired figures of adaptation files, checked against hand sums."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from metarl.envs.tasks import DirectionTask
from metarl.evaluation import write_adaptation_files

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "experiments" / "paired_adaptation.py"
DIRECTIONS = [1.0, -1.0, -1.0, 1.0]


def load_script():
    spec = importlib.util.spec_from_file_location("paired_adaptation", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write(folder: Path, curves: dict, directions: list[float] = DIRECTIONS) -> Path:
    write_adaptation_files(folder, curves, [DirectionTask(direction=d) for d in directions], {"env_id": "x"})
    return folder


MAML = torch.tensor([[0.0, 10.0, 12.0], [2.0, 6.0, 5.0], [-2.0, 8.0, 9.0], [4.0, 20.0, 18.0]])
PRETRAINED = torch.tensor([[0.0, 1.0, 2.0], [1.0, 2.0, 3.0], [0.0, 9.0, 0.0], [3.0, 4.0, 5.0]])


def test_step_gains_method_differences_and_groups_match_hand_sums(tmp_path: Path, capsys) -> None:
    new = _write(tmp_path / "new", {"maml": MAML, "pretrained": PRETRAINED})
    old = _write(tmp_path / "old", {"maml": MAML - torch.tensor([[1.0], [1.0], [1.0], [-1.0]])})
    out_json = tmp_path / "figures.json"
    code = load_script().main(
        [str(new), str(old / "adaptation.csv"), "--by", "direction", "--json", str(out_json)]
    )
    assert code == 0
    figures = json.loads(out_json.read_text())
    one_minus_zero = figures["step_minus_step"][0]
    assert (one_minus_zero["step"], one_minus_zero["minus_step"]) == (1, 0)
    assert one_minus_zero["mean"] == pytest.approx((10 + 4 + 10 + 16) / 4)  # 10.0
    assert one_minus_zero["ahead"] == 4
    two_minus_one = [d for d in figures["step_minus_step"] if (d["step"], d["minus_step"]) == (2, 1)][0]
    assert two_minus_one["mean"] == pytest.approx((2 - 1 + 1 - 2) / 4) and two_minus_one["ahead"] == 2
    step1 = figures["minus"]["pretrained"][1]
    assert step1["mean"] == pytest.approx((9 + 4 - 1 + 16) / 4) and step1["ahead"] == 3
    torch.testing.assert_close(
        torch.tensor([d["mean"] for d in figures["minus_second"]["steps"]], dtype=torch.float64),
        torch.full((3,), 0.5, dtype=torch.float64),
    )
    groups = figures["by"]["direction"]
    assert groups["1.0"]["tasks"] == 2 and groups["1.0"]["mean"][1] == pytest.approx(15.0)
    assert groups["-1.0"]["mean"][0] == pytest.approx(0.0)
    printed = capsys.readouterr().out
    assert "step 1 minus step 0: +10.0" in printed and "direction = -1.0 (2 tasks)" in printed


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--method", "metasgd"], "--method: 'metasgd' is not in"),
        (["--by", "goal"], "--by: 'goal' is not a task field; allowed: ['direction']"),
    ],
)
def test_bad_arguments_get_a_one_line_error(tmp_path: Path, capsys, extra, message) -> None:
    new = _write(tmp_path / "new", {"maml": MAML})
    assert load_script().main([str(new), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err


def test_a_second_input_on_other_tasks_or_a_missing_file_is_refused(tmp_path: Path, capsys) -> None:
    new = _write(tmp_path / "new", {"maml": MAML})
    other = _write(tmp_path / "other", {"maml": MAML}, directions=[1.0, 1.0, -1.0, 1.0])
    assert load_script().main([str(new), str(other)]) == 2
    assert "was evaluated on other tasks" in capsys.readouterr().err
    assert load_script().main([str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "does not exist" in err


def test_success_rates_are_paired_with_value_success_rate(tmp_path: Path, capsys) -> None:
    success = torch.tensor([[0.0, 0.5, 1.0], [0.0, 0.0, 0.5], [0.5, 1.0, 1.0], [0.0, 0.5, 0.5]])
    folder = tmp_path / "run"
    write_adaptation_files(
        folder,
        {"maml": MAML, "pretrained": PRETRAINED},
        [DirectionTask(direction=d) for d in DIRECTIONS],
        {"env_id": "x"},
        successes={"maml": success},
    )
    figures = load_script().compare([folder], "maml", value="success_rate")
    one_minus_zero = figures["step_minus_step"][0]
    assert one_minus_zero["mean"] == pytest.approx(0.375) and one_minus_zero["ahead"] == 3  # 0.5, 0, 0.5, 0.5
    assert figures["minus"] == {}  # pretrained has no success rates
    assert load_script().main([str(folder), "--method", "pretrained", "--value", "success_rate"]) == 2
    assert "'pretrained' is not in" in capsys.readouterr().err
    plain = _write(tmp_path / "plain", {"maml": MAML})
    assert load_script().main([str(plain), "--value", "success_rate"]) == 2
    assert "has no 'success_rate' values" in capsys.readouterr().err
