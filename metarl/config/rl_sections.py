"""The sections only meta-RL runs use: ``env``, ``policy``, ``trpo``, ``collector``, ``oracle``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, ClassVar

from pydantic import ConfigDict

from metarl.config.choices import (
    Activation,
    Backend,
    BatchUnit,
    FisherProduct,
    OracleAlgorithm,
    StartMethod,
    Vectorization,
)
from metarl.config.fields import Bool, GrowAt, Int, Number, RayAddress, Sizes, Str, setting
from metarl.config.sections import STRICT


@dataclass
class EnvConfig:
    """Which task distribution to meta-train on."""

    __pydantic_config__: ClassVar[ConfigDict] = STRICT

    id: Annotated[
        Str,
        setting(
            "The task distribution. It is checked when the env is built: the id must be registered (after "
            "`env.imports`), and must have a `Box` action space and a `max_episode_steps`. An unknown id is "
            "reported with the closest registered id.",
            allowed="a registered Gymnasium id",
        ),
    ] = "metarl/Navigation2D-v0"
    imports: Annotated[
        list[Str],
        setting(
            "Imported before the env is built, so that they can register your own ids "
            "([CUSTOM_TASKS.md](CUSTOM_TASKS.md)). Paths ending in `.py` are relative to the working "
            "directory. Module names must be importable: installed, or on `PYTHONPATH`. The `metarl` console "
            "script does not put the working directory on the import path.",
            allowed="module names or `.py` paths",
        ),
    ] = field(default_factory=list)


@dataclass
class PolicyConfig:
    """Gaussian MLP (`agents/policies.py`)."""

    __pydantic_config__: ClassVar[ConfigDict] = STRICT

    hidden_sizes: Annotated[
        Sizes,
        setting(
            "Widths of the hidden layers of the MLP that outputs the action mean.",
            paper="`[100, 100]`",
            expected="a non-empty list of sizes >= 1",
            allowed="non-empty, every size `>= 1`",
        ),
    ] = field(default_factory=lambda: [100, 100])
    activation: Annotated[
        Activation,
        setting(
            "Nonlinearity after every hidden layer.",
            paper="`relu`",
        ),
    ] = "relu"
    init_std: Annotated[
        Number,
        setting(
            "Initial standard deviation of every action dimension. The log-std is a learned vector that does "
            "not depend on the state.",
            gt=0,
        ),
    ] = 1.0
    init_from: Annotated[
        Str,
        setting(
            "A checkpoint whose policy (its weights and log-std, and learned step sizes if any) a new run "
            "starts from, in place of a fresh initialisation: a run directory, a folder holding one "
            "checkpoint (`experiments/pretrained/TASK`) or a `.pt` file. The run counts its iterations "
            "from 1 and writes the checkpoint's path, iteration and SHA-256 to `init_from.json`; the "
            "checkpoint must hold a policy of this config's shape. Empty: a fresh policy. "
            "`metarl train --init-from PATH` sets it.",
            expected="a checkpoint path, or empty",
        ),
    ] = ""


@dataclass
class TRPOConfig:
    """Meta-update."""

    __pydantic_config__: ClassVar[ConfigDict] = STRICT

    max_kl: Annotated[
        Number,
        setting(
            "Trust-region radius. The full step is scaled so that `0.5 sᵀ F s = max_kl`. The line search "
            "accepts a step only if the mean KL between the old and new adapted policies is `<= max_kl`.",
            paper="0.01",
            gt=0,
        ),
    ] = 0.01
    cg_iterations: Annotated[
        Int,
        setting(
            "Conjugate-gradient iterations. CG stops early once the squared residual falls below 1e-10.",
            paper="rllab: 10",
            ge=1,
        ),
    ] = 10
    cg_damping: Annotated[
        Number,
        setting(
            "Added as `cg_damping * v` to every Fisher-vector product.",
            paper="rllab: 1e-5",
            ge=0,
        ),
    ] = 1e-5
    ls_ratio: Annotated[
        Number,
        setting(
            "Line-search shrink factor. Candidate `k` (from 1) is `theta - ls_ratio^(k-1) * full_step`.",
            paper="rllab: 0.8",
            gt=0,
            lt=1,
        ),
    ] = 0.8
    ls_max_steps: Annotated[
        Int,
        setting(
            "Line-search candidates tried before the update is rejected, which leaves the parameters "
            "unchanged.",
            paper="rllab: 15",
            ge=1,
        ),
    ] = 15
    vectorize: Annotated[
        Bool,
        setting(
            "Evaluate the per-task TRPO objective for all tasks at once with `torch.func.vmap`. With `false`,"
            " a Python loop over tasks does the same work; this loop is the reference path.",
        ),
    ] = True
    fisher_product: Annotated[
        FisherProduct,
        setting(
            "How the Fisher-vector products through the inner step are computed. `jfj`: `J^T F J v`, with `J`"
            " the Jacobian of the inner adaptation (forward mode in, reverse mode out) and `F` the Fisher of "
            "each adapted Gaussian policy in its outputs; exact at the current parameters, where TRPO "
            "evaluates it (tested equal to `double_backprop` to 1e-9 in float64). `double_backprop`: "
            "differentiate the KL's gradient through the adaptation again (the reference; slower, see "
            "[BENCHMARKS.md](BENCHMARKS.md)). `closed_form`: the same gradient and `J^T F J v` with the "
            "Gaussian MLP policy's derivatives written out (Pearlmutter's R-operator; every primal pass is "
            "computed once per meta-update and reused by all products; tested equal to `jfj` to 1e-10 in "
            "float64); several times faster on a CPU (BENCHMARKS.md). It covers at most one inner step, "
            "`inner.estimator: reinforce` and fixed step sizes; other settings are refused with a one-line "
            "error. Can change on `--resume` (recorded in `resumes.csv`).",
            paper="implementation choice",
        ),
    ] = "jfj"
    fisher_subsample: Annotated[
        Number,
        setting(
            "Fraction of the meta-batch's tasks (the first ones; tasks are i.i.d.) used in the Fisher-vector "
            "products, each task with all of its episodes; 1.0 is exact. Below 1 each product is cheaper and "
            "stays an unbiased estimate; the gradient and the line search, which enforces `max_kl`, still use"
            " every task. Until 2026-12-02 this subsampled *episodes* within each task, which inflated the "
            "Fisher through the inner step's Jacobian and made steps 3.6x shorter "
            "([BENCHMARKS.md](BENCHMARKS.md)). Can change on `--resume` (recorded in `resumes.csv`).",
            paper="TRPO's subsampled Fisher (rllab `subsample_factor`), over tasks",
            gt=0,
            le=1,
            expected="a fraction in (0, 1]",
        ),
    ] = 1.0
    fisher_subsample_grow_at: Annotated[
        GrowAt,
        setting(
            "0 keeps `fisher_subsample` fixed. Above 1: whenever the median over the last 10 meta-updates of "
            "the full step's KL divided by `max_kl` (`trpo/full_step_kl`) exceeds this, the fraction doubles,"
            " up to 1. A subsample that misses directions of high curvature proposes steps whose KL is a "
            "multiple of the quadratic model's; early in training a quarter of the tasks gives nearly the "
            "exact step, late it can be 39 degrees off with 6x the KL (HalfCheetahDir, "
            "[RESULTS.md](RESULTS.md)). The fraction in use is saved in checkpoints and logged as "
            "`trpo/fisher_subsample`. With `inner.steps: 2` the ratio is higher (about 3 at half of the tasks"
            " on HalfCheetahVel, against 1.45 with one step) and the conjugate gradient with all tasks took "
            "2.8x as long as with half (53.7 s against 19.0 s here; one meta-update in training 107 s against"
            " 20 s), so such a run may prefer a fixed fraction. Can change on `--resume` (recorded).",
            paper="new",
            expected="0 (a fixed fraction) or a KL ratio > 1",
            allowed="`0` or `> 1`",
        ),
    ] = 0.0


@dataclass
class CollectorConfig:
    """Rollout collection."""

    __pydantic_config__: ClassVar[ConfigDict] = STRICT

    vectorization: Annotated[
        Vectorization,
        setting(
            "How the `N x E` sub-envs are built. `auto` uses the env's registered `vector_entry_point` if it "
            "has one, and `sync` otherwise. `vector_entry_point` requires one; the fast MuJoCo envs are then "
            "built with `DISABLED` autoreset, so finished episodes are not simulated further. `sync` and "
            "`async` are Gymnasium's `SyncVectorEnv` and `AsyncVectorEnv` with `SAME_STEP` autoreset.",
        ),
    ] = "auto"
    rescale_actions: Annotated[
        Bool,
        setting(
            "| The policy acts in `[-1, 1]` per action dimension and the collector maps that onto the action "
            "space's bounds before clipping (the batch keeps the policy's own samples). Identity for the "
            "MuJoCo tasks (bounds `[-1, 1]`), a factor 0.1 for 2-D navigation. Without it the navigation "
            "policy's initial std of 1 saturates every action and adaptation degrades.",
            paper="rllab's `normalize` in the paper's code",
        ),
    ] = True
    batch_unit: Annotated[
        BatchUnit,
        setting(
            "What a task's batch is counted in. `episodes`: exactly `meta.episodes_per_task` episodes per "
            "task. `steps`: whole episodes until the task has at least `meta.episodes_per_task` x horizon "
            "env steps, as rllab's sampler in the paper's code collected them, so a task whose episodes end "
            "early (a falling ant) gets more, shorter episodes; extra episodes run in rounds of at most "
            "`meta.episodes_per_task` per task (`collector/extra_episodes` counts them) and the batch is "
            "padded to the task with the most. Applies to training and evaluation; `local` backend only.",
            paper="`steps` (rllab's batch size is in samples)",
            allowed="`episodes`, `steps` (with `collector.backend` `local`)",
        ),
    ] = "episodes"
    backend: Annotated[
        Backend,
        setting(
            "Where episodes are collected. `local`: in this process. `subprocess`: `collector.workers` worker"
            " processes on this machine, each stepping whole tasks with its own vector env and policy copy "
            "(one torch thread each), results through shared memory. `ray`: `collector.workers` Ray actors, "
            "on this machine or a cluster. For the same seed every backend returns the same episodes "
            "(tested), so a run may resume on another backend. `metarl train` uses it for training and the "
            "final adaptation curve; `metarl evaluate` and `metarl render` always collect in-process. See "
            "[RELIABILITY.md](RELIABILITY.md) for failures.",
        ),
    ] = "local"
    workers: Annotated[
        Int,
        setting(
            "Worker processes or actors of `subprocess` and `ray`. Each takes an equal share of whole tasks. "
            "Ignored by `local`.",
            ge=1,
            allowed="`>= 1`; `meta.batch_size` a multiple of it unless `local`",
        ),
    ] = 2
    start_method: Annotated[
        StartMethod,
        setting(
            "How `subprocess` starts its workers (both are safe with threads and on every platform; `fork` is"
            " not offered).",
        ),
    ] = "spawn"
    address: Annotated[
        RayAddress,
        setting(
            "`ray` only. Empty: start a local Ray instance (`num_cpus` at least `collector.workers`). `auto`:"
            " join the instance running on this machine (`ray start --head`). `host:port`: join the head at "
            "that address (checked with a 3 s TCP connect, so a wrong address fails at once).",
            expected="empty (start a local Ray instance), auto, or host:port of a Ray head",
            allowed='`""`, `auto`, `host:port`',
        ),
    ] = ""
    timeout_s: Annotated[
        Number,
        setting(
            "A worker that has not returned its share of a collection this many seconds after it was sent is "
            "treated as dead: killed, replaced, and its episodes collected again.",
            gt=0,
            expected="a number of seconds > 0",
        ),
    ] = 600.0
    startup_timeout_s: Annotated[
        Number,
        setting(
            "Extra seconds a newly started or replacement worker gets for its first answer (importing torch "
            "and building the envs, or placing a Ray actor, can take tens of seconds on a loaded machine); "
            "later jobs get `timeout_s` alone.",
            ge=0,
            expected="a number of seconds >= 0",
        ),
    ] = 120.0
    max_restarts: Annotated[
        Int,
        setting(
            "Dead or hung workers replaced within one collection; one more stops the run with a one-line "
            "error (exit code 1), checkpoints intact.",
            ge=0,
        ),
    ] = 3


@dataclass
class OracleConfig:
    """The oracle baseline (`metarl baseline oracle`): a policy told its task, evaluated without adapting.

    `ppo` (the default): stable-baselines3 PPO (`MlpPolicy`, actor and critic with `policy.hidden_sizes` and
    `policy.activation`, discount `meta.gamma`) on envs wrapped in `metarl.envs.wrappers.TaskInObservation`,
    which appends the task's fields to the observation and draws a new task at every reset. Observations and
    rewards are normalised with `VecNormalize` while training; the normalisation is folded into the first
    layer when the actor is copied into a `GaussianMLPPolicy`. The other keys of this section are PPO's.

    `trpo`: the paper's oracle, this package's TRPO (the pretrained baseline's learner: no inner step, the
    linear baseline, `trpo.*`) on the same policy with the task's fields appended to its observations, on the
    training loop of `metarl train`: `meta.batch_size` tasks x `meta.episodes_per_task` episodes per
    iteration for `meta.iterations`, checkpoints, and `metarl train --resume RUN_DIR` to continue.
    """

    __pydantic_config__: ClassVar[ConfigDict] = STRICT

    algorithm: Annotated[
        OracleAlgorithm,
        setting(
            "What trains the oracle. `ppo`: stable-baselines3 PPO for `oracle.timesteps` env steps. `trpo`: "
            "this package's TRPO on the task-augmented policy, `meta.*` and `trpo.*` as in a run (the "
            "paper's oracle took 20k env steps per iteration: e.g. 10 tasks x 10 episodes of 200 steps).",
            paper="TRPO, 20k samples per iteration (the paper's oracle)",
        ),
    ] = "ppo"

    timesteps: Annotated[
        Int,
        setting(
            "Env steps of PPO training.",
            ge=1,
        ),
    ] = 1_000_000
    num_envs: Annotated[
        Int,
        setting(
            "Envs stepped together (`DummyVecEnv`).",
            ge=1,
        ),
    ] = 8
    n_steps: Annotated[
        Int,
        setting(
            "Steps per env per PPO rollout (`num_envs * n_steps` per update).",
            paper="SB3",
            ge=2,
        ),
    ] = 256
    batch_size: Annotated[
        Int,
        setting(
            "PPO minibatch size.",
            paper="SB3 default",
            ge=2,
        ),
    ] = 64
    n_epochs: Annotated[
        Int,
        setting(
            "PPO epochs per rollout.",
            paper="SB3 default",
            ge=1,
        ),
    ] = 10
    learning_rate: Annotated[
        Number,
        setting(
            "Adam step size.",
            paper="SB3 default",
            gt=0,
        ),
    ] = 3e-4
    gae_lambda: Annotated[
        Number,
        setting(
            "GAE lambda of PPO.",
            paper="SB3 default",
            ge=0,
            le=1,
        ),
    ] = 0.95
    clip_range: Annotated[
        Number,
        setting(
            "PPO ratio clipping.",
            paper="SB3 default",
            gt=0,
        ),
    ] = 0.2
