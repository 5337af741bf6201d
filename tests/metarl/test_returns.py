"""Returns, GAE and masked statistics on hand-worked cases; tensors are ``[..., T, E]``."""

from __future__ import annotations

import pytest
import torch

from metarl.core.returns import discounted_returns, gae_advantages, masked_mean, masked_normalize


def _column(values: list[float]) -> torch.Tensor:
    """A single episode as ``[T, 1]``."""
    return torch.tensor(values, dtype=torch.float64)[:, None]


def _ragged_batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Rewards, values ``[T=6, E=3]`` with episode lengths 6, 4 and 2 and garbage on padding; and the mask."""
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.tensor([6, 4, 2])
    mask = (torch.arange(6)[:, None] < lengths[None, :]).double()
    rewards = torch.randn(6, 3, generator=gen, dtype=torch.float64)
    values = torch.randn(6, 3, generator=gen, dtype=torch.float64)
    rewards = torch.where(mask.bool(), rewards, torch.full_like(rewards, 1e3))
    values = torch.where(mask.bool(), values, torch.full_like(values, -1e3))
    return rewards, values, mask


@pytest.mark.parametrize(
    ("rewards", "gamma", "expected"),
    [
        ([1.0, 1.0, 1.0], 0.5, [1.75, 1.5, 1.0]),
        ([1.0, 1.0, 1.0], 1.0, [3.0, 2.0, 1.0]),
        ([1.0, 2.0, 3.0], 0.0, [1.0, 2.0, 3.0]),
        ([0.0, 0.0, 0.0, 8.0], 0.5, [1.0, 2.0, 4.0, 8.0]),
    ],
    ids=["ones-half", "ones-undiscounted", "gamma-zero", "reward-only-at-end"],
)
def test_discounted_returns_matches_hand_worked(rewards, gamma, expected):
    out = discounted_returns(_column(rewards), torch.ones(len(rewards), 1, dtype=torch.float64), gamma)
    torch.testing.assert_close(out, _column(expected))


def test_discounted_returns_ragged_padding_is_zero_and_does_not_leak():
    rewards, _, mask = _ragged_batch()
    out = discounted_returns(rewards, mask, gamma=0.9)
    assert (out[mask == 0] == 0).all()
    for e, length in enumerate([6, 4, 2]):
        alone = discounted_returns(
            rewards[:length, e : e + 1], torch.ones(length, 1, dtype=torch.float64), 0.9
        )
        torch.testing.assert_close(out[:length, e : e + 1], alone)


def test_discounted_returns_ragged_hand_worked():
    rewards = torch.tensor([[1.0, 1.0], [1.0, 100.0], [1.0, 100.0]])
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0], [1.0, 0.0]])
    out = discounted_returns(rewards, mask, gamma=0.5)
    torch.testing.assert_close(out, torch.tensor([[1.75, 1.0], [1.5, 0.0], [1.0, 0.0]]))


@pytest.mark.parametrize("gamma", [0.5, 0.99, 1.0])
def test_gae_lambda_one_equals_returns_minus_values(gamma):
    rewards, values, mask = _ragged_batch()
    advantages = gae_advantages(rewards, values, mask, gamma, lam=1.0)
    expected = (discounted_returns(rewards, mask, gamma) - values) * mask
    torch.testing.assert_close(advantages, expected)


@pytest.mark.parametrize("gamma", [0.5, 0.99])
def test_gae_lambda_zero_equals_one_step_td_error(gamma):
    rewards, values, mask = _ragged_batch()
    advantages = gae_advantages(rewards, values, mask, gamma, lam=0.0)
    expected = torch.zeros_like(rewards)
    for e, length in enumerate([6, 4, 2]):
        for t in range(length):
            next_value = values[t + 1, e] if t + 1 < length else 0.0
            expected[t, e] = rewards[t, e] + gamma * next_value - values[t, e]
    torch.testing.assert_close(advantages, expected)


def test_gae_constant_values_hand_worked():
    # r = [1, 1, 1], V = 2 everywhere, gamma = lam = 0.5.
    # deltas: 1 + 0.5*2 - 2 = 0, 0, and 1 + 0 - 2 = -1 at the last step (no bootstrap past the end).
    # A_2 = -1, A_1 = 0 + 0.25 * -1 = -0.25, A_0 = 0 + 0.25 * -0.25 = -0.0625.
    rewards = _column([1.0, 1.0, 1.0])
    values = _column([2.0, 2.0, 2.0])
    mask = torch.ones_like(rewards)
    advantages = gae_advantages(rewards, values, mask, gamma=0.5, lam=0.5)
    torch.testing.assert_close(advantages, _column([-0.0625, -0.25, -1.0]))


def test_gae_reward_only_at_end_with_zero_values_is_discounted_reward():
    rewards = _column([0.0, 0.0, 0.0, 1.0])
    values = torch.zeros_like(rewards)
    advantages = gae_advantages(rewards, values, torch.ones_like(rewards), gamma=0.9, lam=0.5)
    # Only the last delta is non-zero, so A_t = (gamma lam)^(3 - t).
    torch.testing.assert_close(advantages, _column([0.45**3, 0.45**2, 0.45, 1.0]))


def test_gae_ragged_padding_is_zero_and_does_not_leak():
    rewards, values, mask = _ragged_batch()
    out = gae_advantages(rewards, values, mask, gamma=0.9, lam=0.8)
    assert (out[mask == 0] == 0).all()
    for e, length in enumerate([6, 4, 2]):
        ones = torch.ones(length, 1, dtype=torch.float64)
        alone = gae_advantages(rewards[:length, e : e + 1], values[:length, e : e + 1], ones, 0.9, 0.8)
        torch.testing.assert_close(out[:length, e : e + 1], alone)


@pytest.mark.parametrize("fn", ["returns", "gae", "normalize"])
def test_leading_task_axis_matches_per_task_calls(fn):
    batches = [_ragged_batch(seed) for seed in range(3)]
    rewards, values, mask = (torch.stack(parts) for parts in zip(*batches, strict=True))
    compute = {
        "returns": lambda r, v, m: discounted_returns(r, m, 0.9),
        "gae": lambda r, v, m: gae_advantages(r, v, m, 0.9, 0.95),
        "normalize": lambda r, v, m: masked_normalize(r, m),
    }[fn]
    batched = compute(rewards, values, mask)
    assert batched.shape == (3, 6, 3)
    for n in range(3):
        torch.testing.assert_close(batched[n], compute(rewards[n], values[n], mask[n]))


def test_masked_mean_ignores_padding():
    x = torch.tensor([[1.0, 3.0], [5.0, 1e6], [1e6, 1e6]])
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0], [0.0, 0.0]])
    torch.testing.assert_close(masked_mean(x, mask), torch.tensor(3.0))


def test_masked_mean_per_task_and_over_one_axis():
    x = torch.tensor([[[1.0, 2.0], [3.0, 9.0]], [[4.0, 4.0], [4.0, 4.0]]])
    mask = torch.tensor([[[1.0, 1.0], [1.0, 0.0]], [[1.0, 0.0], [0.0, 0.0]]])
    torch.testing.assert_close(masked_mean(x, mask), torch.tensor([2.0, 4.0]))
    torch.testing.assert_close(masked_mean(x, mask, dims=(-2,)), torch.tensor([[2.0, 2.0], [4.0, 0.0]]))


def test_masked_mean_all_padding_is_zero_not_nan():
    assert masked_mean(torch.ones(3, 2), torch.zeros(3, 2)).item() == 0.0


def test_masked_normalize_zero_mean_unit_std_on_real_steps_and_zero_on_padding():
    rewards, _, mask = _ragged_batch()
    out = masked_normalize(rewards * 3.0 + 7.0, mask)
    real = out[mask.bool()]
    torch.testing.assert_close(real.mean(), torch.tensor(0.0, dtype=torch.float64), atol=1e-10, rtol=0)
    torch.testing.assert_close(real.std(unbiased=False), torch.tensor(1.0, dtype=torch.float64))
    assert (out[mask == 0] == 0).all()
