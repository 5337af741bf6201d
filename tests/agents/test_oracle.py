"""The oracle: SB3 PPO's actor copied into GaussianMLPPolicy (normalisation folded in), never adapted."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from metarl.agents.maml_trpo import MAMLTRPO
from metarl.agents.oracle import OracleAdapter, fold_normalization, policy_from_ppo
from metarl.agents.policies import GaussianMLPPolicy
from metarl.config import InnerConfig, MetaConfig, TRPOConfig


def test_fold_normalization_equals_normalising_the_input() -> None:
    torch.manual_seed(0)
    policy = GaussianMLPPolicy(3, 2, (4,), "tanh")
    before = GaussianMLPPolicy(3, 2, (4,), "tanh")
    before.load_state_dict(policy.state_dict())
    mean, var, eps = np.array([1.0, -2.0, 0.5]), np.array([4.0, 0.25, 9.0]), 1e-8
    fold_normalization(policy, mean, var, eps)
    obs = torch.randn(7, 3)
    normalised = (obs - torch.as_tensor(mean, dtype=torch.float32)) / torch.as_tensor(
        np.sqrt(var + eps), dtype=torch.float32
    )
    torch.testing.assert_close(policy(obs)[0], before(normalised)[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_policy_from_ppo_reproduces_the_sb3_actor(activation: str) -> None:
    from stable_baselines3 import PPO

    from metarl.agents.policies import ACTIVATIONS

    env = gym.make("Pendulum-v1")
    model = PPO(
        "MlpPolicy",
        env,
        policy_kwargs={"net_arch": {"pi": [8, 6], "vf": [5]}, "activation_fn": ACTIVATIONS[activation]},
        seed=0,
        device="cpu",
    )
    mean, var, eps = np.array([0.1, -0.2, 1.0]), np.array([0.5, 2.0, 3.0]), 1e-8
    policy = policy_from_ppo(model, mean, var, eps)
    obs = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    normalised = ((obs - mean) / np.sqrt(var + eps)).astype(np.float32)
    with torch.no_grad():
        dist = model.policy.get_distribution(torch.as_tensor(normalised)).distribution
        ours_mean, ours_log_std = policy(torch.as_tensor(obs))
    torch.testing.assert_close(ours_mean, dist.mean, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ours_log_std.exp().expand_as(dist.stddev), dist.stddev)


def test_oracle_adapter_appends_each_tasks_features_and_never_adapts() -> None:
    torch.manual_seed(0)
    policy = GaussianMLPPolicy(2 + 1, 2, (4,), "tanh")
    learner = MAMLTRPO(policy, InnerConfig(), MetaConfig(), TRPOConfig())
    features = torch.tensor([[0.5], [-1.0]])
    adapter = OracleAdapter(learner, features)
    params = adapter.initial_params(2)
    obs = torch.randn(2, 3, 2)
    actions = adapter.policy_fn(params, torch.Generator().manual_seed(1))(obs)
    expected_input = torch.cat([obs, features[:, None, :].expand(2, 3, 1)], dim=-1)
    expected = learner.policy_fn(params, torch.Generator().manual_seed(1))(expected_input)
    torch.testing.assert_close(actions, expected)
    assert adapter.adapt(params, None, 0.1) is params


def test_task_feature_collector_shows_each_task_to_the_policy_and_stores_it_on_real_steps_only() -> None:
    from metarl import envs
    from metarl.agents.oracle import TaskFeatureCollector
    from metarl.collection import make_collector
    from metarl.envs.wrappers import task_features

    inner = make_collector("metarl/Navigation2D-v0", 2, 3)
    collector = TaskFeatureCollector(inner, task_features, 2)
    assert (collector.obs_dim, collector.act_dim) == (inner.obs_dim + 2, inner.act_dim)
    tasks = [envs.GoalTask(0.3, -0.2), envs.GoalTask(-0.4, 0.1)]
    seen = []

    def policy(obs: torch.Tensor) -> torch.Tensor:
        seen.append(obs.clone())
        return torch.full((*obs.shape[:-1], 2), 0.3)  # every episode reaches no goal in a straight line

    batch = collector.collect(tasks, policy, seed=0)
    plain = make_collector("metarl/Navigation2D-v0", 2, 3).collect(
        tasks, lambda o: torch.full(o.shape, 0.3), 0
    )
    assert seen[0].shape == (2, 3, 4)
    torch.testing.assert_close(seen[0][1, :, 2:], torch.tensor([[-0.4, 0.1]] * 3))
    assert batch.observations.shape == (*plain.observations.shape[:3], 4)
    torch.testing.assert_close(batch.observations[..., :2], plain.observations)
    shown = torch.tensor([[0.3, -0.2], [-0.4, 0.1]])[:, None, None, :] * plain.mask[..., None]
    torch.testing.assert_close(batch.observations[..., 2:], shown)
    torch.testing.assert_close(batch.rewards, plain.rewards)


def test_with_task_features_slices_like_the_whole_policy() -> None:
    from metarl.agents.oracle import WithTaskFeatures

    torch.manual_seed(0)
    learner = MAMLTRPO(GaussianMLPPolicy(3, 2, (4,), "tanh"), InnerConfig(), MetaConfig(), TRPOConfig())
    features = torch.tensor([[0.5], [-1.0], [2.0]])
    params = learner.initial_params(3)
    obs = torch.randn(3, 2, 2)

    def whole() -> WithTaskFeatures:
        return WithTaskFeatures(learner.policy_fn(params, torch.Generator().manual_seed(1)), features)

    # a worker holding tasks 1..2 acts on them exactly as the whole policy does
    torch.testing.assert_close(whole().select(1, 3)(obs[1:]), whole()(obs)[1:])
    assert not torch.allclose(whole().select(1, 3)(obs[1:]), whole().select(0, 2)(obs[1:]))
    with pytest.raises(TypeError, match="no select"):
        WithTaskFeatures(lambda o: o, features).select(0, 1)
