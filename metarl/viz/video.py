"""Rollout pictures: MuJoCo frames side by side, animated 2-D trajectory plots, GIF and MP4 files.

PIL, matplotlib and imageio are imported inside the functions that use them.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike

from metarl.core.errors import ConfigError
from metarl.core.types import Task

VIDEO_SUFFIXES = (".gif", ".mp4")


@dataclasses.dataclass
class Episode:
    """One episode after ``steps`` inner steps: ``observations [T + 1, D]``, ``rewards [T]``, ``T`` frames."""

    steps: int
    observations: np.ndarray
    rewards: np.ndarray
    frames: list[np.ndarray]


def task_text(task: Task) -> str:
    """``velocity=1.5``, ``x=0.3, y=-0.2`` or (a task that ``describe()``s itself) ``env=reach-v3, ...``."""
    fields = task.describe() if callable(getattr(task, "describe", None)) else dataclasses.asdict(task)
    return ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in fields.items())


def steps_text(k: int) -> str:
    """``0 steps``, ``1 step``, ``3 steps``."""
    return f"{k} step" if k == 1 else f"{k} steps"


def side_by_side(episodes: list[Episode], task: Task, size: int) -> list[np.ndarray]:
    """Panels ``[size, size]`` next to each other with the task, step count and running return drawn on.

    Shorter episodes hold their last frame. Returns one ``[size, len(episodes) * size, 3]`` frame per step.
    """
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=max(10, size // 16))
    length = max(len(e.frames) for e in episodes)
    out = []
    for t in range(length):
        panels = []
        for episode in episodes:
            i = min(t, len(episode.frames) - 1)
            image = Image.fromarray(episode.frames[i]).convert("RGB").resize((size, size))
            text = (
                f"{task_text(task)}\n{steps_text(episode.steps)}\nreturn {episode.rewards[: i + 1].sum():.1f}"
            )
            ImageDraw.Draw(image).multiline_text(
                (4, 2), f"{text}\nt={i + 1}", font=font, fill="white", stroke_width=2, stroke_fill="black"
            )
            panels.append(np.asarray(image))
        out.append(np.concatenate(panels, axis=1))
    return out


def plane_frames(episodes: list[Episode], task: Task, size: int) -> list[np.ndarray]:
    """An animated plot (matplotlib, Agg) of 2-D positions, one trajectory per episode, and the goal.

    The goal is the task's ``(x, y)`` when it has those fields; the header names the task and each
    trajectory's step count and running return in its colour.

    Returns:
        One ``[size, size, 3]`` frame per env step.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fields = dataclasses.asdict(task)
    goal = [(fields["x"], fields["y"])] if {"x", "y"} <= set(fields) else []
    points = np.concatenate([e.observations for e in episodes] + [np.array(goal).reshape(-1, 2)])
    centre, half = (points.min(0) + points.max(0)) / 2, max(np.ptp(points, axis=0).max() / 2, 0.1) * 1.1
    fig = Figure(figsize=(size / 100, size / 100), dpi=100)
    # one header line per episode and the task's, 1.9 px per point at 100 dpi; at most 40% of a small frame
    lines_px = (len(episodes) + 1) * 1.9
    canvas, fontsize = FigureCanvasAgg(fig), min(max(6.0, size / 30), 0.4 * size / lines_px)
    header = lines_px * fontsize / size
    ax = fig.add_axes((0.02, 0.02, 0.96, 0.96 - header))
    ax.set(xlim=centre[0] + (-half, half), ylim=centre[1] + (-half, half), aspect="equal")
    ax.tick_params(labelbottom=False, labelleft=False, length=0)
    ax.grid(alpha=0.3)
    for x, y in goal:
        ax.plot(x, y, marker="*", color="red", markersize=size / 20)
    ax.plot(*episodes[0].observations[0, :2], marker="o", color="black", markersize=3)
    lines = [ax.plot([], [], lw=1.5)[0] for _ in episodes]
    texts = [
        fig.text(0.03, 0.99 - i * fontsize * 1.9 / size, "", va="top", fontsize=fontsize, color=color)
        for i, color in enumerate(["black"] + [line.get_color() for line in lines])
    ]
    out = []
    for t in range(max(len(e.rewards) for e in episodes)):
        texts[0].set_text(f"{task_text(task)}   t={t + 1}")
        for line, text, episode in zip(lines, texts[1:], episodes, strict=True):
            i = min(t, len(episode.rewards) - 1)
            line.set_data(episode.observations[: i + 2, 0], episode.observations[: i + 2, 1])
            text.set_text(f"{steps_text(episode.steps)}: return {episode.rewards[: i + 1].sum():.1f}")
        canvas.draw()
        out.append(np.asarray(canvas.buffer_rgba())[..., :3].copy())
    return out


def check_output(path: Path) -> None:
    """Refuse an output that cannot be written before any work is done.

    Raises:
        ConfigError: unknown suffix, or imageio (any video) or imageio-ffmpeg (``.mp4``) missing.
    """
    suffix = path.suffix.lower()
    if suffix not in VIDEO_SUFFIXES:
        raise ConfigError(f"--out: {str(path)!r} must end with one of {', '.join(VIDEO_SUFFIXES)}")
    try:
        import imageio  # noqa: F401

        if suffix == ".mp4":
            import imageio_ffmpeg  # noqa: F401
    except ImportError as exc:
        package = (exc.name or "imageio").replace("_", "-")
        alternative = " (or write a .gif)" if suffix == ".mp4" else ""
        raise ConfigError(
            f'--out: writing {suffix} needs {package}: pip install "metarl[video]"{alternative}'
        ) from None


def write_video(frames: list[np.ndarray], path: Path, fps: float) -> None:
    """Write ``frames`` (each ``[H, W, 3]`` uint8) as a looping GIF or an H.264 MP4."""
    import imageio.v2 as imageio

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix.lower() == ".gif":
            imageio.mimwrite(path, list[ArrayLike](frames), format="GIF", duration=1000 / fps, loop=0)
        else:
            height, width = frames[0].shape[:2]  # H.264 wants even sizes
            even: list[ArrayLike] = [
                np.pad(f, ((0, height % 2), (0, width % 2), (0, 0)), mode="edge") for f in frames
            ]
            imageio.mimwrite(path, even, format="FFMPEG", fps=fps, macro_block_size=1)
    except OSError as exc:
        raise ConfigError(f"--out: cannot write {str(path)!r}: {exc}") from None
