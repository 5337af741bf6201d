"""`metarl baseline {pretrained,oracle}` train into their own run directories; `evaluate --compare` joins."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from metarl.app.evaluate import FINE_TUNE_STEP_GRID
from metarl.cli import main

REPO = Path(__file__).resolve().parents[2]
QUICK = str(REPO / "experiments" / "navigation2d-quick.yaml")
SHIPPED = REPO / "experiments" / "pretrained" / "navigation2d" / "policy.pt"
SMALL = ["--set", "logging.progress=false", "--set", "evaluation.tasks=4", "--set", "evaluation.episodes=4"]


@pytest.fixture(scope="module")
def baseline_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("baselines")
    runs = {"pretrained": root / "pretrained", "oracle": root / "oracle"}
    pretrained = ["baseline", "pretrained", QUICK, "--run-dir", str(runs["pretrained"]), *SMALL]
    assert main([*pretrained, "--set", "meta.iterations=2"]) == 0
    oracle = ["baseline", "oracle", QUICK, "--run-dir", str(runs["oracle"]), *SMALL]
    assert (
        main(
            [
                *oracle,
                "--set",
                "oracle.timesteps=1024",
                "--set",
                "oracle.n_steps=128",
                "--set",
                "oracle.num_envs=2",
            ]
        )
        == 0
    )
    return runs


def test_pretrained_run_trains_without_inner_steps_and_is_fine_tuned_from_the_grid(baseline_runs) -> None:
    run = baseline_runs["pretrained"]
    with (run / "metrics.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2
    assert "inner/return_step1" not in rows[0], "no inner step while training the pretrained baseline"
    summary = json.loads((run / "adaptation.json").read_text())
    assert list(summary["methods"]) == ["pretrained"]
    assert summary["pretrained_step_size"] in [f * 0.1 for f in FINE_TUNE_STEP_GRID]
    assert (run / "checkpoints" / "latest.pt").is_file()


def test_oracle_run_holds_the_ppo_model_its_progress_and_a_flat_curve(baseline_runs) -> None:
    run = baseline_runs["oracle"]
    for name in (
        "oracle_ppo.zip",
        "vecnormalize.pkl",
        "metrics.csv",
        "checkpoints/latest.pt",
        "adaptation.png",
    ):
        assert (run / name).is_file(), name
    with (run / "metrics.csv").open() as handle:
        assert [int(r["timesteps"]) for r in csv.DictReader(handle)] == [256, 512, 768, 1024]
    summary = json.loads((run / "adaptation.json").read_text())
    assert list(summary["methods"]) == ["oracle"]


def test_evaluate_compare_puts_maml_random_pretrained_and_oracle_in_one_table(
    baseline_runs, tmp_path
) -> None:
    out = tmp_path / "compare"
    args = ["evaluate", str(SHIPPED), "--tasks", "4", "--episodes", "4", "--steps", "2", "--out", str(out)]
    # the baselines were evaluated with the quick config's seed and 4 tasks: the same new tasks
    compare = [
        "--baselines",
        "random",
        "--compare",
        str(baseline_runs["pretrained"]),
        str(baseline_runs["oracle"]),
    ]
    assert main([*args, *compare]) == 0
    with (out / "adaptation.csv").open() as handle:
        methods = {row["method"] for row in csv.DictReader(handle)}
    assert methods == {"maml", "random", "pretrained", "oracle"}
    assert (out / "adaptation.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_train_refuses_an_oracle_config(tmp_path, capsys) -> None:
    assert main(["train", QUICK, "--set", "method=oracle", "--run-dir", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "metarl baseline oracle" in err[0]


def test_unknown_baseline_kind_is_rejected(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["baseline", "maml", QUICK])
    assert exit_info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_trpo_oracle_trains_on_the_loop_sees_its_task_resumes_and_beats_its_start(tmp_path) -> None:
    run = tmp_path / "oracle-trpo"
    sets = [*SMALL, "--set", "oracle.algorithm=trpo", "--set", "meta.batch_size=10", "--set", "seed=3"]
    assert (
        main(["baseline", "oracle", QUICK, "--run-dir", str(run), *sets, "--set", "meta.iterations=12"]) == 0
    )
    assert (
        main(
            ["train", "--resume", str(run), "--set", "meta.iterations=15", "--set", "logging.progress=false"]
        )
        == 0
    )
    with (run / "metrics.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["iteration"]) for r in rows] == list(range(1, 16))
    assert "inner/return_step1" not in rows[0], "the oracle takes no inner step"
    returns = [float(r["meta/return_after"]) for r in rows]
    # told the goal, TRPO improves the navigation return within a few iterations (about -60 -> -12 here)
    assert sum(returns[-3:]) / 3 > sum(returns[:3]) / 3 + 30
    summary = json.loads((run / "adaptation.json").read_text())
    assert list(summary["methods"]) == ["oracle"]
    import torch

    state = torch.load(run / "checkpoints" / "latest.pt", weights_only=False)
    assert state["policy"]["body.0.weight"].shape[1] == 2 + 2, "the policy's input: observation and goal"
