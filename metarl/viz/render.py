"""Rollout videos and the live viewer: the policy before and after k inner steps on one chosen task.

For each requested step count ``k`` the meta-policy is adapted exactly as :mod:`metarl.evaluation` does (fresh
support episodes from the collector before every step, step sizes ``alpha`` then ``alpha / 2``), then ONE
episode is played with the adapted policy's mean action (through the collector's rescale and clip) in a single
env. MuJoCo envs are filmed (``render_mode="rgb_array"``) and the episodes are placed side by side; envs whose
observation is a 2-D position (Navigation2D) are drawn as an animated plot of the trajectories and the goal.
Either way there is one video frame per env step; the pictures and files are made in :mod:`metarl.viz.video`.
"""

from __future__ import annotations

import dataclasses
import math
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn
from torch.func import functional_call

from metarl.collection import VectorCollector
from metarl.core.errors import ConfigError, closest
from metarl.core.functional import Params
from metarl.core.seeding import evaluation_generators
from metarl.core.types import Adapter, Task
from metarl.viz.video import Episode, check_output, plane_frames, side_by_side, steps_text, write_video

#: ``MUJOCO_GL`` values tried in order when it is unset -> the Debian/Ubuntu package that provides each
GL_BACKENDS = {"egl": "libegl1", "osmesa": "libosmesa6"}
_GL_PROBE = (
    "import mujoco; m = mujoco.MjModel.from_xml_string('<mujoco/>'); r = mujoco.Renderer(m, 16, 16); "
    "r.update_scene(mujoco.MjData(m)); r.render()"
)


@dataclasses.dataclass
class RenderOptions:
    """What ``metarl render`` was asked for (see ``metarl render --help``).

    Attributes:
        task: ``field=value`` items, e.g. ``["velocity=1.5"]`` or ``["x=0.1,y=-0.2"]``.
        steps: inner step counts to show, e.g. ``[0, 1, 3]``.
        out: ``.gif`` or ``.mp4`` path (ignored by the viewer).
        seed: seed of the support episodes, action noise and resets (evaluation stream).
        step_sizes: one step size per inner step, at least ``max(steps)`` (paper: alpha, alpha/2, ...).
        size: height and width of one panel in pixels.
        horizon: env steps per rendered episode (``None``: the collector's horizon).
        allow_out_of_range: accept task values outside the distribution's ``task_ranges``.
        viewer: play in ``mujoco.viewer`` instead of writing a video.
        viewer_seconds: close the viewer after this many seconds (``None``: when its window closes).
        gl_error: why no headless OpenGL backend works, raised only if a MuJoCo env must be filmed.
    """

    task: list[str]
    steps: list[int]
    out: Path
    seed: int
    step_sizes: list[float]
    size: int = 240
    horizon: int | None = None
    allow_out_of_range: bool = False
    viewer: bool = False
    viewer_seconds: float | None = None
    gl_error: ConfigError | None = None

    def __post_init__(self) -> None:
        if self.size < 16:
            raise ConfigError(f"--size: must be >= 16 pixels, got {self.size}")
        if self.horizon is not None and self.horizon < 1:
            raise ConfigError(f"--horizon: must be >= 1 env step, got {self.horizon}")


def parse_steps(text: str) -> list[int]:
    """``"0,1,3"`` -> ``[0, 1, 3]`` (sorted, unique, each >= 0)."""
    try:
        steps = sorted({int(item) for item in text.split(",") if item.strip()})
    except ValueError:
        steps = []
    if not steps or steps[0] < 0:
        raise ConfigError(f"--steps: expected comma-separated integers >= 0 such as 0,1,3, got {text!r}")
    return steps


def _allowed(fields: list[str], ranges: dict[str, tuple[float, float]]) -> str:
    cells = [
        f"{name} in [{ranges[name][0]:g}, {ranges[name][1]:g}]" if name in ranges else name for name in fields
    ]
    return f"allowed fields: {', '.join(cells)}"


