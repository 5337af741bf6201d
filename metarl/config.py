"""Run configuration: dataclasses, strict YAML loading and typed ``--set section.key=value`` overrides.

Every YAML key equals a dataclass field; an unknown key fails with the closest valid key suggested, a value
of the wrong type or out of range fails naming the field, the value and what is allowed
(:class:`ConfigError`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import typing
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from metarl.core.errors import ConfigError, closest


@dataclass
class EnvConfig:
    """Which task distribution to meta-train on.

    Attributes:
        id: a registered Gymnasium id, e.g. ``metarl/HalfCheetahVel-v0``.
        imports: Python modules (``pkg.mod``) or files (``path/to/file.py``, relative to the working
            directory) imported before the env is built, to register your own task distributions.
    """

    id: str = "metarl/Navigation2D-v0"
    imports: list[str] = field(default_factory=list)


@dataclass
class PolicyConfig:
    """Gaussian MLP policy.

    Attributes:
        hidden_sizes: hidden layer widths (paper: 100, 100).
        activation: ``relu`` (paper), ``tanh`` or ``elu``.
        init_std: initial action standard deviation.
    """

    hidden_sizes: list[int] = field(default_factory=lambda: [100, 100])
    activation: str = "relu"
    init_std: float = 1.0


@dataclass
class InnerConfig:
    """Adaptation: vanilla policy gradient steps on fresh support episodes.

    Attributes:
        steps: inner gradient steps during meta-training (paper: 1).
        step_size: inner learning rate alpha (paper: 0.1; 0.5 in its code for navigation).
        first_order: drop the second-order terms of the meta-gradient (first-order MAML).
        learn_step_size: learn one step size per parameter entry, initialised to ``step_size``
            (Meta-SGD, arXiv:1707.09835); for meta-RL, TRPO updates them with the policy (method maml).
        adapt: few-shot only: ``all`` parameters adapt (MAML), or only the ``head``, the last linear layer
            (ANIL, arXiv:1909.09157).
        estimator: meta-RL only: the inner policy-gradient loss. ``reinforce`` (the paper's
            ``-log pi(a|s) A``) or ``lvc`` (ProMP's low-variance curvature, arXiv:1810.06784:
            ``-pi(a|s) / pi_b(a|s) A``, ``pi_b`` the policy that collected the episodes): the same inner
            step, but differentiating it again also counts how the support episodes' distribution depends
            on the meta-parameters.
    """

    steps: int = 1
    step_size: float = 0.1
    first_order: bool = False
    learn_step_size: bool = False
    adapt: str = "all"
    estimator: str = "reinforce"


@dataclass
class MetaConfig:
    """Outer loop.

    Attributes:
        batch_size: tasks per meta-batch (paper: 20 navigation, 40 locomotion).
        episodes_per_task: episodes per task for each support set and the query set (paper: 20).
        iterations: meta-iterations (paper: up to 500).
        gamma: discount factor (paper: 0.99).
        gae_lambda: GAE lambda (paper: 1.0).
        normalize_advantages: standardise advantages per task before each loss.
        baseline_reg: ridge coefficient of the linear feature baseline.
        learning_rate: few-shot only: Adam's learning rate for the meta-update (paper: 0.001).
        batching: few-shot only: how tasks of a meta-batch are computed: ``auto`` (``grouped``, the fastest
            on CPU), ``grouped`` (task-batched parameters: batched matrix products and grouped convolutions),
            ``vmap`` (``torch.func.vmap``; not for second-order conv nets) or ``loop`` (one task at a time,
            the reference).
        second_order_batch_norm: few-shot conv nets with ``grouped`` batching only: how the second-order
            meta-gradient differentiates batch norm's backward: ``closed_form`` (``agents/batch_norm.py``;
            same values, faster), ``pytorch`` (PyTorch's own formula, the reference) or ``auto``
            (``closed_form`` for second-order MAML, ``pytorch`` for first order, which never uses it).
    """

    batch_size: int = 40
    episodes_per_task: int = 20
    iterations: int = 500
    gamma: float = 0.99
    gae_lambda: float = 1.0
    normalize_advantages: bool = True
    baseline_reg: float = 1e-5
    learning_rate: float = 1e-3
    batching: str = "auto"
    second_order_batch_norm: str = "auto"


@dataclass
class TRPOConfig:
    """TRPO meta-update (paper settings).

    Attributes:
        max_kl: trust-region radius on the mean KL of the adapted policies (0.01).
        cg_iterations: conjugate-gradient iterations (10).
        cg_damping: damping added to the Fisher-vector product (1e-5).
        ls_ratio: line-search shrink factor (0.8).
        ls_max_steps: line-search candidates (15).
        vectorize: evaluate all tasks at once with ``torch.func.vmap``; False loops over tasks
            (the reference).
        fisher_product: how the Fisher-vector products through the inner step are computed: ``jfj``
            (``J^T F J``: Jacobian of the adaptation, Fisher of the adapted policy; exact at the current
            parameters, about half the work), ``double_backprop`` (Hessian of the KL by differentiating its
            gradient again; the reference) or ``closed_form`` (``jfj``'s numbers, with the Gaussian MLP's
            derivatives written out and the primal passes reused by every product: about 3-4x faster;
            at most one inner step, the paper's estimator, fixed step sizes).
        fisher_subsample: fraction of the meta-batch's tasks (the first ones; tasks are i.i.d.) used in the
            Fisher-vector products, each with all of its episodes (1.0: all, exact). Smaller values make
            each product cheaper and keep it unbiased; the gradient and the line search, which enforces
            ``max_kl``, use every task. (Subsampling episodes within tasks, rllab's ``subsample_factor``,
            inflates the Fisher through the inner step's Jacobian and shrinks the steps.)
        fisher_subsample_grow_at: 0 keeps ``fisher_subsample`` fixed. A number > 1 doubles the fraction (up
            to 1) whenever the median, over the last 10 meta-updates, of the full step's KL divided by
            ``max_kl`` exceeds it: a subsample that misses directions of high curvature gives steps whose
            KL is a multiple of the quadratic model's, which the line search then shrinks. Early in
            training a quarter of the tasks gives nearly the exact step; once the policy adapts well the
            tasks' Fisher terms differ more (measured on HalfCheetahDir: cosine 0.78 with the exact step,
            KL 5.9x the limit), and this spends the exact product's cost only from then on.
    """

    max_kl: float = 0.01
    cg_iterations: int = 10
    cg_damping: float = 1e-5
    ls_ratio: float = 0.8
    ls_max_steps: int = 15
    vectorize: bool = True
    fisher_product: str = "jfj"
    fisher_subsample: float = 1.0
    fisher_subsample_grow_at: float = 0.0


@dataclass
class CollectorConfig:
    """Rollout collection.

    Attributes:
        vectorization: ``auto`` (the env's fast vector env if registered, else ``sync``),
            ``vector_entry_point``, ``sync`` or ``async``.
        rescale_actions: the policy acts in ``[-1, 1]`` and the collector maps that onto the action space's
            bounds (the paper's code did this with rllab's ``normalize``; identity for the MuJoCo tasks, whose
            bounds are ``[-1, 1]``, and a factor 0.1 for 2-D navigation).
        backend: ``local`` (this process), ``subprocess`` (worker processes on this machine) or ``ray``
            (Ray actors, on this machine or a cluster). Every backend returns the same episodes.
        workers: worker processes or actors for ``subprocess`` and ``ray``; each takes whole tasks, so
            ``meta.batch_size`` must be a multiple of it.
        start_method: ``spawn`` or ``forkserver``, how ``subprocess`` starts its workers.
        address: ``ray`` only: empty to start a local Ray instance, ``auto`` for a running one on this
            machine, or the ``host:port`` of a head started with ``ray start --head``.
        timeout_s: a worker that has not answered a collection within this many seconds is treated as dead.
        startup_timeout_s: extra seconds a newly started (or replacement) worker gets for its first answer:
            importing torch and building the envs, or placing a Ray actor, on a loaded machine.
        max_restarts: dead workers replaced within one collection before the run stops with an error.
    """

    vectorization: str = "auto"
    rescale_actions: bool = True
    backend: str = "local"
    workers: int = 2
    start_method: str = "spawn"
    address: str = ""
    timeout_s: float = 600.0
    startup_timeout_s: float = 120.0
    max_restarts: int = 3


@dataclass
class EvaluationConfig:
    """Adaptation curve on new tasks, written at the end of training.

    Attributes:
        tasks: new tasks (paper: 40).
        steps: inner steps (paper: 3).
        episodes: episodes per task and step (paper: 20).
        seed: seed of the evaluation tasks; its stream is disjoint from training's.
        first_step_size: step size of the first inner step; 0 means ``inner.step_size`` (paper: alpha).
        later_step_size: step size of every later step; 0 means half the first (paper: alpha / 2).
        shots: few-shot only: support examples per class (sinusoid: points) of the test tasks; 0 means
            ``data.shots``.
        query_shots: few-shot only: query examples per class (sinusoid: points); 0 means ``data.query_shots``.
    """

    tasks: int = 40
    steps: int = 3
    episodes: int = 20
    seed: int = 1
    first_step_size: float = 0.0
    later_step_size: float = 0.0
    shots: int = 0
    query_shots: int = 0


@dataclass
class DataConfig:
    """Supervised few-shot data; an empty ``dataset`` means a meta-RL run on ``env.id``.

    Attributes:
        dataset: ``""`` (meta-RL), ``sinusoid``, ``omniglot`` or ``miniimagenet``.
        root: folder of the image dataset in its standard layout (see README, "Few-shot data").
        ways: classes per task, N (classification).
        shots: support examples per class, K (sinusoid: support points).
        query_shots: query examples per class (sinusoid: query points).
        train_classes: Omniglot characters used for meta-training (paper: 1200); the rest are for testing.
        cache_dir: if set, decoded images are stored there as ``.npz`` and later runs load them instead.
    """

    dataset: str = ""
    root: str = ""
    ways: int = 5
    shots: int = 1
    query_shots: int = 1
    train_classes: int = 1200
    cache_dir: str = ""


@dataclass
class ModelConfig:
    """Few-shot network: an MLP for sinusoid, the 4-block conv net for images.

    Attributes:
        hidden_sizes: MLP hidden widths (paper: 40, 40).
        filters: conv channels per block (paper: 64 Omniglot, 32 MiniImagenet).
        max_pool: downsample with 2x2 max-pooling (paper: MiniImagenet) instead of strided convolutions
            (Omniglot).
    """

    hidden_sizes: list[int] = field(default_factory=lambda: [40, 40])
    filters: int = 64
    max_pool: bool = False


@dataclass
class OracleConfig:
    """The oracle baseline (``metarl baseline oracle``): stable-baselines3 PPO on task-in-observation envs.

    The actor and critic use ``policy.hidden_sizes`` and ``policy.activation``; the discount is
    ``meta.gamma``. Other PPO settings are SB3's defaults for continuous control.

    Attributes:
        timesteps: env steps of PPO training.
        num_envs: envs stepped together.
        n_steps: steps per env per PPO rollout.
        batch_size: PPO minibatch size.
        n_epochs: PPO epochs per rollout.
        learning_rate: Adam step size.
        gae_lambda: GAE lambda of PPO.
        clip_range: PPO ratio clipping.
    """

    timesteps: int = 1_000_000
    num_envs: int = 8
    n_steps: int = 256
    batch_size: int = 64
    n_epochs: int = 10
    learning_rate: float = 3e-4
    gae_lambda: float = 0.95
    clip_range: float = 0.2


@dataclass
class LoggingConfig:
    """Outputs.

    Attributes:
        runs_root: folder that receives ``<env>__<config>__s<seed>__<time>/`` run directories.
        checkpoint_every: write ``checkpoints/latest.pt`` every this many iterations (and at the end).
        tensorboard: write TensorBoard event files.
        progress: show a progress bar.
    """

    runs_root: str = "runs"
    checkpoint_every: int = 10
    tensorboard: bool = True
    progress: bool = True


@dataclass
class Config:
    """A whole run.

    Attributes:
        seed: seeds the policy initialisation, task sampling, environment resets and action noise.
        num_threads: torch intra-op threads (0 leaves torch's default).
        device: where the meta-update runs: ``cpu`` or ``cuda[:N]`` (sampling always runs on the CPU).
        method: ``maml``; ``pretrained`` (the same TRPO without inner steps, on tasks from the whole
            distribution, fine-tuned at evaluation) or ``oracle`` (PPO with the task in the observation),
            set by ``metarl baseline``.
    """

    seed: int = 0
    num_threads: int = 0
    device: str = "cpu"
    method: str = "maml"
    env: EnvConfig = field(default_factory=EnvConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    inner: InnerConfig = field(default_factory=InnerConfig)
    meta: MetaConfig = field(default_factory=MetaConfig)
    trpo: TRPOConfig = field(default_factory=TRPOConfig)
    collector: CollectorConfig = field(default_factory=CollectorConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    oracle: OracleConfig = field(default_factory=OracleConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)

    @property
    def is_fewshot(self) -> bool:
        """Whether this is a supervised few-shot run (``data.dataset`` set) rather than meta-RL."""
        return bool(self.data.dataset)

    @property
    def method_name(self) -> str:
        """The few-shot method these settings give: ``maml``, ``fomaml``, ``metasgd``, ``anil``, ..."""
        name = "anil" if self.inner.adapt == "head" else "maml"
        if self.inner.learn_step_size:
            name = "metasgd" if name == "maml" else "metasgd-anil"
        if self.inner.first_order:
            name = "fomaml" if name == "maml" else f"fo-{name}"
        return name

    @property
    def evaluation_shots(self) -> tuple[int, int]:
        """Support and query examples per class of the few-shot test tasks."""
        return self.evaluation.shots or self.data.shots, self.evaluation.query_shots or self.data.query_shots

    @property
    def evaluation_step_sizes(self) -> list[float]:
        """One step size per evaluation step: the first, then the later ones (paper: alpha, alpha/2, ...)."""
        first = self.evaluation.first_step_size or self.inner.step_size
        later = self.evaluation.later_step_size or first / 2
        return [first if k == 0 else later for k in range(self.evaluation.steps)]


#: (field path, predicate, what is allowed)
_RULES: list[tuple[str, typing.Callable[[Any], bool], str]] = [
    ("seed", lambda v: v >= 0, "an integer >= 0"),
    ("num_threads", lambda v: v >= 0, "an integer >= 0 (0 = torch's default)"),
    (
        "policy.hidden_sizes",
        lambda v: len(v) >= 1 and all(h >= 1 for h in v),
        "a non-empty list of sizes >= 1",
    ),
    ("policy.activation", lambda v: v in ("relu", "tanh", "elu"), "one of relu, tanh, elu"),
    ("policy.init_std", lambda v: v > 0, "a number > 0"),
    ("inner.steps", lambda v: v >= 1, "an integer >= 1"),
    ("inner.step_size", lambda v: v > 0, "a number > 0"),
    ("meta.batch_size", lambda v: v >= 1, "an integer >= 1"),
    ("meta.episodes_per_task", lambda v: v >= 2, "an integer >= 2 (the baseline and normalisation need 2)"),
    ("meta.iterations", lambda v: v >= 1, "an integer >= 1"),
    ("meta.gamma", lambda v: 0 <= v <= 1, "a number in [0, 1]"),
    ("meta.gae_lambda", lambda v: 0 <= v <= 1, "a number in [0, 1]"),
    ("meta.baseline_reg", lambda v: v > 0, "a number > 0"),
    ("trpo.max_kl", lambda v: v > 0, "a number > 0"),
    ("trpo.cg_iterations", lambda v: v >= 1, "an integer >= 1"),
    ("trpo.cg_damping", lambda v: v >= 0, "a number >= 0"),
    ("trpo.ls_ratio", lambda v: 0 < v < 1, "a number in (0, 1)"),
    ("trpo.ls_max_steps", lambda v: v >= 1, "an integer >= 1"),
    (
        "trpo.fisher_product",
        lambda v: v in ("jfj", "double_backprop", "closed_form"),
        "one of jfj, double_backprop, closed_form",
    ),
    ("trpo.fisher_subsample", lambda v: 0 < v <= 1, "a fraction in (0, 1]"),
    (
        "trpo.fisher_subsample_grow_at",
        lambda v: v == 0 or v > 1,
        "0 (a fixed fraction) or a KL ratio > 1",
    ),
    ("device", lambda v: re.fullmatch(r"cpu|cuda(:\d+)?", v) is not None, "cpu, cuda or cuda:N"),
    (
        "collector.vectorization",
        lambda v: v in ("auto", "vector_entry_point", "sync", "async"),
        "one of auto, vector_entry_point, sync, async",
    ),
    ("collector.backend", lambda v: v in ("local", "subprocess", "ray"), "one of local, subprocess, ray"),
    ("collector.workers", lambda v: v >= 1, "an integer >= 1"),
    ("collector.start_method", lambda v: v in ("spawn", "forkserver"), "one of spawn, forkserver"),
    (
        "collector.address",
        lambda v: v in ("", "auto") or _is_host_port(v),
        "empty (start a local Ray instance), auto, or host:port of a Ray head",
    ),
    ("collector.timeout_s", lambda v: v > 0, "a number of seconds > 0"),
    ("collector.startup_timeout_s", lambda v: v >= 0, "a number of seconds >= 0"),
    ("collector.max_restarts", lambda v: v >= 0, "an integer >= 0"),
    ("evaluation.tasks", lambda v: v >= 2, "an integer >= 2 (for a standard error)"),
    ("evaluation.steps", lambda v: v >= 0, "an integer >= 0"),
    ("evaluation.episodes", lambda v: v >= 2, "an integer >= 2"),
    ("evaluation.seed", lambda v: v >= 0, "an integer >= 0"),
    ("evaluation.first_step_size", lambda v: v >= 0, "a number >= 0 (0: inner.step_size)"),
    ("evaluation.later_step_size", lambda v: v >= 0, "a number >= 0 (0: half the first step size)"),
    ("logging.checkpoint_every", lambda v: v >= 1, "an integer >= 1"),
    ("method", lambda v: v in ("maml", "pretrained", "oracle"), "one of maml, pretrained, oracle"),
    ("oracle.timesteps", lambda v: v >= 1, "an integer >= 1"),
    ("oracle.num_envs", lambda v: v >= 1, "an integer >= 1"),
    ("oracle.n_steps", lambda v: v >= 2, "an integer >= 2"),
    ("oracle.batch_size", lambda v: v >= 2, "an integer >= 2"),
    ("oracle.n_epochs", lambda v: v >= 1, "an integer >= 1"),
    ("oracle.learning_rate", lambda v: v > 0, "a number > 0"),
    ("oracle.gae_lambda", lambda v: 0 <= v <= 1, "a number in [0, 1]"),
    ("oracle.clip_range", lambda v: v > 0, "a number > 0"),
    ("inner.adapt", lambda v: v in ("all", "head"), "all (MAML) or head (ANIL)"),
    ("inner.estimator", lambda v: v in ("reinforce", "lvc"), "reinforce (the paper) or lvc (ProMP)"),
    ("meta.learning_rate", lambda v: v > 0, "a number > 0"),
    (
        "meta.batching",
        lambda v: v in ("auto", "loop", "vmap", "grouped"),
        "one of auto, loop, vmap, grouped",
    ),
    (
        "meta.second_order_batch_norm",
        lambda v: v in ("auto", "pytorch", "closed_form"),
        "one of auto, pytorch, closed_form",
    ),
    ("evaluation.shots", lambda v: v >= 0, "an integer >= 0 (0: data.shots)"),
    ("evaluation.query_shots", lambda v: v >= 0, "an integer >= 0 (0: data.query_shots)"),
    (
        "data.dataset",
        lambda v: v in ("", "sinusoid", "omniglot", "miniimagenet"),
        "one of sinusoid, omniglot, miniimagenet, or empty for meta-RL",
    ),
    ("data.ways", lambda v: v >= 2, "an integer >= 2"),
    ("data.shots", lambda v: v >= 1, "an integer >= 1"),
    ("data.query_shots", lambda v: v >= 1, "an integer >= 1"),
    ("data.train_classes", lambda v: v >= 1, "an integer >= 1"),
    (
        "model.hidden_sizes",
        lambda v: len(v) >= 1 and all(h >= 1 for h in v),
        "a non-empty list of sizes >= 1",
    ),
    ("model.filters", lambda v: v >= 1, "an integer >= 1"),
]


def _is_host_port(value: str) -> bool:
    host, _, port = value.rpartition(":")
    return bool(host) and port.isdigit() and 1 <= int(port) <= 65535


#: legal but suspicious: (field path, predicate, why)
_SUSPICIOUS: list[tuple[str, typing.Callable[[Any], bool], str]] = [
    (
        "trpo.max_kl",
        lambda v: v > 0.1,
        "TRPO steps this large tend to collapse the policy; the paper used 0.01",
    ),
    (
        "inner.step_size",
        lambda v: v > 2.0,
        "inner steps this large overshoot; the paper used 0.1 (its code 0.5 for 2-D nav)",
    ),
    ("meta.gamma", lambda v: v < 0.9, "a short effective horizon; the paper used 0.99"),
]


def _type_name(tp: Any) -> str:
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(tp, str(tp))


def _coerce(path: str, value: Any, tp: Any) -> Any:
    """Check ``value`` against the annotation ``tp`` (int, float, bool, str, list[int])."""
    if typing.get_origin(tp) is list:
        (item_tp,) = typing.get_args(tp)
        if not isinstance(value, list):
            raise ConfigError(f"{path}: expected a list ({_type_name(item_tp)} each), got {value!r}")
        return [_coerce(f"{path}[{i}]", v, item_tp) for i, v in enumerate(value)]
    if tp is float and isinstance(value, str):
        # YAML 1.1 reads 1e-5 (no dot) as a string; accept any text that is a plain number
        with contextlib.suppress(ValueError):
            value = float(value)
    ok = {
        bool: isinstance(value, bool),
        int: isinstance(value, int) and not isinstance(value, bool),
        float: isinstance(value, (int, float)) and not isinstance(value, bool),
        str: isinstance(value, str),
    }[tp]
    if not ok:
        raise ConfigError(f"{path}: expected {_type_name(tp)}, got {value!r}")
    return float(value) if tp is float else value


def _build(cls: type, data: Any, prefix: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(
            f"{prefix.rstrip('.') or 'config'}: expected a mapping of keys to values, got {data!r}"
        )
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in data.items():
        path = f"{prefix}{key}"
        if key not in names:
            raise ConfigError(
                f"{path}: unknown key{closest(str(key), names)}; valid keys here: {', '.join(names)}"
            )
        tp = hints[key]
        if isinstance(tp, type) and dataclasses.is_dataclass(tp):
            kwargs[key] = _build(tp, value, f"{path}.")
        else:
            kwargs[key] = _coerce(path, value, tp)
    return cls(**kwargs)


def config_value(config: Config, path: str) -> Any:
    """The value at a dotted key such as ``trpo.max_kl``."""
    value: Any = config
    for part in path.split("."):
        value = getattr(value, part)
    return value


def validate(config: Config) -> Config:
    """Check every range rule; return ``config`` unchanged or raise :class:`ConfigError`."""
    for path, predicate, allowed in _RULES:
        value = config_value(config, path)
        if not predicate(value):
            raise ConfigError(f"{path}: got {value!r}, expected {allowed}")
    if config.is_fewshot and config.method != "maml":
        raise ConfigError(
            f"method: got {config.method!r} with data.dataset {config.data.dataset!r}; few-shot runs are "
            "method maml (choose fomaml, Meta-SGD or ANIL with inner.first_order, inner.learn_step_size, "
            "inner.adapt)"
        )
    if not config.is_fewshot and config.inner.adapt != "all":
        raise ConfigError(
            f"inner.adapt: got {config.inner.adapt!r} for meta-RL; 'head' (ANIL) is for few-shot runs, "
            "meta-RL adapts all parameters ('all')"
        )
    if config.is_fewshot and config.inner.estimator != "reinforce":
        raise ConfigError(
            f"inner.estimator: got {config.inner.estimator!r} for a few-shot run; the estimator of the inner "
            "policy gradient is for meta-RL, few-shot runs take 'reinforce' (the default)"
        )
    if not config.is_fewshot and config.inner.estimator != "reinforce" and config.method != "maml":
        raise ConfigError(
            f"inner.estimator: {config.inner.estimator!r} with method {config.method!r}; the estimator only "
            "changes the meta-gradient through the inner step, which method maml alone takes"
        )
    if not config.is_fewshot and config.inner.learn_step_size and config.method != "maml":
        raise ConfigError(
            f"inner.learn_step_size: true with method {config.method!r}; learned step sizes are "
            "meta-trained by method maml only"
        )
    if not config.is_fewshot and config.trpo.fisher_product == "closed_form":
        steps = 0 if config.method == "pretrained" else config.inner.steps
        clashes = [
            f"inner.steps {steps} (at most 1)" if steps > 1 else "",
            "inner.learn_step_size true" if config.inner.learn_step_size else "",
            f"inner.estimator {config.inner.estimator!r}" if config.inner.estimator != "reinforce" else "",
        ]
        if any(clashes):
            raise ConfigError(
                f"trpo.fisher_product: closed_form covers one inner step of the paper's estimator with fixed "
                f"step sizes, not {', '.join(c for c in clashes if c)}; use jfj"
            )
    workers, tasks = config.collector.workers, config.meta.batch_size
    if config.collector.backend != "local" and tasks % workers:
        raise ConfigError(
            f"meta.batch_size: {tasks} tasks cannot be shared equally by collector.workers={workers} "
            f"(each worker takes whole tasks); use a multiple of {workers} or another number of workers"
        )
    for path, predicate, why in _SUSPICIOUS:
        value = config_value(config, path)
        if predicate(value):
            warnings.warn(f"{path} = {value!r}: {why}", UserWarning, stacklevel=2)
    return config


def config_from_dict(data: dict[str, Any] | None) -> Config:
    """Build and validate a :class:`Config` from nested plain data (missing keys take their defaults)."""
    return validate(_build(Config, data or {}, ""))


def config_to_dict(config: Config) -> dict[str, Any]:
    """Nested plain data (what ``config.yaml`` of a run holds)."""
    return dataclasses.asdict(config)


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``section.key=value`` strings (values parsed as YAML) to nested plain data, in place."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set: expected section.key=value, got {item!r}")
        path, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            raise ConfigError(f"--set {path}: cannot parse value {raw!r}: {exc.problem}") from None
        node = data
        *parents, leaf = path.strip().split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {path}: {part!r} is not a section")
        node[leaf] = value
    return data


def load_config(path: str | Path, overrides: list[str] | None = None) -> Config:
    """Read a YAML file strictly, apply ``--set`` overrides, validate.

    Raises:
        ConfigError: a missing or malformed file, unknown key, wrong type or impossible value.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config: file {str(path)!r} does not exist")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(
            f"config: {str(path)!r} is not valid YAML{where}: {getattr(exc, 'problem', exc)}"
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(f"config: {str(path)!r} must hold a mapping of sections, got {type(data).__name__}")
    return config_from_dict(apply_overrides(data, overrides or []))
