"""Returns, advantages and masked statistics (pure functions).

Time is the second-to-last axis: tensors are ``[..., T, E]`` (e.g. ``[N, T, E]`` for a meta-batch). Padding
steps (``mask == 0``) contribute nothing, and nothing is bootstrapped past the last real step: episodes are
finite-horizon, as in the MAML paper.
"""

from __future__ import annotations

import torch
from torch import Tensor


def discounted_returns(rewards: Tensor, mask: Tensor, gamma: float) -> Tensor:
    """Reward-to-go ``G_t = sum_k gamma^k r_{t+k}`` within each episode.

    Args:
        rewards: ``[..., T, E]``.
        mask: ``[..., T, E]``, 1 for real steps.
        gamma: discount factor in ``[0, 1]``.

    Returns:
        ``[..., T, E]``, zero on padding.
    """
    rewards = rewards * mask
    returns = torch.zeros_like(rewards)
    running = rewards.new_zeros(rewards.shape[:-2] + rewards.shape[-1:])
    for t in range(rewards.shape[-2] - 1, -1, -1):
        running = rewards[..., t, :] + gamma * running * mask[..., t, :]
        returns[..., t, :] = running
    return returns * mask


def gae_advantages(rewards: Tensor, values: Tensor, mask: Tensor, gamma: float, lam: float) -> Tensor:
    """Generalised advantage estimation (Schulman et al., arXiv:1506.02438).

    ``delta_t = r_t + gamma V_{t+1} - V_t`` with ``V`` zero after an episode's last real step, and
    ``A_t = sum_k (gamma lam)^k delta_{t+k}``. With ``lam = 1`` this is ``G_t - V_t``.

    Args:
        rewards: ``[..., T, E]``.
        values: ``[..., T, E]`` baseline predictions.
        mask: ``[..., T, E]``.
        gamma: discount factor.
        lam: GAE parameter.

    Returns:
        ``[..., T, E]`` advantages, zero on padding.
    """
    values = values * mask
    next_values = torch.cat([values[..., 1:, :], torch.zeros_like(values[..., :1, :])], dim=-2)
    deltas = (rewards + gamma * next_values - values) * mask
    advantages = torch.zeros_like(deltas)
    running = deltas.new_zeros(deltas.shape[:-2] + deltas.shape[-1:])
    for t in range(deltas.shape[-2] - 1, -1, -1):
        running = deltas[..., t, :] + gamma * lam * running * mask[..., t, :]
        advantages[..., t, :] = running
    return advantages * mask


def masked_mean(x: Tensor, mask: Tensor, dims: tuple[int, ...] = (-2, -1)) -> Tensor:
    """Mean of ``x`` over the real steps, over ``dims`` (default: time and episodes).

    Args:
        x: ``[..., T, E]``.
        mask: same shape, 1 for real steps.
        dims: the axes to reduce.
    """
    return (x * mask).sum(dim=dims) / mask.sum(dim=dims).clamp_min(1.0)


def masked_normalize(x: Tensor, mask: Tensor, eps: float = 1e-8) -> Tensor:
    """Shift and scale ``x`` to zero mean, unit variance over the real steps of each leading index.

    Args:
        x: ``[..., T, E]``.
        mask: same shape.
        eps: added to the standard deviation.

    Returns:
        ``[..., T, E]``, zero on padding.
    """
    mean = masked_mean(x, mask)[..., None, None]
    var = masked_mean((x - mean) ** 2, mask)[..., None, None]
    return (x - mean) / (var.sqrt() + eps) * mask