def parse_task(spec: Sequence[str], env: gym.Env, allow_out_of_range: bool = False) -> Task:
    """Build the env's task dataclass from ``field=value`` items and give it to the env.

    Args:
        spec: items such as ``["velocity=1.5"]`` or ``["x=0.1,y=-0.2"]``; every field of the task is required.
        env: the env; its current ``task`` gives the type, its ``task_ranges`` the allowed values.
        allow_out_of_range: skip the range check (the env's ``set_task`` may still refuse a value).

    Raises:
        ConfigError: one line naming the allowed fields and ranges.
    """
    base: Any = env.unwrapped  # its task, set_task and task_ranges are the env's own, not gym.Env's
    if callable(getattr(base, "task_from_fields", None)):  # e.g. Meta-World's: a goal named by its index
        return _task_from_fields(spec, base)
    current = getattr(base, "task", None)
    if not dataclasses.is_dataclass(current) or isinstance(current, type):
        raise ConfigError(f"--task: {type(base).__name__} has no dataclass 'task' attribute to fill in")
    fields = [f.name for f in dataclasses.fields(current)]
    ranges: dict[str, tuple[float, float]] = getattr(base, "task_ranges", {})
    hint = _allowed(fields, ranges)
    values: dict[str, float] = {}
    for item in (part.strip() for text in spec for part in text.split(",")):
        name, sep, text = (s.strip() for s in item.partition("="))
        if not sep or not name:
            raise ConfigError(f"--task: {item!r} is not field=value; {hint}")
        if name not in fields:
            raise ConfigError(f"--task: unknown field {name!r}{closest(name, fields)}; {hint}")
        if name in values:
            raise ConfigError(f"--task: {name} is given twice; {hint}")
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise ConfigError(f"--task: {name}={text!r} is not a finite number; {hint}")
        low, high = ranges.get(name, (-math.inf, math.inf))
        if not allow_out_of_range and not low <= value <= high:
            raise ConfigError(
                f"--task: {name}={text} is outside the task distribution ([{low:g}, {high:g}]; "
                f"--allow-out-of-range probes extrapolation); {hint}"
            )
        values[name] = value
    missing = [name for name in fields if name not in values]
    if missing:
        raise ConfigError(f"--task: missing {', '.join(missing)}; {hint}")
    task = type(current)(**values)
    try:
        if hasattr(base, "set_task"):
            base.set_task(task)
        else:
            base.task = task
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"--task: {type(base).__name__} refuses {task}: {exc}; {hint}") from None
    return task


def choose_gl_backend() -> str:
    """Return ``MUJOCO_GL``, first setting it to the first of egl, osmesa that renders a frame here.

    Each candidate is tried in a subprocess, since a backend that fails can leave this process unusable and
    ``MUJOCO_GL`` only takes effect before mujoco is first imported.

    Raises:
        ConfigError: neither works; names the packages to install.
    """
    if os.environ.get("MUJOCO_GL"):
        return os.environ["MUJOCO_GL"]
    failures = []
    for backend in GL_BACKENDS:
        env = {**os.environ, "MUJOCO_GL": backend}
        env.pop("PYOPENGL_PLATFORM", None)
        try:
            probe = subprocess.run(
                [sys.executable, "-c", _GL_PROBE], env=env, capture_output=True, text=True, timeout=60
            )
        except subprocess.TimeoutExpired:
            failures.append(f"{backend}: timed out")
            continue
        if probe.returncode == 0:
            os.environ["MUJOCO_GL"] = backend
            return backend
        lines = probe.stderr.strip().splitlines()
        failures.append(f"{backend}: {lines[-1][:80] if lines else f'exit code {probe.returncode}'}")
    packages = " or ".join(GL_BACKENDS.values())
    raise ConfigError(
        f"render: no off-screen OpenGL for MuJoCo ({'; '.join(failures)}); install {packages} "
        "(e.g. apt-get install libegl1) or set MUJOCO_GL"
    )


