"""MAMLTRPO: MAML with a TRPO meta-update (Finn et al., 2017, arXiv:1703.03400, Algorithm 3).

:meth:`MAMLTRPO.sample` collects support episodes for each of ``N`` tasks, adapts with a policy-gradient
step (``inner.steps`` times, fresh episodes each time), then collects query episodes with the adapted
parameters. :meth:`MAMLTRPO.step` maximises the query surrogate of the *adapted* policy ``adapt(theta)``
with TRPO: the gradient goes through the inner step(s), the Fisher-vector product is the Hessian of the mean
KL between the old and new adapted policies, conjugate gradient gives the direction, and a backtracking line
search accepts the first step that improves the surrogate within ``trpo.max_kl``.

The file follows that update: the inner loss, the adaptation, the query surrogate and KL, the Fisher product,
the TRPO step, then the class holding the state. Per-task maths is a pure function of the flat ``theta``,
mapped over tasks with ``torch.func.vmap`` (or a loop, ``trpo.vectorize: false``). Variants live beside it:
:mod:`agents.meta_sgd` (learned step sizes), :mod:`agents.lvc` (ProMP's inner loss),
:mod:`agents.fisher_subsample` and :mod:`agents.mlp_curvature` (``trpo.fisher_product: closed_form``).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor
from torch.func import functional_call

from metarl.collection import Collector
from metarl.config import InnerConfig, MetaConfig, TRPOConfig
from metarl.core.errors import NonFiniteError
from metarl.core.functional import (
    Params,
    StepSize,
    expand_params,
    flatten_params,
    inner_adapt,
    unflatten_params,
)
from metarl.core.returns import masked_mean
from metarl.core.trpo import (
    LineSearchResult,
    backtracking_line_search,
    conjugate_gradient,
    hessian_vector_product,
    trpo_metrics,
    trust_region_step,
)
from metarl.core.types import EpisodeBatch, MetaBatch, Task

from . import fisher_subsample as subsample
from . import meta_sgd
from .baselines import LinearFeatureBaseline, compact_steps, gae_data
from .lvc import lvc_loss, with_behaviour_log_probs
from .maml_state import learner_state, load_learner_state
from .mlp_curvature import closed_form_linearization
from .policies import (
    GaussianMLPPolicy,
    TaskPolicy,
    gaussian_fisher_product,
    gaussian_kl,
    gaussian_log_prob,
    task_policy,
)
from .sampling import detached_inner_step, episode_metrics, sample_meta_batch
from .task_map import mean_loss_and_gradient, mean_objective, task_maps, to_device, vjp

#: ``(observations [T, E, D], actions [T, E, A], advantages [T, E], mask [T, E])`` of one task; with
#: ``inner.estimator: lvc`` a support set also carries the behaviour log-probabilities ``[T, E]``
PGData = tuple[Tensor, ...]
#: ``v [P] -> F v [P]``
FisherProduct = Callable[[Tensor], Tensor]
#: ``theta [P] -> (mean query loss, mean KL)``, the line search's objective
Objective = Callable[[Tensor], tuple[Tensor, Tensor]]


def policy_gradient_loss(
    policy: GaussianMLPPolicy, params: Params, data: PGData, estimator: str = "reinforce"
) -> Tensor:
    """One task's inner loss ``-mean_t log pi(a_t|s_t) A_t`` over its real steps (lvc: :mod:`agents.lvc`)."""
    observations, actions, advantages, mask = data[:4]
    mean, log_std = functional_call(policy, params, (observations,))
    log_prob = gaussian_log_prob(mean, log_std, actions)
    if estimator == "lvc":
        return lvc_loss(log_prob, data[4], advantages, mask)
    return -masked_mean(log_prob * advantages, mask)


@dataclasses.dataclass(frozen=True)
class InnerLoop:
    """What one task's adaptation needs besides ``theta`` and its data.

    Attributes:
        policy: the module evaluated functionally; ``like`` names and shapes its parameters.
        step_size: the inner step size of every step (unused if ``learned``).
        first_order: detach the inner gradients (the Jacobian of the adaptation is then the identity, up to
            learned step sizes, which stay differentiable).
        learned: take every step with the learned per-entry step sizes in ``theta`` (:mod:`agents.meta_sgd`).
        estimator: the inner loss, ``reinforce`` or ``lvc`` (:func:`policy_gradient_loss`).
    """

    policy: GaussianMLPPolicy
    like: Params
    step_size: float
    first_order: bool
    learned: bool = False
    estimator: str = "reinforce"


