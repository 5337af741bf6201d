"""`metarl train/evaluate` on every few-shot config, end to end on generated data; one-line errors."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from metarl.cli import main
from metarl.training.checkpoints import load_checkpoint

REPO = Path(__file__).resolve().parents[2]
TINY = ["meta.iterations=2", "evaluation.tasks=3", "logging.progress=false", "meta.batch_size=2"]
IMAGE_TINY = [*TINY, "model.filters=4", "evaluation.steps=2"]


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def train(config: str, run_dir: Path, *overrides: str) -> int:
    args = ["train", str(REPO / "experiments" / config), "--run-dir", str(run_dir)]
    for item in overrides:
        args += ["--set", item]
    return main(args)


def summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "adaptation.json").read_text())


@pytest.mark.parametrize(
    "config", ["sinusoid.yaml", "sinusoid-alpha0.001.yaml", "sinusoid-5shot.yaml", "sinusoid-quick.yaml"]
)
def test_sinusoid_config_end_to_end(config: str, tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert train(config, run, *TINY, "evaluation.steps=3") == 0
    names = {p.name for p in run.iterdir()}
    assert {"config.yaml", "metrics.csv", "learning_curve.png", "adaptation.csv", "adaptation.png"} <= names
    result = summary(run)
    assert result["metric"] == "mse" and result["num_tasks"] == 3 and result["shots"] == 5
    assert [r["step"] for r in result["methods"]["maml"]] == [0, 1, 2, 3]
    with (run / "adaptation.csv").open() as handle:
        header = next(csv.reader(handle))
    assert header == ["method", "task_index", "task_amplitude", "task_phase", "step", "mse"]
    with (run / "metrics.csv").open() as handle:
        assert {"meta/loss_before", "meta/loss_after"} <= set(next(csv.reader(handle)))


@pytest.mark.parametrize(
    "config",
    [
        "omniglot-5w1s.yaml",
        "omniglot-5w5s.yaml",
        "omniglot-20w1s.yaml",
        "omniglot-20w5s.yaml",
        "omniglot-5w1s-quick.yaml",
    ],
)
def test_omniglot_configs_end_to_end(config: str, tmp_path: Path, omniglot_root: Path) -> None:
    run = tmp_path / "run"
    extra = ["inner.steps=1"] if "20w" in config else []
    overrides = [*IMAGE_TINY, *extra, f"data.root={omniglot_root}", "data.train_classes=8"]
    assert train(config, run, *overrides) == 0
    result = summary(run)
    assert result["metric"] == "accuracy" and result["ways"] == (20 if "20w" in config else 5)
    assert all(0 <= r["mean"] <= 1 for r in result["methods"]["maml"])


@pytest.mark.parametrize("config", ["miniimagenet-5w1s.yaml", "miniimagenet-5w5s-quick.yaml"])
def test_miniimagenet_configs_end_to_end(config: str, tmp_path: Path, miniimagenet_root: Path) -> None:
    run = tmp_path / "run"
    assert train(config, run, *IMAGE_TINY, "inner.steps=1", f"data.root={miniimagenet_root}") == 0
    assert summary(run)["dataset"] == "miniimagenet"


@pytest.mark.parametrize(
    ("setting", "method"),
    [
        ("inner.first_order=true", "fomaml"),
        ("inner.learn_step_size=true", "metasgd"),
        ("inner.adapt=head", "anil"),
    ],
)
def test_variants_train_and_evaluate(setting: str, method: str, tmp_path: Path, omniglot_root: Path) -> None:
    run = tmp_path / "run"
    assert (
        train(
            "omniglot-5w1s-quick.yaml",
            run,
            *IMAGE_TINY,
            setting,
            f"data.root={omniglot_root}",
            "data.train_classes=8",
        )
        == 0
    )
    assert list(summary(run)["methods"]) == [method]
    out = tmp_path / "eval"
    assert main(["evaluate", str(run), "--tasks", "4", "--steps", "1", "--out", str(out)]) == 0
    result = summary(out)
    assert result["num_tasks"] == 4 and [r["step"] for r in result["methods"][method]] == [0, 1]


def test_evaluate_repeats_the_training_evaluation(tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    assert train("sinusoid-quick.yaml", run, *TINY) == 0
    before = (run / "adaptation.csv").read_text()
    assert main(["evaluate", str(run)]) == 0
    assert (run / "adaptation.csv").read_text() == before
    assert "mse (maml, 3 test tasks, mean [95% interval] after k steps) 0:" in capsys.readouterr().out
    out = tmp_path / "ten"
    assert main(["evaluate", str(run), "--shots", "10", "--query-shots", "7", "--out", str(out)]) == 0
    assert summary(out)["shots"] == 10 and summary(out)["query_shots"] == 7


def test_resume_equals_an_unstopped_run(tmp_path: Path) -> None:
    common = [
        "logging.progress=false",
        "logging.checkpoint_every=2",
        "evaluation.tasks=2",
        "meta.batch_size=3",
    ]
    assert train("sinusoid-quick.yaml", tmp_path / "full", *common, "meta.iterations=4") == 0
    assert train("sinusoid-quick.yaml", tmp_path / "part", *common, "meta.iterations=2") == 0
    assert main(["train", "--resume", str(tmp_path / "part"), "--set", "meta.iterations=4"]) == 0

    def rows(name: str) -> list[dict]:
        with (tmp_path / name / "metrics.csv").open() as handle:
            return [{k: v for k, v in r.items() if not k.startswith("time/")} for r in csv.DictReader(handle)]

    assert rows("part") == rows("full")
    final = [load_checkpoint(tmp_path / r / "checkpoints" / "latest.pt")["policy"] for r in ("full", "part")]
    for key in final[0]:
        torch.testing.assert_close(final[0][key], final[1][key], rtol=0, atol=0)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["data.root=/does/not/exist"], "data.root: '/does/not/exist' does not exist"),
        (["data.root=''"], "data.root: omniglot needs the folder of its images"),
        (["data.way=5"], "data.way: unknown key (did you mean 'ways'?)"),
        (["data.ways=40", "data.train_classes=8"], "train split has 32 classes, a 40-way task needs 40"),
        (["data.ways=30", "data.train_classes=10"], "test split has 16 classes, a 30-way task needs 30"),
        (
            ["data.shots=10", "data.train_classes=8"],
            "has 10 images; 5-way 10-shot with 1 query images needs 11",
        ),
        (["evaluation.query_shots=10", "data.train_classes=8"], "(test) has 10 images; 5-way 1-shot with 10"),
        (["data.train_classes=100"], "more than data.train_classes=100 characters"),
    ],
)
def test_bad_data_exits_2_with_one_line(
    overrides, message, tmp_path: Path, omniglot_root: Path, capsys
) -> None:
    root = [] if any(o.startswith("data.root") for o in overrides) else [f"data.root={omniglot_root}"]
    assert train("omniglot-5w1s.yaml", tmp_path / "run", *TINY, *root, *overrides) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("metarl: error: ") and message in err[0]
    assert not (tmp_path / "run").exists()


def test_wrong_layout_exits_2_naming_what_was_found(tmp_path: Path, capsys) -> None:
    (tmp_path / "data" / "train").mkdir(parents=True)
    assert train("omniglot-5w1s.yaml", tmp_path / "run", f"data.root={tmp_path / 'data'}") == 2
    err = capsys.readouterr().err
    assert "expected images_background/ and images_evaluation/" in err and "found: train/" in err


def test_render_refuses_a_fewshot_run(tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    assert train("sinusoid-quick.yaml", run, *TINY) == 0
    capsys.readouterr()
    assert main(["render", str(run)]) == 2
    assert "is a few-shot (sinusoid) run" in capsys.readouterr().err
