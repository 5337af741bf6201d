"""Run configuration: typed schemas (meta-RL, few-shot), YAML + ``--set`` loading; imports only metarl.core.

Every YAML key equals a field of a section dataclass; an unknown key fails with the closest valid key
suggested, a value of the wrong type or out of range fails naming the key, the value and what is allowed
(:class:`~metarl.core.errors.ConfigError`). docs/CONFIG.md is generated from the schema
(``python -m metarl.config.docs``).
"""

from __future__ import annotations

from metarl.config.choices import (
    Activation,
    Adapt,
    Backend,
    Batching,
    BatchNormGrad,
    BatchUnit,
    Dataset,
    DataSource,
    Estimator,
    FewShotMethod,
    FisherProduct,
    Method,
    OracleAlgorithm,
    QueryAction,
    Split,
    StartMethod,
    Vectorization,
)
from metarl.config.fewshot_sections import DataConfig, ModelConfig
from metarl.config.loading import (
    apply_overrides,
    config_from_dict,
    config_to_dict,
    config_value,
    load_config,
    validate,
)
from metarl.config.rl_sections import CollectorConfig, EnvConfig, OracleConfig, PolicyConfig, TRPOConfig
from metarl.config.schema import AnyConfig, Config, FewShotConfig, RLConfig, RunConfig
from metarl.config.sections import EvaluationConfig, InnerConfig, LoggingConfig, MetaConfig, inner_step_sizes

__all__ = [
    "Activation",
    "Adapt",
    "AnyConfig",
    "Backend",
    "BatchNormGrad",
    "BatchUnit",
    "QueryAction",
    "Split",
    "Batching",
    "CollectorConfig",
    "Config",
    "DataConfig",
    "DataSource",
    "Dataset",
    "EnvConfig",
    "Estimator",
    "EvaluationConfig",
    "FewShotConfig",
    "FewShotMethod",
    "FisherProduct",
    "InnerConfig",
    "LoggingConfig",
    "MetaConfig",
    "Method",
    "OracleAlgorithm",
    "ModelConfig",
    "OracleConfig",
    "PolicyConfig",
    "RLConfig",
    "RunConfig",
    "StartMethod",
    "TRPOConfig",
    "Vectorization",
    "apply_overrides",
    "config_from_dict",
    "config_to_dict",
    "config_value",
    "inner_step_sizes",
    "load_config",
    "validate",
]
