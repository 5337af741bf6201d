"""The composition root: a config becomes a task distribution, a learner and a collector.

The only module that builds envs and learners from a config; every command of the app builds through it.
"""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from metarl import envs  # noqa: F401  (registers the metarl/* ids)
from metarl.agents.fewshot_models import FewShotConvNet, FewShotMLP
from metarl.agents.maml_supervised import SupervisedMAML
from metarl.agents.maml_trpo import MAMLTRPO
from metarl.agents.oracle import TaskFeatureCollector
from metarl.agents.policies import GaussianMLPPolicy
from metarl.collection import Collector, collector_from_config
from metarl.config import AnyConfig, FewShotConfig, RLConfig
from metarl.core.errors import ConfigError
from metarl.core.tasks import TaskDistribution, import_task_modules, make_task_distribution
from metarl.envs.fewshot import FewShotTasks, ImageClassificationTasks, make_fewshot_tasks
from metarl.envs.wrappers import task_features

#: modules a worker process imports to register the task distributions (plus the config's env.imports)
TASK_IMPORTS = ("metarl.envs",)


@dataclasses.dataclass(frozen=True)
class RLBuild:
    """What :func:`build` makes of a meta-RL config: the task distribution and the learner.

    Attributes:
        distribution: the task distribution (an env of ``env.id`` with ``sample_tasks``).
        learner: MAML-TRPO around the seeded policy.
    """

    distribution: TaskDistribution
    learner: MAMLTRPO


@dataclasses.dataclass(frozen=True)
class FewShotBuild:
    """What :func:`build_fewshot` makes of a few-shot config (``data.dataset`` set).

    Attributes:
        tasks: the few-shot task distribution, its images read and checked.
        learner: supervised MAML around the seeded net.
    """

    tasks: FewShotTasks
    learner: SupervisedMAML


def build(config: RLConfig) -> RLBuild:
    """Task distribution and MAML-TRPO learner for ``config``; the policy is seeded by ``config.seed``.

    The policy's sizes come from the task distribution's spaces: a command that needs no collector starts no
    worker processes or Ray (:func:`build_collector` makes one).

    Raises:
        ConfigError: an env without a ``Box`` action space, or a CUDA device torch cannot see.
    """
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    import_task_modules(config.env.imports)
    distribution = make_task_distribution(config.env.id)
    obs_dim, act_dim = _policy_sizes(config, distribution)
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
    # the pretrained and TRPO-oracle baselines are the same TRPO with no inner step during training
    no_inner = config.method in ("pretrained", "oracle")
    inner = dataclasses.replace(config.inner, steps=0) if no_inner else config.inner
    return RLBuild(distribution, MAMLTRPO(policy, inner, config.meta, config.trpo, config.device))


def _policy_sizes(config: RLConfig, distribution: TaskDistribution) -> tuple[int, int]:
    """``(obs_dim, act_dim)`` of the policy: the env's, plus the task's features for the oracle."""
    # make_task_distribution returns the unwrapped env of env.id
    assert isinstance(distribution, gym.Env)
    action_space = distribution.action_space
    if not isinstance(action_space, gym.spaces.Box):
        raise ConfigError(
            f"env.id: {config.env.id!r} has a {type(action_space).__name__} action space; "
            "MAML-TRPO here needs Box"
        )
    obs_shape = distribution.observation_space.shape
    if obs_shape is None:
        raise ConfigError(
            f"env.id: {config.env.id!r} has a {type(distribution.observation_space).__name__} observation "
            "space without a shape; MAML-TRPO here needs arrays"
        )
    obs_dim = int(np.prod(obs_shape))
    act_dim = int(np.prod(action_space.shape))
    if config.method == "oracle":
        obs_dim += task_features(distribution.sample_tasks(1, np.random.default_rng(0))[0]).shape[0]
    return obs_dim, act_dim


def build_collector(config: RLConfig, num_tasks: int | None = None, episodes: int | None = None) -> Collector:
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


def oracle_collector(collector: Collector, distribution: TaskDistribution) -> Collector:
    """``collector`` with each task's :func:`task_features` appended to the observations (the TRPO oracle)."""
    size = task_features(distribution.sample_tasks(1, np.random.default_rng(0))[0]).shape[0]
    return TaskFeatureCollector(collector, task_features, size)


def use_local_collector(config: AnyConfig) -> None:
    """Set ``collector.backend: local`` in ``config``: :func:`build_collector` then samples in this process.

    ``evaluate`` runs where you are (the run's workers or cluster may be gone), ``render`` needs the
    in-process collector's action mapping, and the oracle's task-augmented policy is sampled here.
    """
    config.collector.backend = "local"


def build_fewshot(config: FewShotConfig) -> FewShotBuild:
    """Few-shot task distribution and learner for ``config`` (``data.dataset`` set); the net is seeded.

    Raises:
        ConfigError: image data with too few classes or images for the train and test settings.
    """
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    data = config.data
    tasks = make_fewshot_tasks(data.dataset, data.root, data.ways, data.train_classes, data.cache_dir)
    if isinstance(tasks, ImageClassificationTasks):
        tasks.check("train", data.shots, data.query_shots)
        tasks.check("test", *config.evaluation_shots)
    net: nn.Module
    with torch.random.fork_rng():
        torch.manual_seed(config.seed)
        if tasks.kind == "regression":
            net = FewShotMLP(tasks.input_shape[0], tasks.num_outputs, tuple(config.model.hidden_sizes))
        else:
            net = FewShotConvNet(
                tasks.input_shape, tasks.num_outputs, config.model.filters, config.model.max_pool
            )
    return FewShotBuild(tasks, SupervisedMAML(net, tasks.kind, config.inner, config.meta))
