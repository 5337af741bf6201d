"""The ``metarl`` console script: the one place that wires envs, agents and the core together.

``metarl train CONFIG.yaml [--seed N] [--run-dir DIR] [--set section.key=value ...]``
``metarl train --resume RUN_DIR [--set meta.iterations=N]``
``metarl evaluate RUN_DIR_OR_CHECKPOINT [--tasks 40] [--steps 3] [--episodes 20] [--seed 1] [--out DIR]``
``metarl render RUN_DIR_OR_CHECKPOINT --task field=value [--steps 0,1,3] [--out rollout.gif|.mp4] [--viewer]``
``metarl baseline {pretrained,oracle} CONFIG.yaml [--seed N] [--run-dir DIR] [--set key=value ...]``

A config with ``data.dataset`` set (``experiments/sinusoid.yaml``, ``experiments/omniglot-5w1s.yaml``, ...)
is a supervised few-shot run: ``train`` and ``evaluate`` then use :mod:`metarl.training.fewshot`.

User mistakes end with one line on stderr and exit code 2; nothing already written is touched.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import signal
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import gymnasium as gym
import numpy as np
import torch
import yaml

from metarl.collection import Collector, collector_from_config
from metarl.config import Config, config_from_dict, config_to_dict, config_value, load_config
from metarl.core.errors import CheckpointError, ConfigError, Interrupted, RunError, Stopped
from metarl.core.tasks import TaskDistribution, import_task_modules, make_task_distribution
from metarl.training.allocator import keep_freed_memory
from metarl.training.checkpoints import atomic_write, load_checkpoint, resolve_target
from metarl.training.run_files import (
    UNCHANGED,
    check_config_matches,
    check_metrics,
    checkpoint_iteration,
    damaged,
)
from metarl.training.run_lock import hold_run_dir, in_use_message, lock_holder
from metarl.training.stopping import raise_interrupted

if TYPE_CHECKING:
    from metarl.agents.maml_trpo import MAMLTRPO

#: keys that may change when resuming a run; any other difference is a different experiment (every collector
#: backend returns the same episodes, so a run may resume on another backend or cluster)
RESUMABLE_CHANGES = (
    "meta.iterations",
    "logging.",
    "device",
    "collector.backend",
    "collector.workers",
    "collector.start_method",
    "collector.address",
    "collector.timeout_s",
    "collector.startup_timeout_s",
    "collector.max_restarts",
)
#: keys that change how the TRPO step is computed, not what is learned from; they may change on ``--resume``,
#: and each change is appended to ``RUN_DIR/resumes.csv`` with the iteration it took effect
RECORDED_RESUMABLE_CHANGES = (
    "num_threads",
    "trpo.fisher_product",
    "trpo.fisher_subsample",
    "trpo.fisher_subsample_grow_at",
)
#: modules a worker process imports to register the task distributions (plus the config's env.imports)
TASK_IMPORTS = ("metarl.envs",)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"metarl: error: {message} (see '{self.prog} --help')\n")


@dataclasses.dataclass(frozen=True)
class RLBuild:
    """What :func:`build` makes of a meta-RL config: the task distribution and the learner.

    Attributes:
        distribution: the task distribution (an env of ``env.id`` with ``sample_tasks``).
        learner: MAML-TRPO around the seeded policy.
    """

    distribution: TaskDistribution
    learner: MAMLTRPO


def build(config: Config) -> RLBuild:
    """Task distribution and MAML-TRPO learner for ``config``; the policy is seeded by ``config.seed``.

    The policy's sizes come from the task distribution's spaces: a command that needs no collector starts no
    worker processes or Ray (:func:`build_collector` makes one).
    """
    from metarl import envs  # noqa: F401  (registers the metarl/* ids)
    from metarl.agents.maml_trpo import MAMLTRPO
    from metarl.agents.policies import GaussianMLPPolicy

    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    import_task_modules(config.env.imports)
    distribution = make_task_distribution(config.env.id)
    action_space = distribution.action_space
    if not isinstance(action_space, gym.spaces.Box):
        raise ConfigError(
            f"env.id: {config.env.id!r} has a {type(action_space).__name__} action space; "
            "MAML-TRPO here needs Box"
        )
    obs_dim = int(np.prod(distribution.observation_space.shape))
    act_dim = int(np.prod(action_space.shape))
    if config.method == "oracle":
        from metarl.envs.wrappers import task_features

        obs_dim += task_features(distribution.sample_tasks(1, np.random.default_rng(0))[0]).shape[0]
    with torch.random.fork_rng():
        torch.manual_seed(config.seed)
        policy = GaussianMLPPolicy(
            obs_dim,
            act_dim,
            tuple(config.policy.hidden_sizes),
            config.policy.activation,
            config.policy.init_std,
        )
    if config.device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(
            f"device: {config.device!r} but torch sees no CUDA device here (torch {torch.__version__}); "
            "use cpu, or a CUDA build of torch on a machine with a GPU"
        )
    # the pretrained baseline is the same TRPO with no inner step during training
    inner = dataclasses.replace(config.inner, steps=0) if config.method == "pretrained" else config.inner
    return RLBuild(distribution, MAMLTRPO(policy, inner, config.meta, config.trpo, config.device))


def _build_for_benchmark(
    config: Config, num_tasks: int, episodes: int
) -> tuple[TaskDistribution, Collector, MAMLTRPO]:
    """``(distribution, collector, learner)``: the builder the benchmark times."""
    built = build(config)
    return built.distribution, build_collector(config, num_tasks, episodes), built.learner


def build_collector(config: Config, num_tasks: int | None = None, episodes: int | None = None) -> Collector:
    """The ``collector.backend`` collector of ``config``; the caller closes it.

    ``num_tasks`` and ``episodes`` default to ``meta.batch_size`` and ``meta.episodes_per_task``.
    """
    return collector_from_config(
        config.collector,
        config.env.id,
        TASK_IMPORTS + tuple(config.env.imports),
        num_tasks or config.meta.batch_size,
        episodes or config.meta.episodes_per_task,
    )


def build_fewshot(config: Config):
    """Few-shot task distribution and learner for ``config`` (``data.dataset`` set); the net is seeded.

    Image data is read and checked here: too few classes or images for the train and test settings raise a
    one-line :class:`ConfigError`.
    """
    from metarl.agents.fewshot_models import FewShotConvNet, FewShotMLP
    from metarl.agents.maml_supervised import SupervisedMAML
    from metarl.envs.fewshot import make_fewshot_tasks

    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    data = config.data
    tasks = make_fewshot_tasks(data.dataset, data.root, data.ways, data.train_classes, data.cache_dir)
    if tasks.kind == "classification":
        tasks.check("train", data.shots, data.query_shots)
        tasks.check("test", *config.evaluation_shots)
    with torch.random.fork_rng():
        torch.manual_seed(config.seed)
        if tasks.kind == "regression":
            net = FewShotMLP(tasks.input_shape[0], tasks.num_outputs, tuple(config.model.hidden_sizes))
        else:
            net = FewShotConvNet(
                tasks.input_shape, tasks.num_outputs, config.model.filters, config.model.max_pool
            )
    return tasks, SupervisedMAML(net, tasks.kind, config.inner, config.meta)


def _default_run_dir(config: Config, config_path: Path) -> Path:
    env_name = config.data.dataset if config.is_fewshot else config.env.id.split("/")[-1]
    stamp = time.strftime("%Y%m%d-%H%M%S")
    method = "" if config.method == "maml" else f"__{config.method}"
    return Path(config.logging.runs_root) / f"{env_name}__{config_path.stem}{method}__s{config.seed}__{stamp}"


def _diff(a: dict, b: dict, prefix: str = "") -> list[str]:
    keys = sorted(set(a) | set(b))
    out = []
    for key in keys:
        va, vb = a.get(key), b.get(key)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += _diff(va, vb, f"{prefix}{key}.")
        elif va != vb:
            out.append(f"{prefix}{key}")
    return out


def _prepare_train(args: argparse.Namespace) -> tuple[Config, Path, bool, Callable[[], None]]:
    """``(config, run_dir, resume, record)``; ``record()`` appends this resume's changes to ``resumes.csv``.

    ``record`` is called once the run has been rebuilt, so a resume that fails on the way (a device that is
    not there, say) leaves ``resumes.csv`` as it was.
    """
    overrides = list(args.set or [])
    if args.seed is not None:
        overrides.append(f"seed={args.seed}")
    if args.device is not None:
        overrides.append(f"device={args.device}")
    if args.resume:
        if args.config or args.run_dir:
            raise ConfigError("--resume: give only the run directory; its config.yaml and folder are reused")
        run_dir = Path(args.resume)
        if not (run_dir / "config.yaml").is_file():
            raise ConfigError(f"--resume: {str(run_dir)!r} is not a run directory (no config.yaml)")
        config_path = run_dir / "config.yaml"
        if not config_path.read_text(errors="replace").strip():
            raise damaged(
                config_path, "is empty (a run's config.yaml holds every setting it was trained with)"
            )
        try:
            stored = load_config(config_path)
        except ConfigError as exc:  # a damaged or hand-edited config.yaml: name it
            message = str(exc)
            raise ConfigError(
                message if str(config_path) in message else f"{config_path}: {message}"
            ) from None
        config = load_config(config_path, overrides)
        differences = _diff(config_to_dict(stored), config_to_dict(config))
        changed = [k for k in differences if not k.startswith(RESUMABLE_CHANGES + RECORDED_RESUMABLE_CHANGES)]
        if changed:
            raise ConfigError(
                f"--resume: the run was trained with another {', '.join(changed)}; only meta.iterations, "
                "logging.*, device, num_threads, trpo.fisher_product, trpo.fisher_subsample(_grow_at) and "
                "the collector's backend, workers, start_method, address, timeout_s, startup_timeout_s and "
                "max_restarts may change when resuming (start a new run instead)"
            )
        latest = run_dir / "checkpoints" / "latest.pt"
        recorded = [k for k in differences if k.startswith(RECORDED_RESUMABLE_CHANGES)]
        if not latest.exists():
            warnings.warn(
                f"--resume: {str(run_dir)!r} has no checkpoint yet (stopped before the first one); "
                "training it from iteration 0",
                UserWarning,
                stacklevel=2,
            )
            return config, run_dir, False, _nothing
        iteration = _check_resumable(run_dir, stored)
        if not recorded:
            return config, run_dir, True, _nothing
        return (
            config,
            run_dir,
            True,
            lambda: _record_resume_changes(run_dir, iteration, recorded, stored, config),
        )
    if args.config is None:
        raise ConfigError("train: give a CONFIG.yaml or --resume RUN_DIR")
    config = load_config(args.config, overrides)
    run_dir = Path(args.run_dir) if args.run_dir else _default_run_dir(config, Path(args.config))
    if run_dir.exists() and any(run_dir.iterdir()):
        holder = lock_holder(run_dir)
        if holder is not None:
            raise ConfigError(f"--run-dir: {in_use_message(run_dir, holder)}")
        raise ConfigError(
            f"--run-dir: {str(run_dir)!r} already holds a run; use --resume {run_dir} or another folder"
        )
    return config, run_dir, False, _nothing


def _check_resumable(run_dir: Path, stored: Config) -> int:
    """The iteration ``latest.pt`` holds, once every file a resume reads or rewrites has been checked.

    Raises:
        CheckpointError: a damaged or hand-edited checkpoint, ``config.yaml`` or ``metrics.csv``
            (:mod:`metarl.training.run_files`), before anything is written.
    """
    latest, best = run_dir / "checkpoints" / "latest.pt", run_dir / "checkpoints" / "best.pt"
    state = load_checkpoint(latest)
    keys = ("numpy_rng", "optimizer") if stored.is_fewshot else ("numpy_rng", "torch_rng", "best_return")
    iteration = checkpoint_iteration(latest, state, keys)
    try:
        with warnings.catch_warnings():  # its warnings were shown when it was trained
            warnings.simplefilter("ignore")
            trained = config_to_dict(config_from_dict(state["config"]))
    except (ConfigError, TypeError, AttributeError) as exc:
        raise damaged(latest, f"its config is not a valid one ({exc})") from None
    check_config_matches(
        run_dir / "config.yaml",
        config_to_dict(stored),
        trained,
        RESUMABLE_CHANGES + RECORDED_RESUMABLE_CHANGES,
    )
    check_metrics(run_dir / "metrics.csv", iteration, latest)
    if best.exists() and not stored.is_fewshot:
        try:
            load_checkpoint(best)
        except CheckpointError as exc:
            raise CheckpointError(
                f"{exc}: the run would overwrite it; move it away to resume without it ({UNCHANGED})"
            ) from None
    return iteration


def _nothing() -> None:
    """A ``record`` with nothing to record."""


def _record_resume_changes(
    run_dir: Path, iteration: int, keys: list[str], before: Config, after: Config
) -> None:
    """Append ``iteration,key,before,after,date`` rows to ``run_dir/resumes.csv`` and say so on stderr.

    The rows say from which iteration on the run was computed another way (the metrics do not show it).
    """
    import csv
    import datetime
    import io

    path = run_dir / "resumes.csv"
    old = path.read_text() if path.is_file() else "first_iteration,key,before,after,date\n"
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    today = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    for key in keys:
        old_value, new_value = config_value(before, key), config_value(after, key)
        writer.writerow([iteration + 1, key, old_value, new_value, today])
        print(
            f"--resume: {key} changes from {old_value!r} to {new_value!r} at iteration "
            f"{iteration + 1} (recorded in {path})",
            file=sys.stderr,
        )
    text = old + buffer.getvalue()
    atomic_write(path, text)


def cmd_train(args: argparse.Namespace) -> int:
    """``metarl train``."""
    config, run_dir, resume, record = _prepare_train(args)
    if config.is_fewshot:
        return _train_fewshot(config, run_dir, resume, record)
    if config.method == "oracle":
        raise ConfigError("method: 'oracle' runs are trained by 'metarl baseline oracle CONFIG.yaml'")
    return _train_run(config, run_dir, resume, record)


def _train_run(config: Config, run_dir: Path, resume: bool, record: Callable[[], None] = _nothing) -> int:
    """Meta-train (or, for ``method: pretrained``, train without inner steps), then evaluate."""
    from metarl.training.rl import train
    from metarl.viz.plots import plot_learning_curve

    built = build(config)
    distribution, learner = built.distribution, built.learner
    collector = build_collector(config)
    if resume:  # a state that does not fit stops here, before the run's files are touched
        try:
            latest = run_dir / "checkpoints" / "latest.pt"
            _load_policy(learner, load_checkpoint(latest), latest)
        except BaseException:
            collector.close()
            raise
    _make_run_dir(config, run_dir)
    record()
    try:
        metrics = train(config, run_dir, learner, collector, distribution, resume=resume)
    finally:
        collector.close()
    plot_learning_curve(run_dir / "metrics.csv", run_dir / "learning_curve.png", config.env.id)
    summary = _evaluate_methods(config, run_dir, learner, distribution, [], [])
    if metrics:
        print(
            f"last iteration: return before {metrics['meta/return_before']:.2f}, "
            f"after {metrics['meta/return_after']:.2f}"
        )
    _print_summary(summary)
    return 0


def _load_policy(learner, state: dict, path: Path | None = None) -> None:
    """Load a checkpoint's ``policy`` entry into ``learner`` (with its learned step sizes, if any).

    Raises:
        CheckpointError: a state that does not fit the config stored beside it (``path`` names the file).
    """
    try:
        learner.load_state_dict(state["policy"])
    except (RuntimeError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise _misfit(path, exc) from None


def _misfit(path: Path | None, exc: Exception) -> CheckpointError:
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    detail = "; ".join(lines[1:3] or lines[:1])[:200]  # torch's first line only says "Error(s) in loading"
    if path is None:
        return CheckpointError(f"checkpoint: its policy does not match its config ({detail})")
    return damaged(path, f"its policy does not fit the run's config.yaml ({detail})")


def _make_run_dir(config: Config, run_dir: Path) -> None:
    """Take the run directory for this process (its lock, held until the command ends), write config.yaml."""
    if _RUN_LOCKS is not None:
        _RUN_LOCKS.enter_context(hold_run_dir(run_dir))
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"--run-dir: cannot create {str(run_dir)!r}: {exc.strerror}") from None
    text = yaml.safe_dump(config_to_dict(config), sort_keys=False)
    atomic_write(run_dir / "config.yaml", text)
    print(f"run directory: {run_dir}", file=sys.stderr)


def cmd_baseline(args: argparse.Namespace) -> int:
    """``metarl baseline {pretrained,oracle} CONFIG.yaml``: train a baseline into its own run directory."""
    args.set = [*(args.set or []), f"method={args.kind}"]
    args.resume, args.device = None, None
    config, run_dir, _, _ = _prepare_train(args)
    if args.kind == "pretrained":
        return _train_run(config, run_dir, resume=False)
    return _train_oracle(config, run_dir)


def _train_oracle(config: Config, run_dir: Path) -> int:
    """PPO with the task in the observation; the actor is saved as a metarl checkpoint and evaluated."""
    from metarl.agents.oracle import train_oracle_ppo
    from metarl.envs.wrappers import TaskInObservation
    from metarl.training.checkpoints import save_checkpoint

    distribution = build(config).distribution  # checks the config and env first
    _make_run_dir(config, run_dir)
    env_id, oracle = config.env.id, config.oracle
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    start = time.perf_counter()
    policy = train_oracle_ppo(
        lambda: TaskInObservation(gym.make(env_id)),
        timesteps=oracle.timesteps,
        num_envs=oracle.num_envs,
        hidden_sizes=tuple(config.policy.hidden_sizes),
        activation=config.policy.activation,
        gamma=config.meta.gamma,
        seed=config.seed,
        out_dir=run_dir,
        ppo_kwargs={
            "n_steps": oracle.n_steps,
            "batch_size": oracle.batch_size,
            "n_epochs": oracle.n_epochs,
            "learning_rate": oracle.learning_rate,
            "gae_lambda": oracle.gae_lambda,
            "clip_range": oracle.clip_range,
        },
        progress=config.logging.progress,
    )
    print(f"oracle PPO: {oracle.timesteps} env steps in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    payload = {
        "iteration": oracle.timesteps,
        "policy": {k: v.detach().clone() for k, v in policy.state_dict().items()},
        "config": config_to_dict(config),
    }
    save_checkpoint(run_dir / "checkpoints" / "latest.pt", payload)
    # the oracle's task-augmented policy is sampled in this process
    config = dataclasses.replace(config, collector=dataclasses.replace(config.collector, backend="local"))
    learner = build(config).learner
    learner.policy.load_state_dict(payload["policy"])
    _print_summary(_evaluate_methods(config, run_dir, learner, distribution, [], []))
    return 0


def _train_fewshot(config: Config, run_dir: Path, resume: bool, record: Callable[[], None] = _nothing) -> int:
    """``metarl train`` of a few-shot config: meta-train, learning curve, adaptation curve on test tasks."""
    from metarl.evaluation import evaluate_fewshot
    from metarl.training.fewshot import train_fewshot
    from metarl.viz.plots import plot_learning_curve

    tasks, learner = build_fewshot(config)
    if resume:  # a state that does not fit stops here, before the run's files are touched
        latest = run_dir / "checkpoints" / "latest.pt"
        state = load_checkpoint(latest)
        try:
            learner.model.load_state_dict(state["policy"])
            learner.optimizer.load_state_dict(state["optimizer"])
        except (RuntimeError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise _misfit(latest, exc) from None
    _make_run_dir(config, run_dir)
    record()
    begin = time.perf_counter()
    metrics = train_fewshot(config, run_dir, learner, tasks, resume=resume)
    seconds = time.perf_counter() - begin
    columns = (("meta/loss_before", "query loss before adaptation"), ("meta/loss_after", "after adaptation"))
    plot_learning_curve(
        run_dir / "metrics.csv",
        run_dir / "learning_curve.png",
        config.data.dataset,
        columns,
        "query loss",
        True,
    )
    summary = evaluate_fewshot(learner, tasks, config, run_dir)
    if metrics:
        print(
            f"trained to iteration {config.meta.iterations} in {seconds:.1f} s; last query loss "
            f"before {metrics['meta/loss_before']:.4f}, after {metrics['meta/loss_after']:.4f}"
        )
    _print_summary(summary)
    return 0


def _evaluate_fewshot(config: Config, state: dict, out_dir: Path) -> int:
    from metarl.evaluation import evaluate_fewshot

    tasks, learner = build_fewshot(config)
    learner.model.load_state_dict(state["policy"])
    summary = evaluate_fewshot(learner, tasks, config, out_dir)
    print(f"wrote {out_dir / 'adaptation.csv'}, adaptation.json, adaptation.png")
    _print_summary(summary)
    return 0


def _print_summary(summary: dict) -> None:
    if "metric" in summary:  # few-shot: a mean squared error or an accuracy, with its 95% interval
        for method, rows in summary["methods"].items():
            cells = ", ".join(
                f"{r['step']}: {r['mean']:.4f} [{r['ci95_low']:.4f}, {r['ci95_high']:.4f}]" for r in rows
            )
            print(
                f"{summary['metric']} ({method}, {summary['num_tasks']} test tasks, mean [95% interval] "
                f"after k steps) {cells}"
            )
        return
    for method, rows in summary["methods"].items():
        cells = ", ".join(f"{r['step']}: {r['mean']:.2f} ± {r['stderr']:.2f}" for r in rows)
        print(f"adaptation ({method}, {summary['num_tasks']} new tasks, mean ± s.e. after k steps) {cells}")


TARGET_HELP = "a run directory, a folder holding one checkpoint (experiments/pretrained/TASK) or a .pt file"
#: evaluate's options that override the config's evaluation section
EVALUATE_OPTIONS = (
    "tasks",
    "steps",
    "episodes",
    "seed",
    "first_step_size",
    "later_step_size",
    "shots",
    "query_shots",
)


def cmd_evaluate(args: argparse.Namespace) -> int:
    """``metarl evaluate``: adaptation curve of a checkpoint (or a run's latest) on new tasks."""
    path, default_out = resolve_target(args.target)
    state = load_checkpoint(path)
    config = config_from_dict(state["config"])
    config.collector.backend = "local"  # evaluate where you are: the run's workers or cluster may be gone
    for key in EVALUATE_OPTIONS:
        if getattr(args, key) is not None:
            setattr(config.evaluation, key, getattr(args, key))
    config = config_from_dict(config_to_dict(config))
    out_dir = Path(args.out) if args.out else default_out
    if config.is_fewshot:
        if args.baselines or args.compare:
            raise ConfigError("evaluate: --baselines and --compare are for meta-RL runs, not few-shot ones")
        return _evaluate_fewshot(config, state, out_dir)
    compared = [_read_compared(Path(other)) for other in args.compare or []]
    built = build(config)
    distribution, learner = built.distribution, built.learner
    _load_policy(learner, state)
    summary = _evaluate_methods(config, out_dir, learner, distribution, args.baselines or [], compared)
    print(f"wrote {out_dir / 'adaptation.csv'}, adaptation.json, adaptation.png")
    _print_summary(summary)
    return 0


#: step sizes tried when fine-tuning the random-initialisation and pretrained baselines, as multiples of
#: inner.step_size (the paper picked the baselines' step sizes from a small grid)
FINE_TUNE_STEP_GRID = (0.25, 0.5, 1.0, 2.0, 4.0)


def _read_compared(path: Path) -> tuple[str, dict, list]:
    from metarl.evaluation import adaptation_csv_path, read_adaptation_csv

    csv_path = adaptation_csv_path(path)
    try:
        curves, tasks = read_adaptation_csv(csv_path)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return str(csv_path), curves, tasks


def _evaluate_methods(
    config: Config, out_dir: Path, learner, distribution, baselines: list[str], compared: list
):
    """MAML's curve, the requested baselines and the compared runs' curves, all on the same new tasks."""
    from metarl.core.seeding import evaluation_generators
    from metarl.evaluation import adaptation_curve, same_tasks, write_adaptation_files

    collector = build_collector(config, config.evaluation.tasks, config.evaluation.episodes)

    def curve_of(adapter, step_sizes: list[float]):
        rng, gen = evaluation_generators(config.evaluation.seed)  # every method: same tasks, resets and noise
        tasks = distribution.sample_tasks(config.evaluation.tasks, rng)
        if config.method == "oracle" and adapter is learner:
            from metarl.agents.oracle import OracleAdapter
            from metarl.envs.wrappers import task_features

            adapter = OracleAdapter(learner, torch.as_tensor(np.stack([task_features(t) for t in tasks])))
        return tasks, adaptation_curve(adapter, collector, tasks, step_sizes, rng, gen)

    def best_over_grid(adapter) -> tuple[float, list, torch.Tensor]:
        """Fine-tune with each step size of the grid; keep the one with the best final return."""
        trials = {}
        for factor in FINE_TUNE_STEP_GRID:
            first = factor * config.inner.step_size
            sizes = [first if k == 0 else first / 2 for k in range(config.evaluation.steps)]
            tasks, trials[first] = curve_of(adapter, sizes)  # the same tasks every time
        best = max(trials, key=lambda a: trials[a][:, -1].mean().item())
        return best, tasks, trials[best]

    try:
        meta = {"env_id": config.env.id, "seed": config.evaluation.seed}
        if config.method == "pretrained":
            meta["pretrained_step_size"], tasks, curve = best_over_grid(learner)
        else:
            tasks, curve = curve_of(learner, config.evaluation_step_sizes)
            meta["step_sizes"] = config.evaluation_step_sizes
        curves = {config.method: curve}
        if "random" in baselines:
            random_config = config_from_dict(
                {**config_to_dict(config), "seed": config.evaluation.seed + 10_000, "method": "maml"}
            )
            random_learner = build(random_config).learner
            meta["random_step_size"], _, curves["random"] = best_over_grid(random_learner)
        for name, other_curves, other_tasks in compared:
            if not same_tasks(other_tasks, tasks):
                raise ConfigError(
                    f"--compare: {name} was evaluated on other tasks; "
                    "evaluate both with the same --tasks and --seed"
                )
            curves.update({m: c for m, c in other_curves.items() if m not in curves})
    finally:
        collector.close()
    return write_adaptation_files(out_dir, curves, tasks, meta)


def cmd_render(args: argparse.Namespace) -> int:
    """``metarl render``: video (or live viewer) of the policy before and after k inner steps on one task."""
    from metarl.viz import render

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
    config.collector.backend = "local"  # rendering needs the in-process collector's action mapping
    if config.is_fewshot:
        raise ConfigError(
            f"render: {str(target)!r} is a few-shot ({config.data.dataset}) run; render shows policies"
        )
    out = Path(args.out) if args.out else default_out / "rollout.gif"
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
    _load_policy(learner, state)
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


def cmd_benchmark(args: argparse.Namespace) -> int:
    """``metarl benchmark``: collector backends, physics limit and meta-iteration time, in one run."""
    import json

    from metarl import envs  # noqa: F401  (registers the metarl/* ids)
    from metarl.benchmark import format_backend_table, format_table, run_backend_benchmark, run_benchmark
    from metarl.core.tasks import check_env_id

    check_env_id(args.env)
    if args.workers < 1:
        raise ConfigError(f"--workers: must be >= 1, got {args.workers}")
    if not args.backends and not args.env.startswith(("metarl/HalfCheetah", "metarl/Ant")):
        raise ConfigError(
            f"--env: {args.env!r} has no MuJoCo model; benchmark a metarl/HalfCheetah* or metarl/Ant* id"
        )
    out = Path(args.out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"--out: cannot create {str(out.parent)!r}: {exc.strerror}") from None
    command = ["metarl benchmark", "--env", args.env, *(["--quick"] if args.quick else [])]
    if args.backends:
        result = run_backend_benchmark(
            args.env, args.quick, _build_for_benchmark, args.backends, args.workers
        )
        command += ["--backends", *args.backends, "--workers", str(args.workers)]
    else:
        result = run_benchmark(args.env, args.quick, _build_for_benchmark)
    result["date"] = time.strftime("%Y-%m-%d %H:%M:%S")
    result["command"] = " ".join(command)
    atomic_write(out, json.dumps(result, indent=2))
    print(format_backend_table(result) if args.backends else format_table(result))
    print(f"wrote {out}")
    return 0


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
        choices=["local", "subprocess", "ray"],
        help="compare these collector.backend values instead (env steps/s, same run; any task id)",
    )
    bench.add_argument("--workers", type=int, default=2, help="workers of subprocess and ray (default 2)")
    bench.set_defaults(func=cmd_benchmark)
    return parser


#: the run-directory locks the running command holds (:func:`metarl.training.run_lock.hold_run_dir`),
#: released when :func:`main` returns
_RUN_LOCKS: contextlib.ExitStack | None = None


def main(argv: list[str] | None = None) -> int:
    """Run the console script; returns the exit code.

    Exit codes: 0 done; 1 the run stopped on a fault; 2 a user mistake; ``128 + signal`` (130 SIGINT, 143
    SIGTERM) stopped by a signal, after checkpointing the last completed iteration when training.
    """
    global _RUN_LOCKS
    args = make_parser().parse_args(argv)
    keep_freed_memory()
    previous = _stop_on_sigterm()
    with contextlib.ExitStack() as locks:
        _RUN_LOCKS = locks
        try:
            return args.func(args)
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
            _RUN_LOCKS = None
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)


def _stop_on_sigterm():
    """SIGTERM unwinds like Ctrl-C (``finally`` blocks close workers and files); returns the old handler."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, raise_interrupted)


def entry_point() -> None:
    """``metarl`` console-script entry."""
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())


if __name__ == "__main__":
    entry_point()
