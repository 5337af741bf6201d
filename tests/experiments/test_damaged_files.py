"""``--resume`` on a run whose ``config.yaml``, checkpoint or ``metrics.csv`` is truncated or hand-edited.

Each damage exits with code 2 and one line naming the file and what is wrong, and leaves every file of the
run byte-identical; a row cut short by a crash after the last checkpoint is not damage, and the run resumes.
"""

from __future__ import annotations

import hashlib
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from conftest import metric_rows, tiny_settings  # noqa: E402

from metarl.cli import main

REPO = Path(__file__).resolve().parents[2]
CONFIG = str(REPO / "experiments" / "navigation2d-quick.yaml")


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run of 4 iterations (checkpoint at 4) that the tests copy and damage."""
    run = tmp_path_factory.mktemp("damaged") / "base"
    args = ["train", CONFIG, "--run-dir", str(run)]
    for item in tiny_settings("meta.iterations=4", "logging.checkpoint_every=2"):
        args += ["--set", item]
    assert main(args) == 0
    return run


def edit_text(name: str, change: Callable[[str], str]) -> Callable[[Path], None]:
    def apply(run: Path) -> None:
        (run / name).write_text(change((run / name).read_text()))

    return apply


def edit_checkpoint(change: Callable[[dict], None]) -> Callable[[Path], None]:
    def apply(run: Path) -> None:
        path = run / "checkpoints" / "latest.pt"
        state = torch.load(path, weights_only=True)
        change(state)
        torch.save(state, path)

    return apply


def lines(keep: slice) -> Callable[[str], str]:
    return lambda text: "".join(text.splitlines(keepends=True)[keep])


def replace_line(number: int, pattern: str, new: str) -> Callable[[str], str]:
    def change(text: str) -> str:
        rows = text.splitlines(keepends=True)
        rows[number - 1] = re.sub(pattern, new, rows[number - 1], count=1)
        return "".join(rows)

    return change


def reshape_first(state: dict) -> None:
    name = next(iter(state["policy"]))
    state["policy"][name] = torch.zeros(3)


#: (name, damage, the file the message names, what it says)
DAMAGES = [
    ("config truncated", edit_text("config.yaml", lambda t: t[:600]), "config.yaml", r"is not valid YAML"),
    (
        "config not YAML",
        edit_text("config.yaml", lambda t: "seed: [0\nmeta: {"),
        "config.yaml",
        r"not valid YAML",
    ),
    (
        "config value edited",
        edit_text("config.yaml", lambda t: t.replace("batch_size: 2", "batch_size: abc")),
        "config.yaml",
        r"meta.batch_size: expected an integer, got 'abc'",
    ),
    (
        "config seed edited",
        edit_text("config.yaml", lambda t: t.replace("seed: 0", "seed: 5", 1)),
        "config.yaml",
        r"seed is 5, but the checkpoint was trained with 0",
    ),
    ("config emptied", edit_text("config.yaml", lambda t: ""), "config.yaml", r"is empty"),
    (
        "metrics rows missing",
        edit_text("metrics.csv", lines(slice(0, 2))),
        "metrics.csv",
        r"ends after iteration 1",
    ),
    ("metrics deleted", lambda run: (run / "metrics.csv").unlink(), "metrics.csv", r"is missing"),
    (
        "metrics iteration edited",
        edit_text("metrics.csv", replace_line(3, r"^2,", "x,")),
        "metrics.csv",
        r"line 3 is iteration 'x' where iteration 2 belongs",
    ),
    (
        "metrics rows out of order",
        edit_text("metrics.csv", lambda t: "".join((r := t.splitlines(True))[:2] + [r[3], r[2]] + r[4:])),
        "metrics.csv",
        r"line 3 is iteration '3' where iteration 2 belongs",
    ),
    (
        "metrics header removed",
        edit_text("metrics.csv", lines(slice(1, None))),
        "metrics.csv",
        r"not a header",
    ),
    (
        "metrics cut inside a row",
        edit_text("metrics.csv", lambda t: "".join((r := t.splitlines(True))[:2]) + r[2][:10]),
        "metrics.csv",
        r"ends after iteration 1;",
    ),
    (
        "metrics value edited",
        edit_text("metrics.csv", replace_line(2, r",[^,]*$", ",abc\n")),
        "metrics.csv",
        r"line 2: \S+ is 'abc', not a number",
    ),
    (
        "checkpoint truncated",
        lambda run: (run / "checkpoints" / "latest.pt").write_bytes(
            (run / "checkpoints" / "latest.pt").read_bytes()[:3000]
        ),
        "checkpoints/latest.pt",
        r"is not a readable checkpoint",
    ),
    (
        "checkpoint iteration edited",
        edit_checkpoint(lambda s: s.update(iteration="x")),
        "checkpoints/latest.pt",
        r"iteration is 'x', not a whole number",
    ),
    (
        "checkpoint from another policy",
        edit_checkpoint(reshape_first),
        "checkpoints/latest.pt",
        r"its policy does not fit the run's config.yaml \(size mismatch",
    ),
    (
        "checkpoint entry removed",
        edit_checkpoint(lambda s: s.pop("numpy_rng")),
        "checkpoints/latest.pt",
        r"lacks numpy_rng",
    ),
    (
        "checkpoint ahead of the metrics",
        edit_checkpoint(lambda s: s.update(iteration=9)),
        "metrics.csv",
        r"ends after iteration 4; .*holds iteration 9",
    ),
    (
        "best checkpoint damaged",
        lambda run: (run / "checkpoints" / "best.pt").write_bytes(b"garbage"),
        "checkpoints/best.pt",
        r"not a readable checkpoint.*would overwrite it",
    ),
]


def snapshot(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


@pytest.mark.parametrize(("name", "damage", "file", "says"), DAMAGES, ids=[d[0] for d in DAMAGES])
def test_a_damaged_file_stops_resume_with_one_line_naming_it_and_changes_nothing(
    name: str,
    damage: Callable[[Path], None],
    file: str,
    says: str,
    finished: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    damage(run)
    before = snapshot(run)
    capsys.readouterr()
    code = main(["train", "--resume", str(run), "--set", "meta.iterations=6"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith("metarl: error: ") and f"{run}/{file}" in err, err
    assert re.search(says, err), err
    assert snapshot(run) == before, "a file of the damaged run changed"


def test_a_row_cut_short_after_the_checkpoint_is_not_damage_and_the_run_resumes(
    finished: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    with (run / "metrics.csv").open("a") as handle:
        handle.write("5,-12.5,-1")  # a crash inside the next iteration's row
    assert main(["train", "--resume", str(run), "--set", "meta.iterations=6"]) == 0
    assert [row["iteration"] for row in metric_rows(run)] == ["1", "2", "3", "4", "5", "6"]
