"""MAML-TRPO's meta-gradient and Fisher-vector product written out for the Gaussian MLP policy.

With one inner policy-gradient step ``phi_i = theta - alpha * grad L_i(theta)`` the TRPO meta-update needs,
per task ``i``, the meta-gradient ``J_i^T g_i`` and the products ``J_i^T F_i J_i v``: ``J_i = I - alpha H_i``
is the inner step's Jacobian (``H_i`` the Hessian of the inner loss, so ``J_i`` is symmetric), ``g_i`` the
query surrogate's gradient and ``F_i`` the Fisher of the adapted Gaussian policy on the query steps.
:mod:`agents.maml_trpo` gets them with ``torch.func`` through the vmapped inner step. Here
:class:`ClosedFormMetaUpdate` holds them for :class:`agents.policies.GaussianMLPPolicy`, from the layers'
derivatives written out (:mod:`agents.mlp_derivatives`, the R-operator), with the primal passes computed
once per meta-update and reused by every conjugate-gradient iteration. The numbers are the same (tested
against ``torch.func`` to 1e-10 in float64); the work per product is about a third, and tasks go through in
small chunks whose activations stay in the CPU's cache.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from metarl.config import InnerConfig
from metarl.core.returns import masked_mean

from .mlp_derivatives import (
    Layers,
    MLPLayout,
    PolicyGradientCurvature,
    QueryFisher,
    fisher_product,
    gaussian_pg_signal,
    inner_gradient,
    inner_hessian_product,
    join_params,
    mlp_forward,
    mlp_layout,
    mlp_vjp,
    split_params,
)
from .policies import gaussian_kl, gaussian_log_prob

#: tasks per chunk, so that a chunk's activations stay in a CPU core's cache: at the paper's 4000 steps per
#: task and 100 units, 2 tasks per chunk took 0.54 s per product, 4 took 0.83 s and 8 took 1.09 s (2 cores)
CHUNK_TASKS = 2


def _flat(t: Tensor) -> Tensor:
    """``[C, T, E, ...] -> [C, T * E, ...]``."""
    return t.reshape(t.shape[0], t.shape[1] * t.shape[2], *t.shape[3:])


def _real_step_weights(mask: Tensor) -> Tensor:
    """``mask [C, T, E] -> mask / real steps [C, n]`` (the masked mean's weights)."""
    return _flat(mask) / mask.sum(dim=(-2, -1)).clamp_min(1.0)[:, None]


@dataclass(frozen=True)
class _Chunk:
    curvature: PolicyGradientCurvature | None
    fisher: QueryFisher


class ClosedFormMetaUpdate:
    """The pieces of one TRPO meta-update for a Gaussian MLP policy and at most one inner step.

    Builds every task's adapted parameters, the old adapted policies' outputs on the query steps, the mean
    query loss and its meta-gradient once; :meth:`fisher_vector_product` then costs two Hessian-vector
    products and one Fisher product per task and nothing else.

    Args:
        layout: the policy's :func:`mlp_layout`.
        theta: meta-parameters ``[P]``.
        supports: no support set (no inner step: ``J = I``) or one ``(obs, actions, advantages, mask)``
            with a leading task axis (``[N, T, E, ...]``).
        query: the query ``(obs, actions, advantages, mask)``.
        step_size: the inner step size ``alpha``.
        first_order: the adapted parameters are the same, but ``J = I`` (first-order MAML).
        fisher_tasks: the Fisher products average over the first this many tasks (``trpo.fisher_subsample``).
    """

    def __init__(
        self,
        layout: MLPLayout,
        theta: Tensor,
        supports: tuple[tuple[Tensor, ...], ...],
        query: tuple[Tensor, ...],
        step_size: float,
        first_order: bool,
        fisher_tasks: int,
    ) -> None:
        """See the class docstring."""
        if len(supports) > 1:
            raise ValueError(f"the closed-form meta-update takes at most one inner step, got {len(supports)}")
        self.layout, self.step_size = layout, step_size
        self.second_order = bool(supports) and not first_order
        num_tasks = query[0].shape[0]
        self.fisher_tasks = min(max(1, fisher_tasks), num_tasks)
        bounds = _chunk_bounds(num_tasks, self.fisher_tasks, CHUNK_TASKS)
        self._bounds, self._supports, self._query = bounds, supports, query
        layers = split_params(theta, layout)
        grad, means, log_stds, losses = torch.zeros_like(theta), [], [], []
        self.chunks: list[_Chunk] = []
        for start, stop in bounds:
            chunk, mean, log_std, loss, query_grad = self._build(
                layers,
                theta,
                [tuple(t[start:stop] for t in d) for d in supports],
                [t[start:stop] for t in query],
            )
            grad += self._jacobian_t(chunk, query_grad).sum(0)
            means.append(mean)
            log_stds.append(log_std)
            losses.append(loss)
            self.chunks.append(chunk)
        #: mean query loss ``-mean_i E[A]`` at the current parameters (importance ratio 1)
        self.loss = torch.cat(losses).mean()
        #: its gradient ``[P]`` through the inner step
        self.grad = grad / num_tasks
        shape = query[1].shape
        #: the adapted policies' outputs on the query steps: ``(mean [N, T, E, A], log_std [N, A])``
        self.old = torch.cat(means).reshape(shape), torch.cat(log_stds)

    def objective(self, theta: Tensor) -> tuple[Tensor, Tensor]:
        """``theta [P] -> (mean query loss, mean KL)`` against the old adapted policies (the line search's).

        The same numbers as :meth:`agents.maml_trpo.MAMLTRPO.meta_objective` (its surrogate and KL), chunk
        by chunk with the written-out inner gradient.
        """
        layers = split_params(theta, self.layout)
        losses, kls = [], []
        for start, stop in self._bounds:
            supports = [tuple(t[start:stop] for t in d) for d in self._supports]
            obs, actions, advantages, mask = (t[start:stop] for t in self._query)
            adapted = theta.expand(stop - start, -1)
            if supports:
                s_obs, s_actions, s_advantages, s_mask = supports[0]
                coef = _real_step_weights(s_mask) * _flat(s_advantages)
                grad, _ = inner_gradient(layers, _flat(s_obs), _flat(s_actions), coef, self.layout.activation)
                adapted = theta - self.step_size * grad
            weights, biases, log_std = split_params(adapted, self.layout)
            mean = mlp_forward(weights, biases, _flat(obs), self.layout.activation).mean.reshape(
                actions.shape
            )
            old_mean, old_log_std = self.old[0][start:stop], self.old[1][start:stop]
            log_std, old_log_std = log_std[:, None, None, :], old_log_std[:, None, None, :]
            log_ratio = gaussian_log_prob(mean, log_std, actions) - gaussian_log_prob(
                old_mean, old_log_std, actions
            )
            losses.append(-masked_mean(torch.exp(log_ratio) * advantages, mask))
            kls.append(masked_mean(gaussian_kl(old_mean, old_log_std, mean, log_std), mask))
        return torch.cat(losses).mean(), torch.cat(kls).mean()

    def _build(self, layers: Layers, theta: Tensor, supports: list, query: list):
        """One chunk: adapt, then the query pass at the adapted parameters."""
        num = query[0].shape[0]
        curvature = None
        adapted = theta.expand(num, -1)
        if supports:
            obs, actions, advantages, mask = supports[0]
            coef = _real_step_weights(mask) * _flat(advantages)
            inner_grad, curvature = inner_gradient(
                layers, _flat(obs), _flat(actions), coef, self.layout.activation
            )
            adapted = theta - self.step_size * inner_grad
        weights, biases, log_std = split_params(adapted, self.layout)
        obs, actions, advantages, mask = query
        fwd = mlp_forward(weights, biases, _flat(obs), self.layout.activation)
        step_weights = _real_step_weights(mask)
        coef = step_weights * _flat(advantages)
        d_mean, d_log_std = gaussian_pg_signal(fwd.mean, log_std, _flat(actions), coef)
        grad_w, grad_b, _, _ = mlp_vjp(fwd, weights, d_mean)
        query_grad = join_params((grad_w, grad_b, d_log_std))
        fisher = QueryFisher(weights, fwd, step_weights, torch.exp(-2 * log_std))
        chunk = _Chunk(curvature if self.second_order else None, fisher)
        return chunk, fwd.mean.detach(), log_std.detach(), -coef.sum(-1), query_grad

    def _jacobian_t(self, chunk: _Chunk, u: Tensor) -> Tensor:
        """``J_i^T u`` (``= J_i u``: ``J`` is symmetric) for a tangent ``[P]`` or ``[C, P]`` -> ``[C, P]``."""
        num = chunk.fisher.step_weights.shape[0]
        if chunk.curvature is None:
            return u.expand(num, -1)
        return u - self.step_size * inner_hessian_product(chunk.curvature, u, self.layout)

    def fisher_vector_product(self, v: Tensor) -> Tensor:
        """``mean_i J_i^T F_i J_i v`` over the first ``fisher_tasks`` tasks: ``[P] -> [P]`` (undamped)."""
        out = torch.zeros_like(v)
        seen = 0
        for chunk in self.chunks:
            if seen >= self.fisher_tasks:
                break
            seen += chunk.fisher.step_weights.shape[0]
            fisher_jv = fisher_product(chunk.fisher, self._jacobian_t(chunk, v), self.layout)
            out += self._jacobian_t(chunk, fisher_jv).sum(0)
        return out / self.fisher_tasks


def _chunk_bounds(num_tasks: int, first: int, size: int) -> list[tuple[int, int]]:
    """Chunks of at most ``size`` tasks, none straddling task ``first`` (the Fisher subsample's end)."""
    bounds = []
    for begin, end in ((0, first), (first, num_tasks)):
        bounds += [(s, min(s + size, end)) for s in range(begin, end, size)]
    return bounds


def closed_form_supported(policy: nn.Module, steps: int, learned: bool, estimator: str) -> str | None:
    """None if :class:`ClosedFormMetaUpdate` covers this learner, else why not (one clause)."""
    if mlp_layout(policy) is None:
        return f"the policy is a {type(policy).__name__}, not a GaussianMLPPolicy"
    if steps > 1:
        return f"inner.steps is {steps} (it takes at most one inner step)"
    if learned:
        return "inner.learn_step_size is true (the step sizes are not learned here)"
    if estimator != "reinforce":
        return f"inner.estimator is {estimator!r} (it takes the paper's reinforce)"
    return None


def closed_form_linearization(
    policy: nn.Module,
    inner: InnerConfig,
    learned: bool,
    supports: tuple[tuple[Tensor, ...], ...],
    query: tuple[Tensor, ...],
    theta: Tensor,
    fisher_tasks: int,
) -> tuple[Tensor, Tensor, Callable[[Tensor], Tensor], Callable[[Tensor], tuple[Tensor, Tensor]]]:
    """:meth:`agents.maml_trpo.MAMLTRPO.linearize`'s ``(loss, grad, fvp, objective)`` in closed form.

    Args:
        policy: the meta-policy.
        inner: the inner-loop settings.
        learned: whether the learner learns its step sizes (not covered here).
        supports: as :class:`ClosedFormMetaUpdate` takes them.
        query: the query data.
        theta: meta-parameters ``[P]``.
        fisher_tasks: the Fisher products average over the first this many tasks.

    Raises:
        ValueError: :func:`closed_form_supported` says it does not cover this learner.
    """
    layout = mlp_layout(policy)
    why = closed_form_supported(policy, len(supports), learned, inner.estimator)
    if layout is None or why is not None:
        raise ValueError(f"trpo.fisher_product: closed_form does not apply: {why}; use jfj")
    with torch.no_grad():
        update = ClosedFormMetaUpdate(
            layout, theta, supports, query, inner.step_size, inner.first_order, fisher_tasks
        )
    return update.loss, update.grad, update.fisher_vector_product, update.objective


__all__ = ["CHUNK_TASKS", "ClosedFormMetaUpdate", "closed_form_linearization", "closed_form_supported"]
