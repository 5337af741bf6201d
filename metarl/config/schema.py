"""The two run schemas, :class:`RLConfig` and :class:`FewShotConfig`, and the rules that tie their keys.

A config with ``data.dataset`` set is a few-shot run (:class:`FewShotConfig`), any other a meta-RL run
(:class:`RLConfig`); both share :class:`RunConfig`'s keys. ``config.yaml`` holds every section of both
(:data:`KEY_ORDER`); a run checks the sections of the other kind but ignores them (a value off its
default warns).
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, Self

from pydantic import ConfigDict, model_validator

from metarl.config.choices import FewShotMethod, Method
from metarl.config.fewshot_sections import DataConfig, ModelConfig
from metarl.config.fields import Device, Int, setting
from metarl.config.rl_sections import CollectorConfig, EnvConfig, OracleConfig, PolicyConfig, TRPOConfig
from metarl.config.sections import STRICT, EvaluationConfig, InnerConfig, LoggingConfig, MetaConfig
from metarl.core.errors import ConfigError

#: the keys of ``config.yaml``, in the order it lists them
KEY_ORDER = (
    "seed",
    "num_threads",
    "device",
    "method",
    "env",
    "policy",
    "inner",
    "meta",
    "trpo",
    "collector",
    "evaluation",
    "oracle",
    "logging",
    "data",
    "model",
)
#: the sections each kind of run leaves unused, with their classes (``config.yaml`` holds them at defaults)
RL_ONLY: dict[str, type] = {
    "env": EnvConfig,
    "policy": PolicyConfig,
    "trpo": TRPOConfig,
    "collector": CollectorConfig,
    "oracle": OracleConfig,
}
FEWSHOT_ONLY: dict[str, type] = {"data": DataConfig, "model": ModelConfig}


@dataclass
class RunConfig:
    """What meta-RL and few-shot runs share: seed, threads, device; inner, meta, evaluation, logging."""

    __pydantic_config__: ClassVar[ConfigDict] = STRICT
    #: ``data.dataset`` set: a few-shot run
    is_fewshot: ClassVar[bool] = False

    seed: Annotated[
        Int,
        setting(
            "Seeds the policy initialisation (`torch.manual_seed` inside a forked RNG) and the training "
            "generators (`metarl/core/seeding.py`): a NumPy generator for task sampling and environment reset"
            " seeds, a torch generator for action noise. `--seed N` overrides it.",
            ge=0,
        ),
    ] = 0
    num_threads: Annotated[
        Int,
        setting(
            "Calls `torch.set_num_threads(num_threads)` when it is not 0. With 0, torch keeps its own "
            "default. Rollout collection always uses one thread, and restores the setting afterwards. Can "
            "change on `--resume` (recorded in `resumes.csv`).",
            ge=0,
            expected="an integer >= 0 (0 = torch's default)",
        ),
    ] = 0
    device: Annotated[
        Device,
        setting(
            "Where the TRPO meta-update runs. Sampling, the policy and the adaptation during sampling stay on"
            " the CPU; the batch moves to the device for the meta-update and the new parameters come back. "
            "`metarl train --device cuda` sets it. A CUDA device that torch cannot see is a one-line error. "
            "Can change on `--resume`.",
            expected="cpu, cuda or cuda:N",
            allowed="`cpu`, `cuda`, `cuda:N`",
        ),
    ] = "cpu"
    inner: InnerConfig = field(default_factory=InnerConfig)
    meta: MetaConfig = field(default_factory=MetaConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)

    @property
    def evaluation_step_sizes(self) -> list[float]:
        """One step size per evaluation step: the first, then the later ones (paper: alpha, alpha/2, ...)."""
        return self.evaluation.step_sizes(self.inner.step_size)


@dataclass
class RLConfig(RunConfig):
    """A meta-RL run: MAML-TRPO (or a baseline) on the task distribution ``env.id``."""

    method: Annotated[
        Method,
        setting(
            "What the run trains. `maml`: MAML-TRPO. `pretrained`: the same TRPO with no inner step during "
            "training, on tasks drawn from the whole distribution; at evaluation it is fine-tuned with "
            "`evaluation.steps` steps whose step size is picked from a grid (`0.25, 0.5, 1, 2, 4` x "
            "`inner.step_size`). `oracle`: stable-baselines3 PPO with the task appended to the observation "
            "(see `oracle.*`), evaluated without adaptation. `metarl baseline {pretrained,oracle}` sets it; "
            "`metarl train` refuses `oracle`.",
            paper="paper, Section 5.3 baselines",
        ),
    ] = "maml"
    env: EnvConfig = field(default_factory=EnvConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    trpo: TRPOConfig = field(default_factory=TRPOConfig)
    collector: CollectorConfig = field(default_factory=CollectorConfig)
    oracle: OracleConfig = field(default_factory=OracleConfig)

    @model_validator(mode="after")
    def _check_rules(self) -> Self:
        for message in rl_rule_violations(self):
            raise ConfigError(message)
        return self


@dataclass
class FewShotConfig(RunConfig):
    """A supervised few-shot run: MAML (first-order, Meta-SGD, ANIL) on ``data.dataset``."""

    is_fewshot: ClassVar[bool] = True

    method: Annotated[
        FewShotMethod,
        setting(
            "Few-shot runs are method `maml`; `inner.*` chooses the variant.",
            expected="maml: few-shot runs are method maml (choose fomaml, Meta-SGD or ANIL with "
            "inner.first_order, inner.learn_step_size, inner.adapt)",
        ),
    ] = "maml"
    data: DataConfig = field(default_factory=lambda: DataConfig(dataset="sinusoid"))
    model: ModelConfig = field(default_factory=ModelConfig)

    @model_validator(mode="after")
    def _check_rules(self) -> Self:
        if self.inner.estimator != "reinforce":
            raise ConfigError(
                f"inner.estimator: got {self.inner.estimator!r} for a few-shot run; the estimator of the "
                "inner policy gradient is for meta-RL, few-shot runs take 'reinforce' (the default)"
            )
        return self

    @functools.cached_property
    def collector(self) -> CollectorConfig:
        """Meta-RL's collector section at its defaults, unused (commands set ``collector.backend`` anyway)."""
        return CollectorConfig()

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


