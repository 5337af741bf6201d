"""Malformed invocations: each exits with code 2 and one line naming the problem, and touches no file.

The table runs in-process (``metarl.cli.main``, argparse's own exits caught as ``SystemExit``), so it is
fast; a subset also runs as real processes (``python -m metarl.cli``) to check real exit codes and that
nothing else reaches stderr.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest import tiny_settings  # noqa: E402

from metarl.cli import main

REPO = Path(__file__).resolve().parents[2]
TINY = tiny_settings("meta.iterations=1")


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A config, a finished one-iteration run, a corrupt checkpoint, a plain file, a few bad YAML files."""
    root = tmp_path_factory.mktemp("bad_input")
    config = root / "nav.yaml"
    config.write_text((REPO / "experiments" / "navigation2d-quick.yaml").read_text())
    args = ["train", str(config), "--run-dir", str(root / "run")]
    for item in TINY:
        args += ["--set", item]
    assert main(args) == 0
    corrupt = root / "corrupt_run"
    (corrupt / "checkpoints").mkdir(parents=True)
    (corrupt / "config.yaml").write_text((root / "run" / "config.yaml").read_text())
    (corrupt / "checkpoints" / "latest.pt").write_bytes(b"not a checkpoint, just bytes")
    (root / "notes.txt").write_text("a file where a folder is expected\n")
    (root / "broken.yaml").write_text("meta:\n  batch_size: [1, 2\n")
    (root / "list.yaml").write_text("- 1\n- 2\n")
    (root / "typo.yaml").write_text("meta:\n  batchsize: 8\n")
    (root / "section.yaml").write_text("metaa:\n  batch_size: 8\n")
    return root


def cases() -> list[tuple[str, list[str], str]]:
    """(name, argv with {root} placeholders, a regular expression the message must match)."""
    train = ["train", "{root}/nav.yaml", "--run-dir", "{root}/new_run"]

    def with_set(*items: str) -> list[str]:
        out = list(train)
        for item in items:
            out += ["--set", item]
        return out

    return [
        ("unknown command", ["frobnicate"], r"invalid choice: 'frobnicate'.*choose from"),
        ("no command", [], r"required: command"),
        ("unknown flag", ["train", "{root}/nav.yaml", "--sed", "1"], r"unrecognized arguments: --sed"),
        ("missing config", ["train", "{root}/missing.yaml"], r"config: file .*missing.yaml.* does not exist"),
        ("broken yaml", ["train", "{root}/broken.yaml"], r"is not valid YAML at line"),
        ("yaml list", ["train", "{root}/list.yaml"], r"must hold a mapping of sections, got list"),
        (
            "misspelled key",
            ["train", "{root}/typo.yaml"],
            r"meta.batchsize: unknown key \(did you mean 'batch_size'",
        ),
        ("unknown section", ["train", "{root}/section.yaml"], r"metaa: unknown key \(did you mean 'meta'"),
        ("misspelled --set key", with_set("inner.stepsize=0.1"), r"inner.stepsize: unknown key.*step_size"),
        ("--set without =", with_set("meta.batch_size"), r"expected section.key=value"),
        (
            "string for int",
            with_set("meta.batch_size=abc"),
            r"meta.batch_size: expected an integer, got 'abc'",
        ),
        ("float for int", with_set("meta.iterations=1.5"), r"meta.iterations: expected an integer, got 1.5"),
        ("zero batch", with_set("meta.batch_size=0"), r"meta.batch_size: got 0, expected an integer >= 1"),
        ("negative episodes", with_set("meta.episodes_per_task=-3"), r"episodes_per_task: got -3, expected"),
        ("negative max_kl", with_set("trpo.max_kl=-0.1"), r"trpo.max_kl: got -0.1, expected a number > 0"),
        ("gamma above 1", with_set("meta.gamma=1.5"), r"meta.gamma: got 1.5, expected a number in \[0, 1\]"),
        (
            "empty hidden sizes",
            with_set("policy.hidden_sizes=[]"),
            r"policy.hidden_sizes: got \[\], expected",
        ),
        ("unknown activation", with_set("policy.activation=sigmoid"), r"one of relu, tanh, elu"),
        ("zero checkpoint_every", with_set("logging.checkpoint_every=0"), r"logging.checkpoint_every: got 0"),
        ("negative seed", [*train, "--seed", "-1"], r"seed: got -1, expected an integer >= 0"),
        (
            "unknown env id",
            with_set("env.id=metarl/Navigation3D-v0"),
            r"unknown environment .*Navigation2D-v0",
        ),
        (
            "unknown backend",
            with_set("collector.backend=threads"),
            r"collector.backend: got 'threads', expected one",
        ),
        (
            "zero workers",
            with_set("collector.workers=0"),
            r"collector.workers: got 0, expected an integer >= 1",
        ),
        (
            "batch not divisible among workers",
            with_set("collector.backend=subprocess", "collector.workers=3"),
            r"meta.batch_size: 8 tasks cannot be shared equally by collector.workers=3",
        ),
        (
            "step budget on a worker backend",
            with_set("collector.batch_unit=steps", "collector.backend=subprocess"),
            r"collector.batch_unit: 'steps' with collector.backend 'subprocess'; .* 'local' backend only",
        ),
        ("unknown batch unit", with_set("collector.batch_unit=samples"), r"batch_unit: got 'samples'"),
        ("zero timeout", with_set("collector.timeout_s=0"), r"collector.timeout_s: got 0.0, expected"),
        ("bad start method", with_set("collector.start_method=fork"), r"one of spawn, forkserver"),
        (
            "malformed Ray address",
            with_set("collector.address=somewhere"),
            r"collector.address: got 'somewhere'",
        ),
        (
            "unreachable Ray address",
            with_set("collector.backend=ray", "collector.address=127.0.0.1:1"),
            r"collector.(address: cannot reach a Ray head at '127.0.0.1:1'"
            r"|backend: 'ray' needs the ray package)",
        ),
        (
            "existing run without --resume",
            ["train", "{root}/nav.yaml", "--run-dir", "{root}/run"],
            r"already holds a run; use --resume",
        ),
        (
            "unwritable output folder",
            [
                "train",
                "{root}/nav.yaml",
                "--run-dir",
                "{root}/notes.txt/run",
                *sum((["--set", s] for s in TINY), []),
            ],
            r"--run-dir: cannot create .*notes.txt/run",
        ),
        (
            "resume with a different config",
            ["train", "--resume", "{root}/run", "--set", "meta.batch_size=4"],
            r"--resume: the run was trained with another meta.batch_size",
        ),
        (
            "resume with a config file",
            ["train", "{root}/nav.yaml", "--resume", "{root}/run"],
            r"give only the run",
        ),
        ("resume a non-run", ["train", "--resume", "{root}"], r"is not a run directory \(no config.yaml\)"),
        (
            "resume a corrupt checkpoint",
            ["train", "--resume", "{root}/corrupt_run"],
            r"is not a readable checkpoint",
        ),
        (
            "evaluate a missing checkpoint",
            ["evaluate", "{root}/missing.pt"],
            r"checkpoint: .*missing.pt.* does not exist",
        ),
        (
            "evaluate a corrupt checkpoint",
            ["evaluate", "{root}/corrupt_run"],
            r"is not a readable checkpoint",
        ),
        (
            "evaluate with one task",
            ["evaluate", "{root}/run", "--tasks", "1"],
            r"evaluation.tasks: got 1, expected",
        ),
        (
            "evaluate unknown baseline",
            ["evaluate", "{root}/run", "--baselines", "oracle"],
            r"invalid choice: 'oracle'",
        ),
        ("render bad steps", ["render", "{root}/run", "--steps", "x"], r"--steps"),
        (
            "benchmark a non-MuJoCo id",
            ["benchmark", "--env", "metarl/Navigation2D-v0"],
            r"has no MuJoCo model",
        ),
        ("benchmark unknown backend", ["benchmark", "--backends", "threads"], r"invalid choice: 'threads'"),
    ]