def _task_from_fields(spec: Sequence[str], base: Any) -> Task:
    """The task an env builds itself from ``field=value`` items (its ``task_from_fields``), set on the env."""
    values: dict[str, str] = {}
    for item in (part.strip() for text in spec for part in text.split(",")):
        name, sep, text = (s.strip() for s in item.partition("="))
        if not sep or not name or name in values:
            raise ConfigError(f"--task: {item!r} is not one more field=value; {base.task_fields_hint}")
        values[name] = text
    try:
        task = base.task_from_fields(values)
        base.task = task
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"--task: {exc}; {base.task_fields_hint}") from None
    return task


def _is_mujoco(env: gym.Env) -> bool:
    return hasattr(env.unwrapped, "model") and hasattr(env.unwrapped, "data")


def _is_plane(env: gym.Env) -> bool:
    return not _is_mujoco(env) and getattr(env.observation_space, "shape", None) == (2,)


def adapted_params(
    learner: Adapter,
    collector: VectorCollector,
    task: Task,
    steps: Sequence[int],
    step_sizes: Sequence[float],
    rng: np.random.Generator,
    generator: torch.Generator,
) -> dict[int, Params]:
    """Parameters ``[1, ...]`` after each of ``steps`` inner steps on ``task``, as in evaluation.

    Before every step, fresh support episodes are collected with the parameters adapted so far.
    ``step_sizes`` holds one size per step up to ``max(steps)``.
    """
    params = learner.initial_params(1)
    out = {}
    for k in range(max(steps) + 1):
        if k in steps:
            out[k] = params
        if k < max(steps):
            batch = collector.collect([task], learner.policy_fn(params, generator), int(rng.integers(2**31)))
            params = learner.adapt(params, batch, step_sizes[k])
    return out


def mean_action(policy: nn.Module, params: Params) -> Callable[[np.ndarray], np.ndarray]:
    """Deterministic policy: observation ``[obs_dim]`` -> mean action ``[act_dim]`` of ``params [1, ...]``.

    ``policy`` maps observations to ``(mean, log_std)``, as ``agents.policies.GaussianMLPPolicy`` does.
    """
    single = {name: value[0] for name, value in params.items()}

    @torch.no_grad()
    def act(observation: np.ndarray) -> np.ndarray:
        obs = torch.as_tensor(np.asarray(observation, dtype=np.float32).reshape(1, -1))
        return functional_call(policy, single, (obs,))[0][0].numpy()

    return act


def record_episode(
    env: gym.Env,
    act: Callable[[np.ndarray], np.ndarray],
    to_env: Callable,
    seed: int,
    horizon: int,
    steps: int,
) -> Episode:
    """Play one episode of ``act`` (adapted ``steps`` times) for at most ``horizon`` env steps.

    Actions go through ``to_env`` (the collector's rescale and clip); the env is filmed when it renders
    ``rgb_array``.
    """
    obs, _ = env.reset(seed=seed)
    observations, rewards, frames = [np.asarray(obs, dtype=np.float64).reshape(-1)], [], []
    for _ in range(horizon):
        obs, reward, terminated, truncated, _ = env.step(to_env(act(obs)))
        observations.append(np.asarray(obs, dtype=np.float64).reshape(-1))
        rewards.append(float(reward))
        if env.render_mode == "rgb_array":
            frames.append(np.asarray(env.render(), dtype=np.uint8))
        if terminated or truncated:
            break
    return Episode(steps, np.stack(observations), np.asarray(rewards), frames)


