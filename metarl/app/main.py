"""The ``metarl`` console script: the parser, the commands it dispatches to, and exit codes.

``metarl train CONFIG.yaml [--seed N] [--run-dir DIR] [--set section.key=value ...]``
``metarl train --resume RUN_DIR [--set meta.iterations=N]``
``metarl evaluate RUN_DIR_OR_CHECKPOINT [--tasks 40] [--steps 3] [--episodes 20] [--seed 1] [--out DIR]``
``metarl render RUN_DIR_OR_CHECKPOINT --task field=value [--steps 0,1,3] [--out rollout.gif|.mp4] [--viewer]``
``metarl baseline {pretrained,oracle} CONFIG.yaml [--seed N] [--run-dir DIR] [--set key=value ...]``
``metarl benchmark [--env ID] [--quick] [--out FILE] [--backends local subprocess ray] [--workers N]``

A config with ``data.dataset`` set (``experiments/sinusoid.yaml``, ``experiments/omniglot-5w1s.yaml``, ...)
is a supervised few-shot run: ``train`` and ``evaluate`` then use :mod:`metarl.training.fewshot`.

User mistakes end with one line on stderr and exit code 2; nothing already written is touched.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn, get_args

from metarl.app.baseline import cmd_baseline
from metarl.app.benchmark import cmd_benchmark
from metarl.app.evaluate import cmd_evaluate
from metarl.app.render import cmd_render
from metarl.app.runs import holding_run_locks
from metarl.app.train import cmd_train
from metarl.config import Backend, BatchUnit, QueryAction, Split
from metarl.core.errors import CheckpointError, ConfigError, Interrupted, RunError, Stopped
from metarl.training.allocator import keep_freed_memory
from metarl.training.stopping import raise_interrupted

#: what ``signal.signal`` returns: the handler it replaced
SignalHandler = Callable[[int, FrameType | None], Any] | int | signal.Handlers | None


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"metarl: error: {message} (see '{self.prog} --help')\n")


def make_parser() -> argparse.ArgumentParser:
    """The argument parser of the console script."""
    parser = _Parser(prog="metarl", description="Model-agnostic meta-learning for Gymnasium and MuJoCo.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    train = commands.add_parser("train", help="meta-train from a YAML config")
    train.add_argument("config", nargs="?", help="experiment YAML, e.g. experiments/navigation2d.yaml")
    train.add_argument("--seed", type=int, help="override the config's seed")
    train.add_argument("--run-dir", help="output folder (default: runs/<env>__<config>__s<seed>__<time>)")
    train.add_argument(
        "--set", action="append", metavar="KEY=VALUE", help="override a config key, e.g. meta.iterations=10"
    )
    train.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its latest checkpoint")
    train.add_argument(
        "--init-from",
        metavar="CHECKPOINT",
        help="start a new run from this checkpoint's policy (sets policy.init_from): a run directory, "
        "experiments/pretrained/TASK or a .pt file",
    )
    train.add_argument(
        "--device", help="where the meta-update runs: cpu (default) or cuda[:N]; sampling stays on the CPU"
    )
    train.set_defaults(func=cmd_train)
    evaluate = commands.add_parser("evaluate", help="adaptation curve on new tasks")
    evaluate.add_argument(
        "target",
        help="a run directory, a folder holding one checkpoint (experiments/pretrained/TASK) or a .pt file",
    )
    evaluate.add_argument("--tasks", type=int, help="new tasks (default: the config's evaluation.tasks)")
    evaluate.add_argument("--steps", type=int, help="inner steps")
    evaluate.add_argument("--episodes", type=int, help="episodes per task and step")
    evaluate.add_argument("--seed", type=int, help="seed of the new tasks")
    evaluate.add_argument(
        "--batch-unit",
        choices=get_args(BatchUnit),
        help="what --episodes counts per task and step: episodes, or env steps in whole episodes "
        "(default: the run's collector.batch_unit)",
    )
    evaluate.add_argument(
        "--first-step-size", type=float, help="alpha of the first step (default: inner.step_size)"
    )
    evaluate.add_argument(
        "--later-step-size", type=float, help="alpha of later steps (default: half the first)"
    )
    evaluate.add_argument(
        "--shots", type=int, help="few-shot: support examples per class (default: evaluation.shots)"
    )
    evaluate.add_argument(
        "--query-shots", type=int, help="few-shot: query examples per class (default: evaluation.query_shots)"
    )
    evaluate.add_argument(
        "--split",
        choices=get_args(Split),
        help="test: held-out tasks where the env has them (default: evaluation.split); train: training tasks",
    )
    evaluate.add_argument(
        "--query-episodes",
        type=int,
        help="measure each step on this many separate episodes per task (Meta-World's protocol: 3); "
        "0: on the support episodes (default: evaluation.query_episodes)",
    )
    evaluate.add_argument(
        "--query-action",
        choices=get_args(QueryAction),
        help="how the measuring episodes act: sample, or the mean action (Meta-World's; needs "
        "--query-episodes; default: evaluation.query_action)",
    )
    evaluate.add_argument("--out", help="output folder (default: the run directory)")
    evaluate.add_argument(
        "--baselines", nargs="*", choices=["random"], help="also evaluate a randomly initialised policy"
    )
    evaluate.add_argument(
        "--compare",
        nargs="*",
        metavar="RUN_OR_CSV",
        help="add other runs' adaptation.csv curves to the figure",
    )
    evaluate.set_defaults(func=cmd_evaluate)
    rend = commands.add_parser("render", help="video of the policy before and after adapting to one task")
    rend.add_argument(
        "target",
        help="a run directory, a folder holding one checkpoint (experiments/pretrained/TASK) or a .pt file",
    )
    rend.add_argument(
        "--task", action="append", metavar="FIELD=VALUE", help="task field, e.g. velocity=1.5 or x=0.1,y=-0.2"
    )
    rend.add_argument(
        "--steps", default="0,1", help="inner step counts to show, comma-separated (default 0,1)"
    )
    rend.add_argument("--out", help="a .gif or .mp4 file (default: RUN/rollout.gif)")
    rend.add_argument(
        "--episodes", type=int, help="support episodes per step (default: meta.episodes_per_task)"
    )
    rend.add_argument(
        "--seed", type=int, help="seed of support episodes and resets (default: evaluation.seed)"
    )
    rend.add_argument(
        "--allow-out-of-range", action="store_true", help="accept task values outside the ranges"
    )
    rend.add_argument("--viewer", action="store_true", help="play in the interactive MuJoCo viewer instead")
    rend.add_argument("--size", type=int, default=240, help="panel height and width in pixels (default 240)")
    rend.add_argument("--horizon", type=int, help="env steps per rendered episode (default: the env's)")
    rend.add_argument("--viewer-seconds", type=float, help=argparse.SUPPRESS)
    rend.set_defaults(func=cmd_render)
    base = commands.add_parser(
        "baseline", help="train the paper's baselines: pretrained (TRPO, no inner step) or oracle (PPO)"
    )
    base.add_argument("kind", choices=("pretrained", "oracle"), help="which baseline")
    base.add_argument("config", help="experiment YAML, e.g. experiments/half_cheetah_vel.yaml")
    base.add_argument("--seed", type=int, help="override the config's seed")
    base.add_argument(
        "--run-dir", help="output folder (default: runs/<env>__<config>__<kind>__s<seed>__<time>)"
    )
    base.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override a config key, e.g. oracle.timesteps=500000",
    )
    base.set_defaults(func=cmd_baseline)
    bench = commands.add_parser("benchmark", help="speed of the collector backends and of a meta-iteration")
    bench.add_argument("--env", default="metarl/HalfCheetahVel-v0", help="a MuJoCo task id")
    bench.add_argument("--quick", action="store_true", help="tiny sizes, one repeat (under two minutes)")
    bench.add_argument("--out", default="benchmark.json", help="JSON file to write (default: benchmark.json)")
    bench.add_argument(
        "--backends",
        nargs="+",
        choices=list(get_args(Backend)),
        help="compare these collector.backend values instead (env steps/s, same run; any task id)",
    )
    bench.add_argument("--workers", type=int, default=2, help="workers of subprocess and ray (default 2)")
    bench.set_defaults(func=cmd_benchmark)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the console script; returns the exit code.

    Exit codes: 0 done; 1 the run stopped on a fault; 2 a user mistake; ``128 + signal`` (130 SIGINT, 143
    SIGTERM) stopped by a signal, after checkpointing the last completed iteration when training.
    """
    args = make_parser().parse_args(argv)
    keep_freed_memory()
    previous = _stop_on_sigterm()
    with holding_run_locks(), _one_line_warnings():
        try:
            code: int = args.func(args)
            return code
        except (ConfigError, CheckpointError) as exc:
            print(f"metarl: error: {exc}", file=sys.stderr)
            return 2
        except RunError as exc:
            print(f"metarl: stopped: {exc}", file=sys.stderr)
            return 1
        except OSError as exc:  # a write outside the places that name their file (WriteError)
            where = f"{exc.filename}: " if exc.filename else ""
            print(f"metarl: stopped: {where}{exc.strerror or exc}", file=sys.stderr)
            return 1
        except Stopped as exc:
            print(f"metarl: {exc}", file=sys.stderr)
            return 128 + exc.signum
        except KeyboardInterrupt as exc:
            signum = exc.signum if isinstance(exc, Interrupted) else signal.SIGINT
            print(
                f"metarl: interrupted by {signal.Signals(signum).name}; checkpoints written so far are "
                "intact (resume with --resume RUN_DIR)",
                file=sys.stderr,
            )
            return 128 + signum
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)


#: the installed package's folder: warnings raised from inside it are metarl's own, shown as one line
PACKAGE_DIR = str(Path(__file__).resolve().parents[1])


@contextlib.contextmanager
def _one_line_warnings() -> Iterator[None]:
    """Show metarl's own ``UserWarning`` s (suspicious or ignored settings) as ``metarl: warning: ...``.

    Other warnings keep Python's format; the previous formatter comes back on exit.
    """
    default = warnings.formatwarning

    def formatwarning(
        message: Warning | str, category: type[Warning], filename: str, lineno: int, line: str | None = None
    ) -> str:
        if issubclass(category, UserWarning) and str(Path(filename).resolve()).startswith(PACKAGE_DIR):
            return f"metarl: warning: {message}\n"
        return default(message, category, filename, lineno, line)

    warnings.formatwarning = formatwarning
    try:
        yield
    finally:
        warnings.formatwarning = default


def _stop_on_sigterm() -> SignalHandler:
    """SIGTERM unwinds like Ctrl-C (``finally`` blocks close workers and files); returns the old handler.

    ``None`` off the main thread, where no handler can be set.
    """
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, raise_interrupted)


def entry_point() -> None:
    """``metarl`` console-script entry."""
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())
