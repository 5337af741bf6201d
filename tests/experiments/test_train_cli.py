"""`metarl train` end to end in-process: outputs, exact reseeding, resume, one-line errors for bad input."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from conftest import tiny_settings  # noqa: E402

from metarl.cli import main
from metarl.config import load_config
from metarl.training.checkpoints import load_checkpoint

REPO = Path(__file__).resolve().parents[2]
TINY = tiny_settings("meta.batch_size=3")


def train(run_dir: Path, *extra: str, config: str = "experiments/navigation2d-quick.yaml") -> int:
    args = ["train", str(REPO / config), "--run-dir", str(run_dir)]
    for item in [*TINY, *extra]:
        args += ["--set", item]
    return main(args)


def rows(run_dir: Path) -> list[dict[str, str]]:
    with (run_dir / "metrics.csv").open() as handle:
        return [{k: v for k, v in r.items() if not k.startswith("time/")} for r in csv.DictReader(handle)]


def test_two_iterations_write_every_output(tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert train(run, "meta.iterations=2", "logging.tensorboard=true") == 0
    names = {p.name for p in run.iterdir()}
    assert {"config.yaml", "metrics.csv", "adaptation.csv", "adaptation.json", "adaptation.png"} <= names
    assert {"learning_curve.png", "tensorboard", "checkpoints"} <= names
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    table = rows(run)
    assert [r["iteration"] for r in table] == ["1", "2"]
    assert {"meta/return_before", "meta/return_after", "trpo/kl", "trpo/ls_steps"} <= set(table[0])
    state = torch.load(run / "checkpoints" / "latest.pt", weights_only=True)
    assert state["iteration"] == 2 and state["config"]["meta"]["batch_size"] == 3
    assert (run / "adaptation.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads((run / "adaptation.json").read_text())
    assert [r["step"] for r in summary["methods"]["maml"]] == [0, 1]
    assert yaml.safe_load((run / "config.yaml").read_text())["meta"]["iterations"] == 2


def test_same_seed_repeats_exactly_and_another_seed_differs(tmp_path: Path) -> None:
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        assert train(tmp_path / name, "meta.iterations=2", f"seed={seed}") == 0
    assert rows(tmp_path / "a") == rows(tmp_path / "b")
    assert rows(tmp_path / "a") != rows(tmp_path / "c")
    adaptation = [(tmp_path / n / "adaptation.csv").read_text() for n in "ab"]
    assert adaptation[0] == adaptation[1]


def test_resume_equals_an_unstopped_run(tmp_path: Path) -> None:
    assert train(tmp_path / "full", "meta.iterations=4", "logging.checkpoint_every=2") == 0
    assert train(tmp_path / "part", "meta.iterations=2", "logging.checkpoint_every=2") == 0
    with (tmp_path / "part" / "metrics.csv").open("a") as handle:  # a row written after the last checkpoint
        handle.write("3," + ",".join(["0"] * (len(rows(tmp_path / "part")[0]) + 3)) + "\n")
    assert main(["train", "--resume", str(tmp_path / "part"), "--set", "meta.iterations=4"]) == 0
    assert rows(tmp_path / "part") == rows(tmp_path / "full")
    final = [load_checkpoint(tmp_path / r / "checkpoints" / "latest.pt")["policy"] for r in ("full", "part")]
    for key in final[0]:
        torch.testing.assert_close(final[0][key], final[1][key], rtol=0, atol=0)


def test_learned_step_sizes_train_resume_exactly_and_evaluate(tmp_path: Path) -> None:
    learned = "inner.learn_step_size=true"
    assert train(tmp_path / "full", "meta.iterations=3", learned) == 0
    assert train(tmp_path / "run", "meta.iterations=2", learned, "logging.checkpoint_every=2") == 0
    assert main(["train", "--resume", str(tmp_path / "run"), "--set", "meta.iterations=3"]) == 0
    assert rows(tmp_path / "run") == rows(tmp_path / "full")
    table = rows(tmp_path / "full")
    assert float(table[0]["inner/step_size_mean"]) != pytest.approx(0.1, abs=1e-9)  # moved from alpha
    state = load_checkpoint(tmp_path / "full" / "checkpoints" / "latest.pt")["policy"]
    assert any(k.startswith("step_size.") for k in state)
    assert main(["evaluate", str(tmp_path / "full"), "--out", str(tmp_path / "eval")]) == 0
    assert (tmp_path / "eval" / "adaptation.csv").read_text() == (
        tmp_path / "full" / "adaptation.csv"
    ).read_text()


def test_resume_rejects_a_changed_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert train(tmp_path / "run", "meta.iterations=1") == 0
    capsys.readouterr()
    assert main(["train", "--resume", str(tmp_path / "run"), "--set", "inner.step_size=0.5"]) == 2
    assert "inner.step_size" in capsys.readouterr().err


def test_resume_may_change_the_fisher_product_and_records_it(tmp_path: Path) -> None:
    assert train(tmp_path / "run", "meta.iterations=2", "logging.checkpoint_every=2") == 0
    args = ["--set", "meta.iterations=3", "--set", "trpo.fisher_subsample=0.5", "--set", "num_threads=1"]
    assert main(["train", "--resume", str(tmp_path / "run"), *args]) == 0
    with (tmp_path / "run" / "resumes.csv").open() as handle:
        records = list(csv.DictReader(handle))
    assert [(r["first_iteration"], r["key"], r["before"], r["after"]) for r in records] == [
        ("3", "num_threads", "0", "1"),
        ("3", "trpo.fisher_subsample", "1.0", "0.5"),
    ]
    assert load_config(tmp_path / "run" / "config.yaml").trpo.fisher_subsample == 0.5
    assert [r["iteration"] for r in rows(tmp_path / "run")] == ["1", "2", "3"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_a_resume_that_fails_records_no_change(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert train(tmp_path / "run", "meta.iterations=2", "logging.checkpoint_every=2") == 0
    args = ["--set", "trpo.fisher_subsample=0.5", "--device", "cuda"]
    assert main(["train", "--resume", str(tmp_path / "run"), *args]) == 2
    assert "device" in capsys.readouterr().err
    assert not (tmp_path / "run" / "resumes.csv").exists()


BAD = [
    (
        ["train", "experiments/navigation2d-quick.yaml", "--device", "tpu"],
        "device: got 'tpu', expected cpu, cuda",
    ),
    (
        ["train", "experiments/navigation2d-quick.yaml", "--set", "trpo.fisher_product=hessian"],
        "trpo.fisher_product: got 'hessian', expected one of jfj, double_backprop, closed_form",
    ),
    (
        [
            "train",
            "experiments/navigation2d-quick.yaml",
            "--set",
            "trpo.fisher_product=closed_form",
            "--set",
            "inner.steps=2",
        ],
        "trpo.fisher_product: closed_form covers one inner step of the paper's estimator with fixed step "
        "sizes, not inner.steps 2 (at most 1); use jfj",
    ),
    (
        ["train", "experiments/navigation2d-quick.yaml", "--set", "trpo.fisher_subsample=0"],
        "trpo.fisher_subsample: got 0.0, expected a fraction in (0, 1]",
    ),
    (["train", "experiments/navigation2d-quick.yaml", "--set", "method=bayes"], "method: got 'bayes'"),
    (
        ["train", "experiments/navigation2d-quick.yaml", "--set", "inner.adapt=head"],
        "inner.adapt: got 'head' for meta-RL",
    ),
    (
        [
            "baseline",
            "pretrained",
            "experiments/navigation2d-quick.yaml",
            "--set",
            "inner.learn_step_size=true",
        ],
        "inner.learn_step_size: true with method 'pretrained'",
    ),
    (
        ["train", "experiments/sinusoid-quick.yaml", "--set", "method=pretrained"],
        "few-shot runs are method maml",
    ),
    (
        ["baseline", "oracle", "experiments/navigation2d-quick.yaml", "--set", "oracle.timesteps=0"],
        "oracle.timesteps: got 0",
    ),
    (
        ["train", "experiments/navigation2d-quick.yaml", "--set", "meta.bach_size=3"],
        "did you mean 'batch_size'",
    ),
    (
        ["train", "experiments/navigation2d-quick.yaml", "--set", "meta.batch_size=0"],
        "meta.batch_size: got 0",
    ),
    (
        ["train", "experiments/navigation2d-quick.yaml", "--set", "meta.gamma=high"],
        "meta.gamma: expected a number",
    ),
    (
        ["train", "experiments/navigation2d-quick.yaml", "--set", "env.id=metarl/HalfCheetahVell-v0"],
        "did you mean",
    ),
    (
        ["train", "experiments/navigation2d-quick.yaml", "--set", "meta.iterations"],
        "expected section.key=value",
    ),
    (["train", "experiments/no-such-file.yaml"], "does not exist"),
    (["train", "--resume", "no/such/run"], "is not a run directory"),
    (["train"], "give a CONFIG.yaml or --resume"),
    (["evaluate", "no/such/checkpoint.pt"], "does not exist"),
    (["trian"], "invalid choice"),
]


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA, so --device cuda is valid")
def test_device_cuda_without_a_gpu_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["train", str(REPO / "experiments/navigation2d-quick.yaml"), "--device", "cuda"]
    assert main([*argv, "--run-dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "device: 'cuda' but torch sees no CUDA device" in err[0]
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(("argv", "message"), BAD, ids=[" ".join(a[:1] + a[-1:]) for a, _ in BAD])
def test_bad_input_exits_2_with_one_line(argv: list[str], message: str, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    full = [a if not a.startswith("experiments/") else str(REPO / a) for a in argv]
    if full and full[0] == "train" and "--resume" not in full and len(full) > 1:
        full += ["--run-dir", str(run_dir)]
    proc = subprocess.run(
        [sys.executable, "-m", "metarl.cli", *full], capture_output=True, text=True, cwd=tmp_path
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert not run_dir.exists()


def test_existing_run_dir_is_refused_and_left_untouched(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.csv").write_text("precious\n")
    assert train(run, "meta.iterations=1") == 2
    assert "already holds a run" in capsys.readouterr().err
    assert (run / "metrics.csv").read_text() == "precious\n"


def test_custom_task_example_trains_two_iterations(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)  # the example's env.imports path is relative to the repository root
    run = tmp_path / "run"
    assert train(run, "meta.iterations=2", config="experiments/custom_task/reacher_goal.yaml") == 0
    assert len(rows(run)) == 2
    assert not (REPO / "MUJOCO_LOG.TXT").exists()


def test_bad_env_imports_entry_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert train(tmp_path / "run", "env.imports=[no/such/file.py]") == 2
    assert "env.imports: file 'no/such/file.py' does not exist" in capsys.readouterr().err


def test_evaluate_a_run_writes_the_adaptation_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    assert train(run, "meta.iterations=1") == 0
    out = tmp_path / "eval"
    argv = ["evaluate", str(run), "--tasks", "3", "--steps", "2", "--episodes", "2", "--out", str(out)]
    assert main(argv) == 0
    summary = json.loads((out / "adaptation.json").read_text())
    assert summary["num_tasks"] == 3 and [r["step"] for r in summary["methods"]["maml"]] == [0, 1, 2]
    with (out / "adaptation.csv").open() as handle:
        table = list(csv.DictReader(handle))
    assert len(table) == 3 * 3 and set(table[0]) == {
        "method",
        "task_index",
        "task_x",
        "task_y",
        "step",
        "mean_return",
    }
    assert main(argv) == 0  # same seed, same numbers
    assert json.loads((out / "adaptation.json").read_text()) == summary
    assert main(["evaluate", str(run), "--tasks", "0"]) == 2
    assert "evaluation.tasks: got 0" in capsys.readouterr().err


def test_best_checkpoint_holds_the_policy_that_collected_the_best_return(tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert train(run, "meta.iterations=3", "logging.checkpoint_every=1") == 0
    table = rows(run)
    returns = [float(r["meta/return_after"]) for r in table]
    best = load_checkpoint(run / "checkpoints" / "best.pt")
    assert best["best_return"] == pytest.approx(max(returns))
    assert best["iteration"] == returns.index(max(returns))  # updates seen before that iteration


def test_evaluate_with_random_baseline_and_compare(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = [tmp_path / "a", tmp_path / "b"]
    for i, run in enumerate(runs):
        assert train(run, "meta.iterations=1", f"seed={i}") == 0
    args = ["--tasks", "3", "--steps", "1", "--episodes", "2"]
    assert main(["evaluate", str(runs[0]), *args, "--baselines", "random"]) == 0
    summary = json.loads((runs[0] / "adaptation.json").read_text())
    assert set(summary["methods"]) == {"maml", "random"}
    assert summary["random_step_size"] > 0
    with (runs[0] / "adaptation.csv").open() as handle:
        table = list(csv.DictReader(handle))
    (runs[0] / "other.csv").write_text(
        "method,task_index,task_x,task_y,step,mean_return\n"
        + "".join(
            f"oracle,{r['task_index']},{r['task_x']},{r['task_y']},{r['step']},-1.0\n"
            for r in table
            if r["method"] == "maml"
        )
    )
    assert main(["evaluate", str(runs[1]), *args, "--compare", str(runs[0] / "other.csv")]) == 0
    merged = json.loads((runs[1] / "adaptation.json").read_text())
    assert set(merged["methods"]) == {"maml", "oracle"} and merged["methods"]["oracle"][0]["mean"] == -1.0
    capsys.readouterr()
    assert (
        main(
            [
                "evaluate",
                str(runs[1]),
                "--tasks",
                "4",
                "--steps",
                "1",
                "--episodes",
                "2",
                "--compare",
                str(runs[0]),
            ]
        )
        == 2
    )
    assert "evaluated on other tasks" in capsys.readouterr().err


def test_init_from_starts_a_new_run_from_the_checkpoints_policy(tmp_path: Path) -> None:
    import hashlib

    from metarl.app.build import build
    from metarl.app.train import start_from

    assert train(tmp_path / "a", "meta.iterations=2") == 0
    latest = tmp_path / "a" / "checkpoints" / "latest.pt"
    # the learner holds the checkpoint's policy exactly, and the record names the file it came from
    config = load_config(tmp_path / "a" / "config.yaml")
    learner = build(config).learner
    record = start_from(learner, str(tmp_path / "a"))
    assert record == {
        "path": str(latest),
        "iteration": 2,
        "sha256": hashlib.sha256(latest.read_bytes()).hexdigest(),
    }
    saved = load_checkpoint(latest)["policy"]
    for key, value in learner.state_dict().items():
        torch.testing.assert_close(value, saved[key], rtol=0, atol=0)
    # end to end: a new run, counted from iteration 1, that repeats exactly and differs from a fresh start
    for name in ("b", "c"):
        argv = ["train", str(REPO / "experiments/navigation2d-quick.yaml"), "--run-dir", str(tmp_path / name)]
        argv += [a for item in [*TINY, "meta.iterations=2"] for a in ("--set", item)]
        assert main([*argv, "--init-from", str(tmp_path / "a")]) == 0
    assert train(tmp_path / "fresh", "meta.iterations=2") == 0
    assert [r["iteration"] for r in rows(tmp_path / "b")] == ["1", "2"]
    assert rows(tmp_path / "b") == rows(tmp_path / "c") != rows(tmp_path / "fresh")
    assert json.loads((tmp_path / "b" / "init_from.json").read_text()) == record
    assert yaml.safe_load((tmp_path / "b" / "config.yaml").read_text())["policy"]["init_from"] == str(
        tmp_path / "a"
    )
    # a resumed run keeps its own checkpoint: init_from is not read again (the source may be gone)
    latest.unlink()
    assert main(["train", "--resume", str(tmp_path / "b"), "--set", "meta.iterations=3"]) == 0
    assert [r["iteration"] for r in rows(tmp_path / "b")] == ["1", "2", "3"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("missing", r"^metarl: error: policy\.init_from: checkpoint: '.*nowhere' does not exist$"),
        (
            "shape",
            r"^metarl: error: policy\.init_from: '.*a' holds a policy that does not fit this config's",
        ),
        (
            "resume",
            r"^metarl: error: --init-from: a resumed run continues from its own checkpoint; start a new run$",
        ),
    ],
)
def test_bad_init_from_is_one_line_and_writes_nothing(
    change: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert train(tmp_path / "a", "meta.iterations=1") == 0
    argv = ["train", str(REPO / "experiments/navigation2d-quick.yaml"), "--run-dir", str(tmp_path / "b")]
    argv += [a for item in [*TINY, "meta.iterations=1"] for a in ("--set", item)]
    if change == "missing":
        argv += ["--init-from", str(tmp_path / "nowhere")]
    elif change == "shape":
        argv += ["--init-from", str(tmp_path / "a"), "--set", "policy.hidden_sizes=[7]"]
    else:
        argv = ["train", "--resume", str(tmp_path / "a"), "--init-from", str(tmp_path / "a")]
    capsys.readouterr()
    assert main(argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and re.match(message, lines[0]), lines
    assert not (tmp_path / "b").exists()