def make_env(env_id: str, options: RenderOptions) -> gym.Env:
    """The one env that is rendered: filmed (``rgb_array`` at ``options.size``) unless 2-D or the viewer."""
    env = gym.make(env_id, max_episode_steps=options.horizon)
    if options.viewer and not _is_mujoco(env):
        env.close()
        raise ConfigError(f"--viewer: {env_id!r} has no MuJoCo model to show; write a .gif instead")
    if options.viewer or _is_plane(env):
        return env
    if _is_mujoco(env) and options.gl_error is not None:
        raise options.gl_error
    env.close()
    size: dict[str, Any] = {"width": options.size, "height": options.size}
    try:
        return gym.make(env_id, max_episode_steps=options.horizon, render_mode="rgb_array", **size)
    except TypeError:  # an env without width/height: its frames are resized instead
        return gym.make(env_id, max_episode_steps=options.horizon, render_mode="rgb_array")


def play_viewer(env: gym.Env, policies: dict[int, Callable], to_env: Callable, seconds: float | None) -> None:
    """Play episodes in ``mujoco.viewer`` in real time, cycling through ``policies``, until it closes."""
    import mujoco.viewer

    base: Any = env.unwrapped  # a MuJoCo env: model, data and dt are its own, not gym.Env's
    episode, before = 0, set(threading.enumerate())
    with mujoco.viewer.launch_passive(base.model, base.data) as viewer:
        stop = time.monotonic() + seconds if seconds is not None else math.inf  # from when it is open
        while viewer.is_running() and time.monotonic() < stop:
            k = list(policies)[episode % len(policies)]
            with viewer.lock():
                obs, _ = env.reset(seed=episode)
            viewer.sync()
            rewards, done = [], False
            while not done and viewer.is_running() and time.monotonic() < stop:
                tick = time.monotonic()
                with viewer.lock():
                    obs, reward, terminated, truncated, _ = env.step(to_env(policies[k](obs)))
                viewer.sync()
                rewards.append(float(reward))
                done = terminated or truncated
                time.sleep(max(0.0, base.dt - (time.monotonic() - tick)))
            end = "" if done else " (stopped early)"
            print(
                f"viewer: {steps_text(k)}: {len(rewards)} env steps, return {sum(rewards):.1f}{end}",
                file=sys.stderr,
            )
            episode += 1
    for thread in set(threading.enumerate()) - before:
        # The viewer's (daemon) thread tears down its GL context after close; exiting first can crash.
        thread.join(timeout=10)


def render_run(
    learner: Any, collector: VectorCollector, env_id: str, options: RenderOptions
) -> tuple[Task, dict[int, float]]:
    """Adapt ``learner`` on the task in ``options`` and write the video (or open the viewer).

    Args:
        learner: an :class:`~metarl.core.types.Adapter` with a ``policy`` module (``MAMLTRPO``).
        collector: collects support episodes of one task.
        env_id: the registered id to render.
        options: what to render.

    Returns:
        The task and the return of each rendered episode by step count (empty for the viewer).
    """
    if not options.viewer:
        check_output(options.out)
    env = make_env(env_id, options)
    try:
        task = parse_task(options.task, env, options.allow_out_of_range)
        rng, generator = evaluation_generators(options.seed)
        sizes = options.step_sizes[: max(options.steps)]
        params = adapted_params(learner, collector, task, options.steps, sizes, rng, generator)
        policies = {k: mean_action(learner.policy, p) for k, p in params.items()}
        if options.viewer:
            play_viewer(env, policies, collector.env_actions, options.viewer_seconds)
            return task, {}
        seed, horizon = int(rng.integers(2**31)), options.horizon or collector.horizon
        episodes = [
            record_episode(env, act, collector.env_actions, seed, horizon, k) for k, act in policies.items()
        ]
        if _is_plane(env):
            frames = plane_frames(episodes, task, options.size)
        else:
            frames = side_by_side(episodes, task, options.size)
        write_video(frames, options.out, float(env.metadata.get("render_fps") or 30))
        return task, {e.steps: float(e.rewards.sum()) for e in episodes}
    finally:
        env.close()
