"""Trust-region pieces (Schulman et al., arXiv:1502.05477): conjugate gradient and backtracking line search.

Pure functions on flat parameter vectors ``[P]``; the Fisher-vector product is passed in as a callable.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor


def conjugate_gradient(
    matvec: Callable[[Tensor], Tensor], b: Tensor, iterations: int = 10, residual_tol: float = 1e-10
) -> tuple[Tensor, Tensor]:
    """Approximately solve ``A x = b`` for symmetric positive-definite ``A`` given only ``v -> A v``.

    Args:
        matvec: the product with ``A``, ``[P] -> [P]``.
        b: right-hand side ``[P]``.
        iterations: at most this many iterations (exact after ``P`` in exact arithmetic).
        residual_tol: stop once the squared residual norm falls below this.

    Returns:
        ``(x, A x)``, both ``[P]``. ``A x`` is ``b - r`` from the residual ``r`` that the iteration keeps, so
        the trust-region scaling needs no extra product (each product is the costly part of a TRPO step).
    """
    x = torch.zeros_like(b)
    r = b.clone()
    p = b.clone()
    r_dot = r @ r
    for _ in range(iterations):
        if r_dot < residual_tol:
            break
        a_p = matvec(p)
        alpha = r_dot / (p @ a_p)
        x = x + alpha * p
        r = r - alpha * a_p
        new_r_dot = r @ r
        p = r + (new_r_dot / r_dot) * p
        r_dot = new_r_dot
    return x, b - r


def trust_region_step(direction: Tensor, fisher_direction: Tensor, max_kl: float) -> Tensor:
    """Scale ``direction`` so that the quadratic KL model ``0.5 s^T F s`` equals ``max_kl``.

    Args:
        direction: ``[P]`` search direction ``s``.
        fisher_direction: ``[P]``, ``F s``.
        max_kl: trust-region radius.
    """
    shs = 0.5 * (direction @ fisher_direction)
    return direction * math.sqrt(max_kl / max(float(shs), 1e-12))


@dataclass(frozen=True)
class LineSearchResult:
    """Outcome of :func:`backtracking_line_search`.

    Attributes:
        params: accepted parameters ``[P]`` (the old ones if no step was accepted).
        accepted: whether a step was accepted.
        steps: backtracking steps tried (1 = the full step was accepted).
        loss: loss at ``params``.
        kl: mean KL at ``params`` (0 if rejected).
        full_step_kl: mean KL of the first candidate, the full step (NaN if not evaluated or not finite):
            against ``max_kl`` it says how far the quadratic KL model the step was scaled with is off.
    """

    params: Tensor
    accepted: bool
    steps: int
    loss: float
    kl: float
    full_step_kl: float = math.nan


def backtracking_line_search(
    evaluate: Callable[[Tensor], tuple[Tensor, Tensor]],
    params: Tensor,
    full_step: Tensor,
    loss_before: float,
    max_kl: float,
    ratio: float = 0.8,
    max_steps: int = 15,
) -> LineSearchResult:
    """Try ``params - ratio^k * full_step`` for ``k = 0, 1, ...`` until one is accepted.

    The first candidate that lowers the loss within the KL limit is accepted. A candidate whose loss or KL is
    not finite is rejected like any other failing one.

    Args:
        evaluate: ``params -> (loss, mean KL)`` (scalars).
        params: current parameters ``[P]``.
        full_step: ``[P]``, subtracted from ``params`` at scale 1.
        loss_before: loss at ``params``.
        max_kl: largest mean KL accepted.
        ratio: shrink factor per step.
        max_steps: candidates to try.
    """
    scale, full_step_kl = 1.0, math.nan
    for k in range(1, max_steps + 1):
        candidate = params - scale * full_step
        loss, kl = (float(v) for v in evaluate(candidate))
        if k == 1:
            full_step_kl = kl
        if math.isfinite(loss) and math.isfinite(kl) and loss < loss_before and kl <= max_kl:
            return LineSearchResult(candidate, True, k, loss, kl, full_step_kl)
        scale *= ratio
    return LineSearchResult(params, False, max_steps, loss_before, 0.0, full_step_kl)


def trpo_metrics(
    loss_before: Tensor, grad: Tensor, theta: Tensor, result: LineSearchResult, fraction: float
) -> dict[str, float]:
    """The ``trpo/*`` metrics of one meta-update from ``theta`` (``fraction``: the Fisher subsample's)."""
    return {
        "trpo/surrogate_before": -float(loss_before),
        "trpo/surrogate_after": -result.loss,
        "trpo/improvement": float(loss_before) - result.loss,
        "trpo/kl": result.kl,
        "trpo/full_step_kl": result.full_step_kl,
        "trpo/fisher_subsample": fraction,
        "trpo/ls_steps": float(result.steps),
        "trpo/accepted": float(result.accepted),
        "trpo/grad_norm": grad.norm().item(),
        "trpo/step_norm": (result.params - theta).norm().item(),
    }


def hessian_vector_product(f: Callable[[Tensor], Tensor], x: Tensor) -> Callable[[Tensor], Tensor]:
    """``v [P] -> H v [P]`` with ``H`` the Hessian of the scalar ``f`` at ``x [P]`` (double backprop).

    With ``f`` the mean KL this is TRPO's reference Fisher-vector product (``trpo.fisher_product:
    double_backprop``).
    """
    vjp_fn = torch.func.vjp(torch.func.grad(f), x)[1]
    return lambda v: vjp_fn(v)[0]
