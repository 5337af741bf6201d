"""Gaussian MLP policy: shapes, density and KL against torch.distributions, seeding, construction errors."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.distributions import Independent, Normal, kl_divergence

from metarl.agents.policies import (
    GaussianMLPPolicy,
    TaskPolicy,
    gaussian_fisher_product,
    gaussian_kl,
    gaussian_log_prob,
    sample_gaussian,
    task_batched_forward,
    task_noise_seeds,
)


def _gaussians(seed: int, shape: tuple[int, ...] = (2, 5, 3, 4)) -> tuple[torch.Tensor, torch.Tensor]:
    """A mean ``[..., A]`` and a log-std ``[A]`` in float64."""
    gen = torch.Generator().manual_seed(seed)
    mean = torch.randn(shape, generator=gen, dtype=torch.float64)
    log_std = 0.5 * torch.randn(shape[-1], generator=gen, dtype=torch.float64)
    return mean, log_std


def test_forward_shapes_for_task_time_episode_input():
    policy = GaussianMLPPolicy(obs_dim=6, act_dim=2, hidden_sizes=(8, 8))
    mean, log_std = policy(torch.randn(3, 5, 4, 6))
    assert mean.shape == (3, 5, 4, 2)
    assert log_std.shape == (2,)


@pytest.mark.parametrize("init_std", [0.5, 1.0, 2.0])
def test_log_std_starts_at_log_init_std(init_std):
    policy = GaussianMLPPolicy(obs_dim=3, act_dim=2, hidden_sizes=(4,), init_std=init_std)
    torch.testing.assert_close(policy.log_std.detach(), torch.full((2,), math.log(init_std)))


def test_biases_start_at_zero():
    policy = GaussianMLPPolicy(obs_dim=3, act_dim=2, hidden_sizes=(4, 4))
    for module in policy.modules():
        if isinstance(module, nn.Linear):
            assert torch.equal(module.bias, torch.zeros_like(module.bias))


def test_gaussian_log_prob_matches_torch_normal():
    mean, log_std = _gaussians(0)
    actions = torch.randn(mean.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    expected = Normal(mean, log_std.exp()).log_prob(actions).sum(-1)
    actual = gaussian_log_prob(mean, log_std, actions)
    assert actual.shape == mean.shape[:-1]
    torch.testing.assert_close(actual, expected)


def test_gaussian_kl_matches_torch_kl_divergence():
    mean_p, log_std_p = _gaussians(0)
    mean_q, log_std_q = _gaussians(1)
    p = Independent(Normal(mean_p, log_std_p.exp().expand_as(mean_p)), 1)
    q = Independent(Normal(mean_q, log_std_q.exp().expand_as(mean_q)), 1)
    actual = gaussian_kl(mean_p, log_std_p, mean_q, log_std_q)
    assert actual.shape == mean_p.shape[:-1]
    torch.testing.assert_close(actual, kl_divergence(p, q))


def test_gaussian_kl_of_identical_distributions_is_zero():
    mean, log_std = _gaussians(2)
    torch.testing.assert_close(
        gaussian_kl(mean, log_std, mean, log_std), torch.zeros(mean.shape[:-1], dtype=mean.dtype)
    )


def test_sample_gaussian_same_seed_repeats_exactly():
    mean, log_std = _gaussians(3)
    first = sample_gaussian(mean, log_std, torch.Generator().manual_seed(7))
    second = sample_gaussian(mean, log_std, torch.Generator().manual_seed(7))
    other = sample_gaussian(mean, log_std, torch.Generator().manual_seed(8))
    assert first.shape == mean.shape
    assert first.dtype == mean.dtype
    assert torch.equal(first, second)
    assert not torch.equal(first, other)


def test_sample_gaussian_statistics_match_mean_and_std():
    mean = torch.tensor([1.0, -2.0], dtype=torch.float64).expand(20000, 2)
    log_std = torch.tensor([math.log(0.5), math.log(3.0)], dtype=torch.float64)
    samples = sample_gaussian(mean, log_std, torch.Generator().manual_seed(0))
    torch.testing.assert_close(samples.mean(0), mean[0], atol=0.06, rtol=0)
    torch.testing.assert_close(samples.std(0), log_std.exp(), atol=0.06, rtol=0)


def test_policy_has_no_buffers():
    policy = GaussianMLPPolicy(obs_dim=4, act_dim=2)
    assert list(policy.buffers()) == []


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"activation": "sigmoid"}, r"policy\.activation: 'sigmoid' is not one of"),
        ({"init_std": 0.0}, r"policy\.init_std: must be > 0, got 0\.0"),
        ({"init_std": -1.0}, r"policy\.init_std: must be > 0, got -1\.0"),
    ],
)
def test_bad_construction_raises_naming_the_field(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GaussianMLPPolicy(obs_dim=4, act_dim=2, **kwargs)


@pytest.mark.parametrize("hidden_sizes", [(), (16,), (8, 8), (5, 6, 7)])
def test_hidden_sizes_set_the_linear_layers(hidden_sizes):
    policy = GaussianMLPPolicy(obs_dim=4, act_dim=2, hidden_sizes=hidden_sizes)
    linears = [m for m in policy.modules() if isinstance(m, nn.Linear)]
    assert len(linears) == len(hidden_sizes) + 1
    widths = [(m.in_features, m.out_features) for m in linears]
    sizes = (4, *hidden_sizes, 2)
    assert widths == list(zip(sizes[:-1], sizes[1:], strict=True))


@pytest.mark.parametrize(("activation", "cls"), [("relu", nn.ReLU), ("tanh", nn.Tanh), ("elu", nn.ELU)])
def test_activation_is_configurable(activation, cls):
    policy = GaussianMLPPolicy(obs_dim=4, act_dim=2, hidden_sizes=(8, 8), activation=activation)
    activations = [m for m in policy.body if not isinstance(m, nn.Linear)]
    assert len(activations) == 2
    assert all(type(m) is cls for m in activations)


def test_gaussian_fisher_product_is_the_hessian_of_the_weighted_kl():
    """Analytic output-space Fisher equals autograd's Hessian of sum_t w_t KL(old_t || new_t) at new = old."""
    g = torch.Generator().manual_seed(0)
    mean = torch.randn(3, 4, 2, generator=g, dtype=torch.float64)
    log_std = torch.randn(2, generator=g, dtype=torch.float64)
    weights = torch.rand(3, 4, generator=g, dtype=torch.float64)
    d_mean = torch.randn(3, 4, 2, generator=g, dtype=torch.float64)
    d_log_std = torch.randn(2, generator=g, dtype=torch.float64)

    def weighted_kl(m, s):
        return (weights * gaussian_kl(mean, log_std, m, s)).sum()

    _, (h_mean, h_log_std) = torch.func.jvp(
        torch.func.grad(weighted_kl, argnums=(0, 1)), (mean, log_std), (d_mean, d_log_std)
    )
    f_mean, f_log_std = gaussian_fisher_product(d_mean, d_log_std, log_std, weights)
    torch.testing.assert_close(f_mean, h_mean)
    torch.testing.assert_close(f_log_std, h_log_std)


