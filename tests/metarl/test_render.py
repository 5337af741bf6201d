"""`metarl render`: one GIF frame per env step, panels side by side, one-line --task errors, the viewer."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import gymnasium as gym
import imageio.v3 as iio
import pytest
from conftest import tiny_settings  # noqa: E402

from metarl import envs  # noqa: F401  (registers the ids)
from metarl.cli import main
from metarl.core.errors import ConfigError
from metarl.envs.tasks import GoalTask
from metarl.viz import render

REPO = Path(__file__).resolve().parents[2]
TINY = tiny_settings("meta.iterations=1")
GL_VARIABLES = ("MUJOCO_GL", "PYOPENGL_PLATFORM")


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """One tiny trained run per env; MUJOCO_GL and PYOPENGL_PLATFORM are restored after the module."""
    root = tmp_path_factory.mktemp("runs")
    saved = {name: os.environ.get(name) for name in GL_VARIABLES}
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)  # MuJoCo may write MUJOCO_LOG.TXT into the working directory
        for name, env_id in (("nav", "metarl/Navigation2D-v0"), ("cheetah", "metarl/HalfCheetahVel-v0")):
            args = ["train", str(REPO / "experiments/navigation2d-quick.yaml"), "--run-dir", str(root / name)]
            for item in [*TINY, f"env.id={env_id}"]:
                args += ["--set", item]
            assert main(args) == 0
    yield {"nav": root / "nav", "cheetah": root / "cheetah"}
    for name, value in saved.items():  # render commands set them in this process
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(autouse=True)
def in_tmp_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def gif_frames(path: Path):
    return iio.imread(path, index=None)


def test_navigation_gif_has_one_frame_per_env_step(runs: dict[str, Path], tmp_path: Path, capsys) -> None:
    out = tmp_path / "nav.gif"
    args = ["render", str(runs["nav"]), "--task", "x=0.3,y=-0.2", "--steps", "0,1,2", "--horizon", "25"]
    assert main([*args, "--size", "96", "--out", str(out)]) == 0
    frames = gif_frames(out)
    assert frames.shape[:3] == (25, 96, 96)  # one plot, 25 env steps (no episode reaches the goal)
    printed = capsys.readouterr().out
    assert f"wrote {out}" in printed and "0: " in printed and "2: " in printed


def test_navigation_default_output_is_rollout_gif_in_the_run(runs: dict[str, Path], tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(runs["nav"] / "checkpoints", run / "checkpoints")
    assert main(["render", str(run / "checkpoints" / "latest.pt"), "--task", "x=0.1", "--task", "y=0.1"]) == 0
    assert len(gif_frames(run / "rollout.gif")) == 100


@pytest.mark.mujoco
def test_half_cheetah_gif_puts_the_step_counts_side_by_side(
    runs: dict[str, Path], tmp_path: Path, gl
) -> None:
    out = tmp_path / "cheetah.gif"
    args = ["render", str(runs["cheetah"]), "--task", "velocity=1.5", "--steps", "0,1", "--horizon", "6"]
    assert main([*args, "--size", "64", "--out", str(out)]) == 0
    frames = gif_frames(out)
    assert frames.shape[:3] == (6, 64, 2 * 64)
    assert frames[:, :, :64].std() > 0 and (frames[:, :, :64] != frames[:, :, 64:]).any()


@pytest.mark.mujoco
@pytest.mark.parametrize(
    ("task", "message"),
    [
        (["speed=1"], r"unknown field 'speed'"),
        (["velocity=2.5"], r"velocity=2.5 is outside the task distribution \(\[0, 2\]"),
        ([], r"missing velocity"),
        (["velocity:1"], r"'velocity:1' is not field=value"),
        (["velocity=fast"], r"velocity='fast' is not a finite number"),
        (["velocity=nan"], r"velocity='nan' is not a finite number"),
        (["velocity=1", "velocity=1.5"], r"velocity is given twice"),
    ],
)
def test_bad_task_is_one_line_naming_fields_and_ranges(runs, task, message, capsys, gl) -> None:
    args = ["render", str(runs["cheetah"]), "--steps", "0"]
    for item in task:
        args += ["--task", item]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("metarl: error: --task: ")
    assert re.search(message, err), err
    assert "allowed fields: velocity in [0, 2]" in err


def test_navigation_missing_field_names_both_fields(runs: dict[str, Path], capsys) -> None:
    assert main(["render", str(runs["nav"]), "--task", "x=0.1", "--steps", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "missing y; allowed fields: x in [-0.5, 0.5], y in [-0.5, 0.5]" in err


def test_allow_out_of_range_renders_an_unseen_goal(runs: dict[str, Path], tmp_path: Path, capsys) -> None:
    args = ["render", str(runs["nav"]), "--task", "x=0.9,y=-0.8", "--steps", "0", "--horizon", "5"]
    assert main([*args, "--out", str(tmp_path / "a.gif")]) == 2
    assert "outside the task distribution" in capsys.readouterr().err
    assert main([*args, "--out", str(tmp_path / "a.gif"), "--allow-out-of-range"]) == 0
    assert len(gif_frames(tmp_path / "a.gif")) == 5


@pytest.mark.mujoco
def test_out_of_range_velocity_renders_with_the_flag(runs: dict[str, Path], tmp_path: Path, capsys, gl):
    args = ["render", str(runs["cheetah"]), "--task", "velocity=2.5", "--steps", "0", "--horizon", "3"]
    assert main([*args, "--out", str(tmp_path / "c.gif")]) == 2
    assert "outside the task distribution" in capsys.readouterr().err
    assert main([*args, "--out", str(tmp_path / "c.gif"), "--allow-out-of-range"]) == 0
    assert len(gif_frames(tmp_path / "c.gif")) == 3


def test_repeated_and_comma_separated_task_fields_agree() -> None:
    env = gym.make("metarl/Navigation2D-v0")
    assert render.parse_task(["x=0.1", "y=-0.2"], env) == render.parse_task([" x = 0.1 , y=-0.2"], env)
    assert env.unwrapped.task == GoalTask(0.1, -0.2)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--steps", "0,a"], "--steps: expected comma-separated integers >= 0"),
        (["--out", "x.avi"], "must end with one of .gif, .mp4"),
        (["--viewer"], "--viewer: 'metarl/Navigation2D-v0' has no MuJoCo model"),
        (["--size", "8"], "--size: must be >= 16 pixels, got 8"),
        (["--horizon", "0"], "--horizon: must be >= 1 env step, got 0"),
        (["--episodes", "0"], "--episodes: must be >= 1, got 0"),
    ],
)
def test_other_bad_render_arguments_are_one_line(runs: dict[str, Path], args, message, capsys) -> None:
    assert main(["render", str(runs["nav"]), "--task", "x=0,y=0", *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


def test_mp4_without_imageio_ffmpeg_names_the_extra(runs, tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)  # import fails as if not installed
    args = ["render", str(runs["nav"]), "--task", "x=0,y=0", "--out", str(tmp_path / "a.mp4")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and 'pip install "metarl[video]"' in err
    assert not (tmp_path / "a.mp4").exists()


def test_mp4_has_one_frame_per_env_step(runs: dict[str, Path], tmp_path: Path) -> None:
    pytest.importorskip("imageio_ffmpeg", reason="writing .mp4 needs the video extra")
    import imageio.v2 as imageio

    out = tmp_path / "a.mp4"
    assert (
        main(["render", str(runs["nav"]), "--task", "x=0,y=0.3", "--horizon", "12", "--out", str(out)]) == 0
    )
    with imageio.get_reader(out) as reader:
        assert reader.count_frames() == 12


def test_choose_gl_backend_probes_and_sets_mujoco_gl(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MUJOCO_GL", "")
    try:
        backend = render.choose_gl_backend()
    except ConfigError as exc:
        assert "libegl1 or libosmesa6" in str(exc)
    else:
        assert backend in render.GL_BACKENDS and os.environ["MUJOCO_GL"] == backend
    monkeypatch.setenv("MUJOCO_GL", "")
    monkeypatch.setattr(render, "GL_BACKENDS", {"nosuchgl": "libnosuchgl1"})
    with pytest.raises(
        ConfigError, match=r"no off-screen OpenGL for MuJoCo \(nosuchgl: .*install libnosuchgl1"
    ):
        render.choose_gl_backend()
    monkeypatch.setenv("MUJOCO_GL", "osmesa")
    assert render.choose_gl_backend() == "osmesa"  # a user's choice is kept


def _start_xvfb() -> tuple[subprocess.Popen, str]:
    if not shutil.which("Xvfb"):
        pytest.skip("Xvfb is not installed (apt-get install xvfb); the viewer needs a display")
    number = next(n for n in range(99, 199) if not Path(f"/tmp/.X{n}-lock").exists())
    server = subprocess.Popen(
        ["Xvfb", f":{number}", "-screen", "0", "640x480x24", "-nolisten", "tcp"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while not Path(f"/tmp/.X11-unix/X{number}").exists():
        if server.poll() is not None or time.monotonic() > deadline:
            server.kill()
            pytest.skip(f"Xvfb :{number} did not start")
        time.sleep(0.1)
    return server, f":{number}"


@pytest.mark.mujoco
def test_viewer_opens_and_steps_under_xvfb(runs: dict[str, Path]) -> None:
    server, display = _start_xvfb()
    env = {k: v for k, v in os.environ.items() if k not in GL_VARIABLES}
    # the subprocess runs in a temporary folder: import this tree, not another checkout on a relative path
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])
    args = ["render", str(runs["cheetah"]), "--task", "velocity=1", "--steps", "0", "--viewer"]
    try:
        result = subprocess.run(
            [sys.executable, "-m", "metarl.cli", *args, "--viewer-seconds", "1"],
            env={**env, "DISPLAY": display},
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        server.terminate()
        server.wait(timeout=10)
    assert result.returncode == 0, result.stderr
    line = next(x for x in result.stderr.splitlines() if x.startswith("viewer: 0 steps: "))
    assert int(line.split(": ")[2].split()[0]) > 0  # env steps taken while the window was open
