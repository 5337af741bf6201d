"""``metarl render``: video (or the live viewer) of a policy before and after adapting to one task."""

from __future__ import annotations

import argparse
from pathlib import Path

from metarl.app.build import build, build_collector, use_local_collector
from metarl.app.runs import load_policy, output_path
from metarl.collection import VectorCollector
from metarl.config import FewShotConfig, config_from_dict
from metarl.core.errors import ConfigError
from metarl.training.checkpoints import load_checkpoint, resolve_target
from metarl.viz import render


def cmd_render(args: argparse.Namespace) -> int:
    """``metarl render``: video (or live viewer) of the policy before and after k inner steps on one task."""
    gl_error = None
    if not args.viewer:
        # MUJOCO_GL takes effect only if set before mujoco is first imported, which build() may do.
        try:
            render.choose_gl_backend()
        except ConfigError as exc:
            gl_error = exc  # raised later only if a MuJoCo env must be filmed; 2-D plots need no OpenGL
    target = Path(args.target)
    path, default_out = resolve_target(target)
    state = load_checkpoint(path)
    config = config_from_dict(state["config"])
    use_local_collector(config)  # rendering needs the in-process collector's action mapping
    if isinstance(config, FewShotConfig):
        raise ConfigError(
            f"render: {str(target)!r} is a few-shot ({config.data.dataset}) run; render shows policies"
        )
    out = output_path(args.out, default_out / "rollout.gif")
    if args.episodes is not None and args.episodes < 1:
        raise ConfigError(f"--episodes: must be >= 1, got {args.episodes}")
    steps = render.parse_steps(args.steps)
    config.evaluation.steps = max(steps)
    options = render.RenderOptions(
        task=args.task or [],
        steps=steps,
        out=out,
        seed=config.evaluation.seed if args.seed is None else args.seed,
        step_sizes=config.evaluation_step_sizes,
        size=args.size,
        horizon=args.horizon,
        allow_out_of_range=args.allow_out_of_range,
        viewer=args.viewer,
        viewer_seconds=args.viewer_seconds,
        gl_error=gl_error,
    )
    learner = build(config).learner
    collector = build_collector(config, num_tasks=1, episodes=args.episodes)
    assert isinstance(collector, VectorCollector)  # collector.backend: local
    load_policy(learner, state)
    try:
        task, returns = render.render_run(learner, collector, config.env.id, options)
    finally:
        collector.close()
    if not args.viewer:
        print(f"wrote {out} ({task})")
        print(
            "return of the rendered episode after k steps: "
            + ", ".join(f"{k}: {r:.2f}" for k, r in returns.items())
        )
    return 0