def _task_params(module: nn.Module, num_tasks: int, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(3)
    return {
        name: value.detach().to(dtype)
        + 0.1 * torch.randn(num_tasks, *value.shape, generator=generator, dtype=dtype)
        for name, value in module.named_parameters()
    }


@pytest.mark.parametrize("activation", ["relu", "tanh", "elu"])
@pytest.mark.parametrize("hidden_sizes", [(100, 100), (64, 32, 16), ()])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_task_batched_forward_equals_vmapped_functional_call(activation, hidden_sizes, dtype):
    """Bit for bit in float32, the collectors' dtype; float64 to rounding (its batched and per-task BLAS
    kernels differ in the last bit on some CPUs: 7e-16 measured)."""
    module = GaussianMLPPolicy(11, 3, hidden_sizes, activation).to(dtype)
    params = _task_params(module, 7, dtype)
    observations = torch.randn(7, 5, 11, dtype=dtype)
    mean, log_std = torch.func.vmap(lambda p, o: torch.func.functional_call(module, p, (o,)))(
        params, observations
    )
    got_mean, got_log_std = task_batched_forward(module, params, observations)
    assert got_mean.shape == (7, 5, 3) and got_log_std.shape == (7, 3)
    if dtype == torch.float32:
        assert torch.equal(got_mean, mean) and torch.equal(got_log_std, log_std)
    else:
        torch.testing.assert_close(got_mean, mean, rtol=1e-13, atol=1e-13)
        torch.testing.assert_close(got_log_std, log_std, rtol=0, atol=0)


def test_task_batched_forward_of_another_module_goes_through_vmap():
    class Scaled(GaussianMLPPolicy):  # a subclass may change forward: it must not take the MLP shortcut
        def forward(self, observations):
            mean, log_std = super().forward(observations)
            return 2 * mean, log_std

    module = Scaled(4, 2, (8,))
    params = _task_params(module, 3, torch.float32)
    observations = torch.randn(3, 6, 4)
    expected = torch.stack(
        [
            torch.func.functional_call(module, {k: v[n] for k, v in params.items()}, (observations[n],))[0]
            for n in range(3)
        ]
    )
    torch.testing.assert_close(task_batched_forward(module, params, observations)[0], expected)


def test_task_policy_actions_of_a_task_do_not_depend_on_the_other_tasks():
    module = GaussianMLPPolicy(4, 2, (8,))
    params = _task_params(module, 5, torch.float32)
    observations = torch.randn(5, 3, 4)
    whole = TaskPolicy(module, params, task_noise_seeds(0, 5))(observations)
    part = TaskPolicy(module, params, task_noise_seeds(0, 5)).select(2, 4)(observations[2:4])
    assert torch.equal(whole[2:4], part)