def adapt_flat(theta: Tensor, supports: tuple[PGData, ...], inner: InnerLoop) -> Tensor:
    """One task's adapted parameters ``[P]``: an inner step per support set, from ``theta [P]`` (``[2P]``)."""
    loss_fn = functools.partial(policy_gradient_loss, inner.policy, estimator=inner.estimator)
    size = sum(p.numel() for p in inner.like.values())
    params = unflatten_params(theta[:size], inner.like)
    rates: tuple[StepSize, ...] = (inner.step_size,) * len(supports)
    if inner.learned:
        rates = meta_sgd.learned_rates(theta[size:], inner.like, len(supports))
    return flatten_params(inner_adapt(loss_fn, params, supports, rates, inner.first_order))


def policy_outputs(params: Tensor, observations: Tensor, inner: InnerLoop) -> tuple[Tensor, Tensor]:
    """``(mean [T, E, A], log_std [A])`` of the policy with flat parameters ``params [P]``."""
    return functional_call(inner.policy, unflatten_params(params, inner.like), (observations,))


def surrogate_and_kl(
    mean: Tensor, log_std: Tensor, query: PGData, old_mean: Tensor, old_log_std: Tensor
) -> tuple[Tensor, Tensor]:
    """``-E[pi/pi_old * A]`` and mean ``KL(pi_old || pi)`` over one task's query steps.

    ``mean [T, E, A]`` and ``log_std [A]``: the policy optimised; ``old_*``: the one that collected the query.
    """
    _, actions, advantages, mask = query
    log_ratio = gaussian_log_prob(mean, log_std, actions) - gaussian_log_prob(old_mean, old_log_std, actions)
    loss = -masked_mean(torch.exp(log_ratio) * advantages, mask)
    kl = masked_mean(gaussian_kl(old_mean, old_log_std, mean, log_std), mask)
    return loss, kl


def task_outer_loss(
    theta: Tensor, supports: tuple[PGData, ...], query: PGData, old_mean: Tensor, old_log_std: Tensor,
    inner: InnerLoop,
) -> tuple[Tensor, Tensor]:  # fmt: skip
    """``(loss, kl)`` of one task's adapted policy, in ``theta``: :func:`adapt_flat` then the surrogate."""
    mean, log_std = policy_outputs(adapt_flat(theta, supports, inner), query[0], inner)
    return surrogate_and_kl(mean, log_std, query, old_mean, old_log_std)


def jfj_product(
    adapt: Callable, outputs: Callable, theta: Tensor, adapted: Tensor, vjp_adapt: Callable,
    vjp_outputs: Callable, log_std: Tensor, mask: Tensor,
) -> FisherProduct:  # fmt: skip
    """``v -> mean_i J_i^T F'_i J_i v``, the Hessian of the mean KL through the inner step at ``theta``.

    ``J`` is the Jacobian of the adaptation ``adapt: theta [P'] -> adapted [N, P]`` (a forward-mode product
    going in, ``vjp_adapt`` coming out), ``F'`` the Fisher of each adapted Gaussian in its outputs
    (``outputs: adapted -> (mean [N, T, E, A], log_std [N, A])``, ``vjp_outputs`` its reverse product;
    :func:`gaussian_fisher_product` with the adapted ``log_std [N, A]``, averaged over ``mask [N, T, E]``).
    Exact where TRPO uses it: the KL's Hessian also has the adaptation's second derivative times the KL's
    gradient, which is zero at the current parameters.
    """
    weights = mask / mask.sum(dim=(-2, -1), keepdim=True).clamp_min(1.0) / mask.shape[0]

    def fvp(v: Tensor) -> Tensor:
        jv = torch.func.jvp(adapt, (theta,), (v,))[1]
        d_mean, d_log_std = torch.func.jvp(outputs, (adapted,), (jv,))[1]
        return vjp_adapt(vjp_outputs(gaussian_fisher_product(d_mean, d_log_std, log_std, weights))[0])[0]

    return fvp


