"""Value baselines for policy-gradient advantages.

:class:`LinearFeatureBaseline` is the one of the MAML paper (from rllab, Duan et al., arXiv:1604.06778): a
ridge regression of the discounted return on ``[o, o^2, t, t^2, t^3, 1]`` (``o`` clipped to ``[-10, 10]``,
``t = step / 100``), refit on each task's own episodes every time advantages are needed (:func:`gae_data`).
"""

from __future__ import annotations

import torch
from torch import Tensor

from metarl.config import MetaConfig
from metarl.core.returns import discounted_returns, gae_advantages, masked_normalize
from metarl.core.types import EpisodeBatch


def linear_baseline_features(observations: Tensor) -> Tensor:
    """Features of ``observations [..., T, E, D]``: ``[..., T, E, 2D + 4]``."""
    obs = observations.clamp(-10.0, 10.0)
    horizon = observations.shape[-3]
    t = torch.arange(horizon, dtype=obs.dtype, device=obs.device) / 100.0
    t = t.view(horizon, 1, 1).expand(*obs.shape[:-1], 1)
    return torch.cat([obs, obs.pow(2), t, t.pow(2), t.pow(3), torch.ones_like(t)], dim=-1)


def fit_linear_baseline(features: Tensor, targets: Tensor, mask: Tensor, reg: float = 1e-5) -> Tensor:
    """Ridge least squares per task, in float64, by Cholesky factorisation of ``X^T X + reg I``.

    While the factorisation fails or the solution is not finite the ridge coefficient grows tenfold, up to
    ``1e4 * reg``, as rllab does. Not ``torch.linalg.solve``: with torch's MKL build and two threads, batched
    LU on Ant-sized systems (214 features) fails ("Parameter 6 was incorrect on entry to DLASWP") and hangs.

    Args:
        features: ``[N, T, E, F]``.
        targets: ``[N, T, E]`` (discounted returns).
        mask: ``[N, T, E]``; padding rows are left out of the fit.
        reg: ridge coefficient.

    Returns:
        weights ``[N, F]`` (float64).
    """
    x = (features * mask[..., None]).flatten(1, 2).double()
    y = (targets * mask).flatten(1, 2).double()
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
        """Fit on ``targets [N, T, E]`` and return the predicted values ``[N, T, E]`` on the same episodes."""
        features = linear_baseline_features(observations)
        weights = fit_linear_baseline(features, targets, mask, self.reg)
        values = torch.einsum("nief,nf->nie", features.double(), weights)
        return (values * mask).to(targets.dtype)


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
