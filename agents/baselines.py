"""Value baselines for policy-gradient advantages.

:class:`LinearFeatureBaseline` is the one of the MAML paper (from rllab, Duan et al., arXiv:1604.06778): a
ridge regression of the discounted return on ``[o, o^2, t, t^2, t^3, 1]`` (``o`` clipped to ``[-10, 10]``,
``t = step / 100``), refit on each task's own episodes every time advantages are needed (:func:`gae_data`).

:func:`compact_steps` then drops the padding the losses would otherwise pay for: ``[N, T, E, ...]`` becomes
``[N, S, 1, ...]`` with each task's real steps first and ``S`` the most real steps of any task.
"""

from __future__ import annotations

import torch
from torch import Tensor

from metarl.config import MetaConfig
from metarl.core.returns import discounted_returns, gae_advantages, masked_normalize
from metarl.core.types import EpisodeBatch


def step_features(observations: Tensor, steps: Tensor) -> Tensor:
    """Features of ``observations [..., D]`` taken at time steps ``steps [...]``: ``[..., 2D + 4]``."""
    obs = observations.clamp(-10.0, 10.0)
    t = (steps.to(obs.dtype) / 100.0)[..., None]
    return torch.cat([obs, obs.pow(2), t, t.pow(2), t.pow(3), torch.ones_like(t)], dim=-1)


def linear_baseline_features(observations: Tensor) -> Tensor:
    """Features of ``observations [..., T, E, D]``: ``[..., T, E, 2D + 4]``."""
    horizon = observations.shape[-3]
    steps = torch.arange(horizon, device=observations.device).view(horizon, 1)
    return step_features(observations, steps.expand(observations.shape[:-1]))


def fit_linear_baseline(features: Tensor, targets: Tensor, mask: Tensor, reg: float = 1e-5) -> Tensor:
    """Ridge least squares per task on the real steps of a padded batch (:func:`ridge_weights`).

    Args:
        features: ``[N, T, E, F]``.
        targets: ``[N, T, E]`` (discounted returns).
        mask: ``[N, T, E]``; padding rows are left out of the fit.
        reg: ridge coefficient.

    Returns:
        weights ``[N, F]`` (float64).
    """
    index = real_steps_index(mask)  # padding rows add nothing to the sums: leave them out
    real = gather_steps(mask, index)
    return ridge_weights(
        gather_steps(features, index) * real[..., None], gather_steps(targets, index) * real, reg
    )


def ridge_weights(x: Tensor, y: Tensor, reg: float) -> Tensor:
    """Ridge least squares per task, in float64, by Cholesky factorisation of ``X^T X + reg I``.

    While the factorisation fails or the solution is not finite the ridge coefficient grows tenfold, up to
    ``1e4 * reg``, as rllab does. Not ``torch.linalg.solve``: with torch's MKL build and two threads, batched
    LU on Ant-sized systems (214 features) fails ("Parameter 6 was incorrect on entry to DLASWP") and hangs.

    Args:
        x: ``[N, S, F]`` features, zero on rows to leave out.
        y: ``[N, S]`` targets, likewise.
        reg: ridge coefficient.

    Returns:
        weights ``[N, F]`` (float64).
    """
    x, y = x.double(), y.double()
    gram = x.transpose(1, 2) @ x
    rhs = (x.transpose(1, 2) @ y[..., None])[..., 0]
    eye = torch.eye(gram.shape[-1], dtype=gram.dtype, device=gram.device)
    for _ in range(5):
        factor, info = torch.linalg.cholesky_ex(gram + reg * eye)
        weights = torch.cholesky_solve(rhs[..., None], factor)[..., 0]
        if bool((info == 0).all()) and torch.isfinite(weights).all():
            break
        reg *= 10
    return weights


class LinearFeatureBaseline:
    """Per-task linear feature baseline (no state kept between fits).

    Args:
        reg: ridge coefficient of the least-squares fit.
    """

    def __init__(self, reg: float = 1e-5) -> None:
        """Store the ridge coefficient."""
        if reg <= 0:
            raise ValueError(f"baseline reg: must be > 0, got {reg}")
        self.reg = reg

    def fit_predict(self, observations: Tensor, targets: Tensor, mask: Tensor) -> Tensor:
        """Fit on ``targets [N, T, E]`` and return the predicted values ``[N, T, E]`` on the same episodes.

        Features are built for the real steps only (:func:`real_steps_index`): a batch of falling ants or
        one counted in env steps is mostly padding.
        """
        n, horizon, episodes = mask.shape
        index = real_steps_index(mask)
        steps = torch.arange(horizon, device=mask.device).view(1, horizon, 1).expand(n, horizon, episodes)
        real = gather_steps(mask, index)  # [N, S]
        features = (
            step_features(gather_steps(observations, index), gather_steps(steps, index)) * real[..., None]
        )
        weights = ridge_weights(features, gather_steps(targets, index) * real, self.reg)
        values = torch.einsum("nsf,nf->ns", features.double(), weights)  # zero on padding slots
        flat = values.new_zeros(n, horizon * episodes).scatter_(1, index, values)
        return flat.view(n, horizon, episodes).to(targets.dtype)


def real_steps_index(mask: Tensor) -> Tensor:
    """``[N, S]`` indices into each task's flattened ``T * E`` steps: its real ones first, in order.

    ``S`` is the most real steps of any task; a task with fewer ends with padding slots (mask 0 there).
    """
    real = mask.flatten(1, 2) > 0
    most = int(real.sum(dim=1).max())
    return torch.argsort((~real).to(torch.uint8), dim=1, stable=True)[:, :most]


def gather_steps(x: Tensor, index: Tensor) -> Tensor:
    """``x [N, T, E, ...]`` -> ``[N, S, ...]``, the steps ``index [N, S]`` names."""
    flat = x.flatten(1, 2)
    picks = index.view(*index.shape, *([1] * (flat.dim() - 2))).expand(*index.shape, *flat.shape[2:])
    return torch.gather(flat, 1, picks)


def compact_steps(data: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
    """Policy-gradient data ``[N, T, E, ...]`` -> ``[N, S, 1, ...]``: each task's real steps, padding dropped.

    A batch of falling ants, or one counted in env steps (whose episode axis is as wide as the task with the
    most episodes), is mostly padding, and every padded step costs the losses, KLs and Fisher products as much
    as a real one. They are all masked means over the two step axes, so this changes them only by the order
    of summation. ``data`` is returned as it is when no task has padding to drop (a full ``T * E`` batch).

    Args:
        data: tensors with leading axes ``[N, T, E]``; the fourth is the mask ``[N, T, E]``.
    """
    mask = data[3]
    index = real_steps_index(mask)
    if index.shape[1] == mask.shape[1] * mask.shape[2]:
        return data
    return tuple(gather_steps(x, index).unsqueeze(2) for x in data)


def gae_data(
    batch: EpisodeBatch, baseline: LinearFeatureBaseline, meta: MetaConfig
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Batch -> ``(observations, actions, advantages, mask)``, each with a leading task axis ``N``.

    The baseline is refit on each task's episodes; the advantages are GAE ``[N, T, E]`` (``meta.gamma``,
    ``meta.gae_lambda``), normalised per task if ``meta.normalize_advantages``.
    """
    returns = discounted_returns(batch.rewards, batch.mask, meta.gamma)
    values = baseline.fit_predict(batch.observations, returns, batch.mask)
    adv = gae_advantages(batch.rewards, values, batch.mask, meta.gamma, meta.gae_lambda)
    adv = masked_normalize(adv, batch.mask) if meta.normalize_advantages else adv
    return batch.observations, batch.actions, adv, batch.mask