def trpo_step(
    loss: Tensor, grad: Tensor, fvp: FisherProduct, objective: Objective, theta: Tensor, trpo: TRPOConfig
) -> LineSearchResult:
    """Conjugate gradient on the damped Fisher, the step scaled to ``trpo.max_kl``, the line search."""

    def damped_fvp(v: Tensor) -> Tensor:
        return fvp(v).detach() + trpo.cg_damping * v

    direction, fisher_direction = conjugate_gradient(damped_fvp, grad, trpo.cg_iterations)
    full_step = trust_region_step(direction, fisher_direction, trpo.max_kl)
    with torch.no_grad():
        return backtracking_line_search(
            objective, theta, full_step, float(loss), trpo.max_kl, trpo.ls_ratio, trpo.ls_max_steps
        )


class MAMLTRPO:
    """Meta-learner holding the policy and the state of its updates; the maths is in the functions above.

    Args:
        policy: the meta-policy; its parameters are updated in place by :meth:`step`.
        inner: inner-loop settings (steps, step size, first order, learned step sizes, estimator).
        meta: outer-loop settings (discount, GAE, advantage normalisation, baseline).
        trpo: TRPO settings.
        device: where the meta-update runs (e.g. ``cuda``); the policy, sampling and adaptation during
            sampling stay on the CPU, and the updated parameters are copied back.
    """

    def __init__(
        self, policy: GaussianMLPPolicy, inner: InnerConfig, meta: MetaConfig, trpo: TRPOConfig,
        device: str | torch.device = "cpu",
    ) -> None:  # fmt: skip
        """See the class docstring."""
        self.policy, self.device = policy, torch.device(device)
        self.inner, self.meta, self.trpo = inner, meta, trpo
        self.baseline = LinearFeatureBaseline(meta.baseline_reg)
        #: the Fisher subsample's fraction as grown by ``trpo.fisher_subsample_grow_at`` (0: not grown), and
        #: the full steps' KL over ``max_kl`` since it last changed
        self.grown_subsample, self.kl_ratios = 0.0, list[float]()
        #: learned inner step sizes, one per policy parameter entry (``inner.learn_step_size``), else None
        self.step_sizes: Params | None = None
        if inner.learn_step_size:
            self.step_sizes = meta_sgd.initial_step_sizes(policy, inner.step_size)

    @property
    def fisher_subsample(self) -> float:
        """The fraction of tasks in the Fisher-vector products: the config's, or more once grown."""
        return max(self.trpo.fisher_subsample, self.grown_subsample)

    def state_dict(self) -> dict[str, Tensor]:
        """The policy's state, learned step sizes and the subsample's growth (:func:`learner_state`)."""
        return learner_state(self.policy, self.step_sizes, self.trpo, self.fisher_subsample, self.kl_ratios)

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        """Load what :meth:`state_dict` returns (checkpoints of runs without learned step sizes too)."""
        loaded = load_learner_state(state, self.policy, self.step_sizes, self.trpo)
        self.step_sizes, self.grown_subsample, self.kl_ratios = loaded

    def meta_parameters(self) -> Tensor:
        """``theta``: the policy's parameters, then the learned step sizes if any (``[P]`` or ``[2P]``)."""
        return meta_sgd.meta_parameters(self.policy, self.step_sizes)

    def set_meta_parameters(self, theta: Tensor) -> None:
        """Write ``theta`` (as :meth:`meta_parameters` lays it out) into the policy and the step sizes."""
        self.step_sizes = meta_sgd.set_meta_parameters(theta, self.policy, self.step_sizes)

    def pg_data(self, batch: EpisodeBatch) -> PGData:
        """Batch -> ``(observations, actions, GAE advantages, mask)``, padding dropped (``compact_steps``)."""
        return compact_steps(gae_data(batch, self.baseline, self.meta))

    def initial_params(self, num_tasks: int) -> Params:
        """The meta-parameters, detached, with a task axis: ``[N, ...]`` per entry."""
        return expand_params({k: v.detach() for k, v in self.policy.named_parameters()}, num_tasks)

    def policy_fn(
        self, params: Params, generator: torch.Generator, deterministic: bool = False
    ) -> TaskPolicy:
        """Sampling (``deterministic``: mean-action) policy of per-task parameters ``[N, ...]``."""
        return task_policy(self.policy, params, generator, deterministic)

    def adapt(self, params: Params, batch: EpisodeBatch, step_size: float) -> Params:
        """One detached inner step for every task at once: ``[N, ...]`` parameters -> ``[N, ...]``.

        Learned step sizes are scaled by ``step_size / inner.step_size`` (training passes
        ``inner.step_size``; the evaluation protocol's ``alpha, alpha / 2, ...`` then halves them).
        """
        rates: StepSize = step_size
        if self.step_sizes is not None:
            rates = meta_sgd.scaled_step_sizes(self.step_sizes, step_size, self.inner.step_size)
        loss_fn = functools.partial(policy_gradient_loss, self.policy)
        return detached_inner_step(loss_fn, params, self.pg_data(batch), rates)

    def sample(
        self,
        collector: Collector,
        tasks: Sequence[Task],
        rng: np.random.Generator,
        generator: torch.Generator,
    ) -> MetaBatch:
        """Support episodes for each inner step (adapting in between), then the query episodes."""
        steps, alpha = self.inner.steps, self.inner.step_size
        return sample_meta_batch(self, collector, tasks, rng, generator, steps, alpha)

    def inner_loop(self, like: Params) -> InnerLoop:
        """This learner's :class:`InnerLoop` (the one place its inner settings are bundled)."""
        learned, inner = self.step_sizes is not None, self.inner
        return InnerLoop(self.policy, like, inner.step_size, inner.first_order, learned, inner.estimator)

    def _prepare(self, meta_batch: MetaBatch) -> tuple[tuple[PGData, ...], PGData, Tensor, Params]:
        """``(supports, query, theta, like)`` on the meta-update device, advantages computed.

        With ``inner.estimator: lvc`` each support set also carries its behaviour log-probabilities.
        """
        supports = tuple(to_device(self.pg_data(b), self.device) for b in meta_batch.support)
        query = to_device(self.pg_data(meta_batch.query), self.device)
        if not all(torch.isfinite(data[2]).all() for data in (*supports, query)):
            raise NonFiniteError("advantages")
        like = {k: v.detach().to(self.device) for k, v in self.policy.named_parameters()}
        theta = self.meta_parameters().to(self.device)
        if self.inner.estimator == "lvc" and supports:
            inner = self.inner_loop(like)
            paper = dataclasses.replace(inner, first_order=True, estimator="reinforce")
            adapt, outputs = (
                functools.partial(adapt_flat, inner=paper),
                functools.partial(policy_outputs, inner=inner),
            )
            supports = with_behaviour_log_probs(theta, supports, adapt, outputs, self.trpo.vectorize)
        return supports, query, theta, like

    def _task_maps(
        self, supports: tuple[PGData, ...], query_obs: Tensor, like: Params
    ) -> tuple[Callable, Callable]:
        """``(adapt, outputs)`` of this learner's inner loop over the tasks (:func:`task_maps`)."""
        inner = self.inner_loop(like)
        adapt, outputs = (
            functools.partial(adapt_flat, inner=inner),
            functools.partial(policy_outputs, inner=inner),
        )
        return task_maps(adapt, outputs, supports, query_obs, self.trpo.vectorize)

    def _objective(self, supports: tuple[PGData, ...], query: PGData, old: tuple, like: Params) -> Objective:
        """``theta -> (mean loss, mean KL)`` against the old adapted policies ``old`` (the line search's)."""
        per_task = functools.partial(task_outer_loss, inner=self.inner_loop(like))
        return mean_objective(per_task, supports, query, old, self.trpo.vectorize)

    def meta_gradient(self, meta_batch: MetaBatch) -> Tensor:
        """Gradient ``[P]`` of the mean query loss, reverse mode throughout (:meth:`linearize`'s check)."""
        supports, query, theta, like = self._prepare(meta_batch)
        adapt, outputs = self._task_maps(supports, query[0], like)
        with torch.no_grad():
            old = tuple(t.detach() for t in outputs(adapt(theta)))
        objective = self._objective(supports, query, old, like)
        return torch.func.grad(lambda t: objective(t)[0])(theta)

    def linearize(self, meta_batch: MetaBatch) -> tuple[Tensor, Tensor, FisherProduct, Objective]:
        """The pieces of a TRPO step at the current parameters.

        Returns:
            ``(loss, grad, fvp, objective)``: the mean query loss, its gradient ``[P]`` through the inner
            step(s), the undamped Fisher-vector product ``v [P] -> F v [P]`` of the mean KL through them, and
            ``objective(theta) -> (loss, kl)`` for the line search. ``trpo.fisher_product``: ``jfj``
            (:func:`jfj_product`; the gradient reuses its reverse pass), ``double_backprop`` (the KL's
            gradient differentiated again: about twice the work, the reference) or ``closed_form``
            (:mod:`agents.mlp_curvature`).
        """
        supports, query, theta, like = self._prepare(meta_batch)
        if self.trpo.fisher_product == "closed_form":
            keep = subsample.kept_tasks(self.fisher_subsample, query[0].shape[0])
            learned = self.step_sizes is not None
            return closed_form_linearization(self.policy, self.inner, learned, supports, query, theta, keep)
        adapt, outputs = self._task_maps(supports, query[0], like)
        adapted, vjp_adapt = vjp(adapt, theta)
        (mean, log_std), vjp_outputs = vjp(outputs, adapted)
        old = mean.detach(), log_std.detach()
        loss, grad = mean_loss_and_gradient(surrogate_and_kl, query, old, vjp_adapt, vjp_outputs)
        objective = self._objective(supports, query, old, like)
        if self.trpo.fisher_product == "jfj":
            full = (adapt, adapted, vjp_adapt, vjp_outputs)
            return loss, grad, self._jfj_product(supports, query, theta, like, full, old), objective
        return loss, grad, hessian_vector_product(lambda t: objective(t)[1], theta), objective

    def _jfj_product(
        self, supports: tuple[PGData, ...], query: PGData, theta: Tensor, like: Params, full: tuple,
        old: tuple,
    ) -> FisherProduct:  # fmt: skip
        """:func:`jfj_product` over the first :attr:`fisher_subsample` of the tasks.

        ``full``: ``(adapt, adapted, vjp_adapt, vjp_outputs)`` on every task (reused if none is left out);
        ``old``: the old adapted policies' ``(mean, log_std)``. See :mod:`agents.fisher_subsample`.
        """
        adapt, adapted, vjp_adapt, vjp_outputs = full
        keep = subsample.kept_tasks(self.fisher_subsample, query[0].shape[0])
        supports = tuple(subsample.first_tasks(d, keep) for d in supports)
        query = subsample.first_tasks(query, keep)
        adapt_kept, outputs = self._task_maps(supports, query[0], like)
        if keep < old[1].shape[0]:  # the full passes cover every task: redo them on the kept ones
            adapt, (adapted, vjp_adapt) = adapt_kept, vjp(adapt_kept, theta)
            vjp_outputs = vjp(outputs, adapted)[1]
        return jfj_product(adapt, outputs, theta, adapted, vjp_adapt, vjp_outputs, old[1][:keep], query[3])

    def step(self, meta_batch: MetaBatch) -> dict[str, float]:
        """One TRPO meta-update; updates the policy in place and returns flat float metrics.

        Raises:
            NonFiniteError: NaN or inf in the advantages, the meta-gradient or the new parameters (the policy
                is left unchanged).
        """
        fraction = self.fisher_subsample
        loss_before, grad, fvp, objective = self.linearize(meta_batch)
        if not torch.isfinite(grad).all():
            raise NonFiniteError("gradient")
        theta = self.meta_parameters().to(self.device)
        result = trpo_step(loss_before, grad, fvp, objective, theta, self.trpo)
        with torch.no_grad():
            if not torch.isfinite(result.params).all():
                raise NonFiniteError("parameters")
            self.set_meta_parameters(result.params)
        ratios = self.kl_ratios
        grown, self.kl_ratios = subsample.watched_kl_ratios(fraction, ratios, result.full_step_kl, self.trpo)
        if grown > fraction:
            self.grown_subsample = grown
        episodes = episode_metrics((*meta_batch.support, meta_batch.query))
        returns = {k: episodes.pop(k) for k in ("meta/return_before", "meta/return_after")}
        return {
            **returns,
            **trpo_metrics(loss_before, grad, theta, result, fraction),
            "policy/std_mean": self.policy.log_std.exp().mean().item(),
            **episodes,
            **meta_sgd.step_size_metrics(self.step_sizes),
        }
