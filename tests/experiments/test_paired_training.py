"""experiments/paired_training.py: block differences, costs and the mean over seeds, on runs written here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import load_experiment  # noqa: E402


def load_script():
    return load_experiment("paired_training")


def write_run(run: Path, returns: list[float], seconds: float, evaluation: list[list[float]] | None) -> Path:
    run.mkdir(parents=True)
    rows = ["iteration,meta/return_after,meta/env_steps,time/meta_update,time/iteration"]
    rows += [f"{i + 1},{r},1000,{seconds / 2},{seconds}" for i, r in enumerate(returns)]
    (run / "metrics.csv").write_text("\n".join(rows) + "\n")
    if evaluation is not None:
        lines = ["method,task_index,task_goal,step,mean_return"]
        for t, curve in enumerate(evaluation):
            lines += [f"maml,{t},{t},{k},{v}" for k, v in enumerate(curve)]
        (run / "adaptation.csv").write_text("\n".join(lines) + "\n")
    return run


def test_blocks_costs_evaluation_and_the_mean_over_seeds(tmp_path: Path) -> None:
    # seed 0: A leads by 1 on iterations 1-4 and by 3 on 5-8; seed 1: by 3 and 5. A runs at half B's cost.
    base = [float(i) for i in range(8)]
    a0 = write_run(
        tmp_path / "a0", [x + (1 if i < 4 else 3) for i, x in enumerate(base)], 1.0, [[0, 5], [1, 8]]
    )
    b0 = write_run(tmp_path / "b0", base, 2.0, [[0, 4], [1, 6]])
    a1 = write_run(
        tmp_path / "a1", [x + (3 if i < 4 else 5) for i, x in enumerate(base)], 1.0, [[0, 7], [1, 9]]
    )
    b1 = write_run(tmp_path / "b1", base, 2.0, [[0, 4], [1, 6]])
    out = tmp_path / "c.json"
    script = load_script()
    figure = tmp_path / "c.png"
    args = ["--a", str(a0), str(a1), "--b", str(b0), str(b1), "--block", "4", "--json", str(out)]
    args += ["--figure", str(figure)]
    assert script.main(args) == 0
    summary = json.loads(out.read_text())
    first = summary["pairs"][0]
    assert [(d["first"], d["last"], d["mean"]) for d in first["blocks"]] == [(1, 4, 1.0), (5, 8, 3.0)]
    assert first["blocks"][0]["stderr"] == pytest.approx(0.0)
    assert first["cost_a"]["hours"] == pytest.approx(8 / 3600) and first["cost_b"]["hours"] == pytest.approx(
        16 / 3600
    )
    assert first["cost_a"]["median_meta_update_s"] == 0.5 and first["cost_a"]["env_steps"] == 8000
    # evaluation of seed 0 after one step: A - B = 1 and 2 on the two tasks
    assert first["evaluation"][1]["mean"] == pytest.approx(1.5) and first["evaluation"][1]["ahead"] == 2
    over = summary["blocks_over_seeds"]
    assert [d["mean"] for d in over] == [2.0, 4.0]
    assert over[0]["stderr"] == pytest.approx(1.0)  # seeds' block means 1 and 3: s.d. sqrt(2), s.e. 1
    assert summary["evaluation_over_seeds"][1]["mean"] == pytest.approx((1.5 + 3.0) / 2)
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    parsed = script.argparse.Namespace(a=[a0, a1], b=[b0, b1], labels=["A", "B"], column="meta/return_after",
                                       window=2, figure=tmp_path / "d.png")  # fmt: skip
    curves, blocks = script.plot(parsed, summary["pairs"], summary).axes
    assert len(curves.lines) == 4  # every run drawn
    assert [round(b.get_height(), 6) for b in blocks.patches] == [2.0, 4.0]  # the blocks over seeds


def test_moving_average_takes_the_last_window_values_and_fewer_at_the_start() -> None:
    assert load_script().moving_average([1.0, 2.0, 3.0, 4.0, 10.0], 3) == pytest.approx(
        [1, 1.5, 2, 3, 17 / 3]
    )


def test_unequal_numbers_of_runs_are_refused(tmp_path: Path) -> None:
    a = write_run(tmp_path / "a", [1.0, 2.0], 1.0, None)
    with pytest.raises(SystemExit) as info:
        load_script().main(["--a", str(a), str(a), "--b", str(a)])
    assert info.value.code == 2