def snapshot(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in root.rglob("*")
        if p.is_file()
    }


def fill(argv: list[str], root: Path) -> list[str]:
    return [a.replace("{root}", str(root)) for a in argv]


def test_the_table_has_at_least_25_distinct_invocations() -> None:
    table = cases()
    assert len(table) >= 25 and len({name for name, _, _ in table}) == len(table)


@pytest.mark.parametrize(("name", "argv", "pattern"), cases(), ids=[c[0] for c in cases()])
def test_bad_input_exits_2_with_one_line_and_touches_nothing(
    name: str, argv: list[str], pattern: str, workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = snapshot(workspace)
    try:
        code = main(fill(argv, workspace))
    except SystemExit as exc:  # argparse exits by itself
        code = exc.code
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == 2, captured.err
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("metarl: error: ") and "Traceback" not in captured.err
    import re

    assert re.search(pattern, lines[0]), lines[0]
    assert snapshot(workspace) == before, "an existing file changed"
    assert not (workspace / "new_run").exists()


SUBPROCESS_CASES = [
    "unknown command",
    "misspelled key",
    "unreachable Ray address",
    "existing run without --resume",
    "evaluate a corrupt checkpoint",
]


def test_real_processes_exit_2_with_one_line(workspace: Path) -> None:
    table = {name: argv for name, argv, _ in cases()}
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    before = snapshot(workspace)

    def run(name: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "metarl.cli", *fill(table[name], workspace)],
            capture_output=True, text=True, env=env, cwd=workspace, timeout=60,
        )  # fmt: skip

    with ThreadPoolExecutor(len(SUBPROCESS_CASES)) as pool:
        results = list(pool.map(run, SUBPROCESS_CASES))
    for name, result in zip(SUBPROCESS_CASES, results, strict=True):
        assert result.returncode == 2, (name, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1, (name, result.stderr)
        assert result.stdout == "", (name, result.stdout)
    assert snapshot(workspace) == before


def test_resuming_on_another_backend_is_allowed(workspace: Path) -> None:
    from metarl.app.main import make_parser
    from metarl.app.train import prepare_train

    sets = ["collector.backend=subprocess", "collector.workers=2", "meta.iterations=3"]
    argv = ["train", "--resume", str(workspace / "run")] + [a for s in sets for a in ("--set", s)]
    args = make_parser().parse_args(argv)
    plan = prepare_train(args)
    assert plan.resume and plan.run_dir == workspace / "run" and plan.config.collector.backend == "subprocess"


def test_a_setting_the_run_ignores_warns_in_one_line_before_the_error(workspace: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    argv = [
        "train",
        "nav.yaml",
        "--run-dir",
        "new_run",
        "--set",
        "model.filters=32",
        "--set",
        "meta.batch_size=0",
    ]
    result = subprocess.run(
        [sys.executable, "-m", "metarl.cli", *argv], capture_output=True, text=True, env=env, cwd=workspace
    )
    assert result.returncode == 2
    warning, error = result.stderr.strip().splitlines()
    assert warning.startswith("metarl: warning: model.filters = 32: ignored, a meta-RL run")
    assert error.startswith("metarl: error: meta.batch_size: got 0")
    assert not (workspace / "new_run").exists()
