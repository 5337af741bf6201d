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
