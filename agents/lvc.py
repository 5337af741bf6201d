"""ProMP's low-variance curvature inner loss, ``inner.estimator: lvc`` (Rothfuss et al., arXiv:1810.06784).

The inner loss is importance-weighted against the policy that collected the support episodes:
``-mean_t pi(a_t|s_t) / pi_b(a_t|s_t) A_t``. At ``pi = pi_b`` it has the paper's gradient, so the inner step
at the current ``theta`` is unchanged; its Hessian differs by ``-mean_t A_t grad log pi_t grad log pi_t^T``,
the score-function term that the paper's estimator drops when the meta-gradient differentiates the inner
step (the support episodes' distribution depends on ``theta``). So the Jacobian of the adaptation, and the
meta-gradient and the Fisher through it, gain ``alpha * mean_t A_t grad log pi_t grad log pi_t^T``. Away from
``pi_b`` (in the line search) the ratio reweights the episodes, so the objective that TRPO's line search
evaluates is the one whose gradient and Fisher the step was built from.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
from torch import Tensor

from metarl.core.returns import masked_mean

from .policies import gaussian_log_prob
from .task_map import map_tasks


def lvc_loss(log_prob: Tensor, behaviour_log_prob: Tensor, advantages: Tensor, mask: Tensor) -> Tensor:
    """``-mean_t pi(a_t|s_t) / pi_b(a_t|s_t) A_t`` over one task's real steps; every input ``[T, E]``."""
    return -masked_mean(torch.exp(log_prob - behaviour_log_prob) * advantages, mask)


def behaviour_log_probs(
    theta: Tensor,
    supports: tuple[tuple[Tensor, Tensor, Tensor, Tensor], ...],
    adapt: Callable[[Tensor, tuple], Tensor],
    outputs: Callable[[Tensor, Tensor], tuple[Tensor, Tensor]],
) -> tuple[Tensor, ...]:
    """One task's ``log pi_b(a|s) [T, E]`` for each support set, ``pi_b`` the policy that collected it.

    That is ``theta`` for the first set and ``theta`` adapted by the steps before it for the others.

    Args:
        theta: flat meta-parameters.
        supports: one ``(observations, actions, advantages, mask)`` per inner step.
        adapt: ``(theta, supports[:k]) -> adapted [P]``, the paper's first-order adaptation (the adapted
            values do not depend on the estimator at ``theta``).
        outputs: ``(params [P], observations [T, E, D]) -> (mean [T, E, A], log_std [A])``.
    """
    out = []
    for k, (observations, actions, _, _) in enumerate(supports):
        mean, log_std = outputs(adapt(theta, supports[:k]), observations)
        out.append(gaussian_log_prob(mean, log_std, actions))
    return tuple(out)


def with_behaviour_log_probs(
    theta: Tensor,
    supports: tuple[tuple[Tensor, ...], ...],
    adapt: Callable[[Tensor, tuple], Tensor],
    outputs: Callable[[Tensor, Tensor], tuple[Tensor, Tensor]],
    vectorize: bool,
) -> tuple[tuple[Tensor, ...], ...]:
    """Each support set ``[N, ...]`` with its :func:`behaviour_log_probs` ``[N, T, E]`` appended (detached).

    ``adapt`` and ``outputs`` as in :func:`behaviour_log_probs`, mapped over the tasks (vmapped if
    ``vectorize``).
    """
    behaviour = functools.partial(behaviour_log_probs, adapt=adapt, outputs=outputs)
    with torch.no_grad():
        log_probs = map_tasks(behaviour, (None, 0), vectorize)(theta, supports)
    return tuple((*data, lp.detach()) for data, lp in zip(supports, log_probs, strict=True))