#: either run; :func:`metarl.config.config_from_dict` picks by ``data.dataset``
AnyConfig = RLConfig | FewShotConfig
#: ``Config()`` is the default run, a meta-RL one, as before the two schemas
Config = RLConfig


def rl_rule_violations(config: RLConfig) -> list[str]:
    """The messages of every rule between keys that ``config`` breaks (empty: none)."""
    inner, method = config.inner, config.method
    out = []
    if inner.adapt != "all":
        out.append(
            f"inner.adapt: got {inner.adapt!r} for meta-RL; 'head' (ANIL) is for few-shot runs, "
            "meta-RL adapts all parameters ('all')"
        )
    if inner.estimator != "reinforce" and method != "maml":
        out.append(
            f"inner.estimator: {inner.estimator!r} with method {method!r}; the estimator only "
            "changes the meta-gradient through the inner step, which method maml alone takes"
        )
    if inner.learn_step_size and method != "maml":
        out.append(
            f"inner.learn_step_size: true with method {method!r}; learned step sizes are "
            "meta-trained by method maml only"
        )
    if config.trpo.fisher_product == "closed_form":
        steps = 0 if method in ("pretrained", "oracle") else inner.steps
        clashes = [
            f"inner.steps {steps} (at most 1)" if steps > 1 else "",
            "inner.learn_step_size true" if inner.learn_step_size else "",
            f"inner.estimator {inner.estimator!r}" if inner.estimator != "reinforce" else "",
        ]
        if any(clashes):
            out.append(
                "trpo.fisher_product: closed_form covers one inner step of the paper's estimator with fixed "
                f"step sizes, not {', '.join(c for c in clashes if c)}; use jfj"
            )
    if config.evaluation.query_action == "mean" and config.evaluation.query_episodes == 0:
        out.append(
            "evaluation.query_action: 'mean' with evaluation.query_episodes 0; the mean action measures "
            "separate episodes only (support episodes must sample to adapt): set query_episodes >= 1 "
            "(Meta-World: 3) or query_action 'sample'"
        )
    if config.collector.batch_unit == "steps" and config.collector.backend != "local":
        out.append(
            f"collector.batch_unit: 'steps' with collector.backend {config.collector.backend!r}; a batch "
            "counted in env steps is collected by the 'local' backend only (or use batch_unit 'episodes')"
        )
    workers, tasks = config.collector.workers, config.meta.batch_size
    if config.collector.backend != "local" and tasks % workers:
        out.append(
            f"meta.batch_size: {tasks} tasks cannot be shared equally by collector.workers={workers} "
            f"(each worker takes whole tasks); use a multiple of {workers} or another number of workers"
        )
    return out


def suspicious_settings(config: AnyConfig) -> list[str]:
    """Legal but suspicious values, one ``key = value: why`` line each (the loader warns with them)."""
    out = []
    if isinstance(config, RLConfig) and config.trpo.max_kl > 0.1:
        out.append(
            f"trpo.max_kl = {config.trpo.max_kl!r}: TRPO steps this large tend to collapse the policy; "
            "the paper used 0.01"
        )
    if config.inner.step_size > 2.0:
        out.append(
            f"inner.step_size = {config.inner.step_size!r}: inner steps this large overshoot; the paper used "
            "0.1 (its code 0.5 for 2-D nav)"
        )
    if config.meta.gamma < 0.9:
        out.append(f"meta.gamma = {config.meta.gamma!r}: a short effective horizon; the paper used 0.99")
    return out


def unused_sections(config: AnyConfig) -> dict[str, type]:
    """The sections ``config``'s kind of run does not use, by name."""
    return RL_ONLY if config.is_fewshot else FEWSHOT_ONLY


def section_defaults(sections: dict[str, type]) -> dict[str, dict[str, Any]]:
    """Plain data of each section at its defaults."""
    return {name: dataclasses.asdict(cls()) for name, cls in sections.items()}
