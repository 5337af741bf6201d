"""MAML-TRPO (Finn et al., 2017, arXiv:1703.03400, Algorithm 3).

One meta-iteration:

1. :meth:`MAMLTRPO.sample` collects, for each of ``N`` tasks, support episodes with the current parameters,
   takes a vanilla policy-gradient step on them (``inner.step_size``), and repeats for ``inner.steps`` steps
   with fresh episodes each time; then it collects query episodes with the adapted parameters.
2. :meth:`MAMLTRPO.step` maximises the query surrogate ``E[pi'(a|s) / pi'_old(a|s) * A]`` of the *adapted*
   policy ``pi' = adapt(theta)`` with TRPO: the gradient goes through the inner step(s) (second order unless
   ``inner.first_order``), the Fisher-vector product is the Hessian of the mean KL between the old and new
   adapted policies (double backprop through the adaptation), conjugate gradient gives the direction, and a
   backtracking line search accepts the first step that improves the surrogate with mean KL
   <= ``trpo.max_kl``.

All per-task work is one pure function of the flat parameter vector ``theta`` (:func:`task_outer_loss`),
mapped over tasks with ``torch.func.vmap`` (or a Python loop, the reference path), so the same code serves
both.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor
from torch.func import functional_call

from agents.baselines import LinearFeatureBaseline
from agents.policies import GaussianMLPPolicy, TaskPolicy, gaussian_kl, gaussian_log_prob, task_noise_seeds
from metarl.collect import Collector
from metarl.config import InnerConfig, MetaConfig, TRPOConfig
from metarl.errors import NonFiniteError
from metarl.functional import Params, expand_params, flatten_params, inner_adapt, inner_step, unflatten_params
from metarl.optim.trpo import backtracking_line_search, conjugate_gradient, trust_region_step
from metarl.returns import discounted_returns, gae_advantages, masked_mean, masked_normalize
from metarl.types import EpisodeBatch, MetaBatch, Task

#: ``(observations [T, E, D], actions [T, E, A], advantages [T, E], mask [T, E])`` of one task
PGData = tuple[Tensor, Tensor, Tensor, Tensor]


def policy_gradient_loss(policy: GaussianMLPPolicy, params: Params, data: PGData) -> Tensor:
    """The inner (REINFORCE) loss ``-mean_t log pi(a_t|s_t) A_t`` over the real steps of one task."""
    observations, actions, advantages, mask = data
    mean, log_std = functional_call(policy, params, (observations,))
    return -masked_mean(gaussian_log_prob(mean, log_std, actions) * advantages, mask)


def task_outer_loss(
    theta: Tensor,
    supports: tuple[PGData, ...],
    query: PGData,
    old_mean: Tensor,
    old_log_std: Tensor,
    *,
    policy: GaussianMLPPolicy,
    like: Params,
    step_sizes: tuple[float, ...],
    first_order: bool,
) -> tuple[Tensor, Tensor]:
    """Negative query surrogate and mean KL of one task's adapted policy, as functions of ``theta [P]``.

    Args:
        theta: flat meta-parameters ``[P]``.
        supports: one :data:`PGData` per inner step.
        query: the query :data:`PGData`.
        old_mean: ``[T, E, A]`` means of the adapted policy at the parameters the query was collected with.
        old_log_std: ``[A]`` its log-std.
        policy: the module evaluated functionally.
        like: a parameter dict giving names and shapes for ``theta``.
        step_sizes: one inner step size per support set.
        first_order: detach the inner gradients.

    Returns:
        ``(loss, kl)`` scalars.
    """
    loss_fn = functools.partial(policy_gradient_loss, policy)
    adapted = inner_adapt(loss_fn, unflatten_params(theta, like), supports, step_sizes, first_order)
    observations, actions, advantages, mask = query
    mean, log_std = functional_call(policy, adapted, (observations,))
    log_ratio = gaussian_log_prob(mean, log_std, actions) - gaussian_log_prob(old_mean, old_log_std, actions)
    loss = -masked_mean(torch.exp(log_ratio) * advantages, mask)
    kl = masked_mean(gaussian_kl(old_mean, old_log_std, mean, log_std), mask)
    return loss, kl


class MAMLTRPO:
    """Meta-learner holding the policy; all maths lives in the functions above.

    Args:
        policy: the meta-policy; its parameters are updated in place by :meth:`step`.
        inner: inner-loop settings (steps, step size, first order).
        meta: outer-loop settings (discount, GAE, advantage normalisation, baseline).
        trpo: TRPO settings.
    """

    def __init__(
        self, policy: GaussianMLPPolicy, inner: InnerConfig, meta: MetaConfig, trpo: TRPOConfig
    ) -> None:
        """See the class docstring."""
        self.policy = policy
        self.inner = inner
        self.meta = meta
        self.trpo = trpo
        self.baseline = LinearFeatureBaseline(meta.baseline_reg)

    # ---- data -> advantages ------------------------------------------------------------------------------
    def advantages(self, batch: EpisodeBatch) -> Tensor:
        """Refit the baseline on each task's episodes and return GAE advantages ``[N, T, E]``."""
        returns = discounted_returns(batch.rewards, batch.mask, self.meta.gamma)
        values = self.baseline.fit_predict(batch.observations, returns, batch.mask)
        adv = gae_advantages(batch.rewards, values, batch.mask, self.meta.gamma, self.meta.gae_lambda)
        return masked_normalize(adv, batch.mask) if self.meta.normalize_advantages else adv

    def pg_data(self, batch: EpisodeBatch) -> PGData:
        """Batch -> ``(observations, actions, advantages, mask)``, each with a leading task axis ``N``."""
        return batch.observations, batch.actions, self.advantages(batch), batch.mask

    # ---- acting and adapting (no meta-gradient) ----------------------------------------------------------
    def initial_params(self, num_tasks: int) -> Params:
        """The meta-parameters, detached, with a task axis: ``[N, ...]`` per entry."""
        return expand_params({k: v.detach() for k, v in self.policy.named_parameters()}, num_tasks)

    def policy_fn(self, params: Params, generator: torch.Generator) -> TaskPolicy:
        """Sampling policy for the collector: per-task parameters ``[N, ...]``, observations ``[N, E, D]``.

        One draw from ``generator`` seeds a separate noise stream per task (:class:`TaskPolicy`), so the
        episodes do not depend on how a collector splits the tasks among workers.
        """
        base = int(torch.randint(0, 2**62, (1,), generator=generator))
        num_tasks = next(iter(params.values())).shape[0]
        return TaskPolicy(self.policy, params, task_noise_seeds(base, num_tasks))

    def adapt(self, params: Params, batch: EpisodeBatch, step_size: float) -> Params:
        """One inner step for every task at once: ``[N, ...]`` parameters -> ``[N, ...]`` (detached)."""
        return self._adapt_tasks(params, self.pg_data(batch), step_size)

    def _adapt_tasks(self, params: Params, data: PGData, step_size: float) -> Params:
        loss_fn = functools.partial(policy_gradient_loss, self.policy)
        step = torch.func.vmap(
            lambda p, d: inner_step(loss_fn, p, d, step_size, first_order=True), randomness="error"
        )
        return {k: v.detach() for k, v in step(params, data).items()}

    def sample(
        self,
        collector: Collector,
        tasks: Sequence[Task],
        rng: np.random.Generator,
        generator: torch.Generator,
    ) -> MetaBatch:
        """Collect support episodes for each inner step (adapting in between) and the query episodes."""
        params = self.initial_params(len(tasks))
        supports = []
        sampling = adaptation = 0.0
        for _ in range(self.inner.steps):
            start = time.perf_counter()
            batch = collector.collect(tasks, self.policy_fn(params, generator), seed=int(rng.integers(2**31)))
            supports.append(batch)
            middle = time.perf_counter()
            params = self.adapt(params, batch, self.inner.step_size)
            sampling, adaptation = sampling + middle - start, adaptation + time.perf_counter() - middle
        start = time.perf_counter()
        query = collector.collect(tasks, self.policy_fn(params, generator), seed=int(rng.integers(2**31)))
        timings = {"time/sampling": sampling + time.perf_counter() - start, "time/adaptation": adaptation}
        return MetaBatch(list(tasks), tuple(supports), query, timings)

    # ---- the meta-update ---------------------------------------------------------------------------------
    def _objective(self, supports: tuple[PGData, ...], query: PGData, old: tuple[Tensor, Tensor]):
        """``theta -> (mean loss, mean KL)`` over tasks, vmapped or looped."""
        like = {k: v.detach() for k, v in self.policy.named_parameters()}
        per_task = functools.partial(
            task_outer_loss,
            policy=self.policy,
            like=like,
            step_sizes=(self.inner.step_size,) * len(supports),
            first_order=self.inner.first_order,
        )
        if self.trpo.vectorize:
            mapped = torch.func.vmap(per_task, in_dims=(None, 0, 0, 0, 0), randomness="error")
        else:

            def mapped(theta, supports, query, old_mean, old_log_std):
                outs = [
                    per_task(theta, *(tree_index((supports, query, old_mean, old_log_std), i)))
                    for i in range(old_mean.shape[0])
                ]
                return torch.stack([o[0] for o in outs]), torch.stack([o[1] for o in outs])

        def objective(theta: Tensor) -> tuple[Tensor, Tensor]:
            loss, kl = mapped(theta, supports, query, *old)
            return loss.mean(), kl.mean()

        return objective

    def _old_policy(self, supports: tuple[PGData, ...], query_obs: Tensor) -> tuple[Tensor, Tensor]:
        """Means ``[N, T, E, A]`` and log-stds ``[N, A]`` of the adapted policies that collected the query."""
        params = self.initial_params(query_obs.shape[0])
        for data in supports:
            params = self._adapt_tasks(params, data, self.inner.step_size)
        mean, log_std = torch.func.vmap(lambda p, o: functional_call(self.policy, p, (o,)))(params, query_obs)
        return mean.detach(), log_std.detach()

    def meta_gradient(self, meta_batch: MetaBatch) -> Tensor:
        """Gradient ``[P]`` of the mean query loss w.r.t. the meta-parameters (used by tests and TRPO)."""
        objective, theta = self.meta_objective(meta_batch)
        return torch.func.grad(lambda t: objective(t)[0])(theta)

    def meta_objective(
        self, meta_batch: MetaBatch
    ) -> tuple[Callable[[Tensor], tuple[Tensor, Tensor]], Tensor]:
        """``(objective, theta)``: ``objective(theta [P]) -> (mean query loss, mean KL)``, current ``theta``.

        The old adapted policy (the one the query episodes were collected with) is computed here once and held
        fixed, so ``objective(theta)`` has KL 0 and importance ratio 1 at the returned ``theta``.
        """
        supports = tuple(self.pg_data(b) for b in meta_batch.support)
        query = self.pg_data(meta_batch.query)
        if not all(torch.isfinite(data[2]).all() for data in (*supports, query)):
            raise NonFiniteError("advantages")
        old = self._old_policy(supports, query[0])
        theta = flatten_params(dict(self.policy.named_parameters())).detach()
        return self._objective(supports, query, old), theta

    def step(self, meta_batch: MetaBatch) -> dict[str, float]:
        """One TRPO meta-update; updates the policy in place and returns flat float metrics.

        Raises:
            NonFiniteError: NaN or inf in the advantages, the meta-gradient or the new parameters (the policy
                is left unchanged).
        """
        objective, theta = self.meta_objective(meta_batch)
        loss_before, _ = objective(theta)
        grad = torch.func.grad(lambda t: objective(t)[0])(theta)
        if not torch.isfinite(grad).all():
            raise NonFiniteError("gradient")
        _, hvp = torch.func.vjp(torch.func.grad(lambda t: objective(t)[1]), theta)

        def fisher_vector_product(v: Tensor) -> Tensor:
            return hvp(v)[0] + self.trpo.cg_damping * v

        direction = conjugate_gradient(fisher_vector_product, grad, self.trpo.cg_iterations)
        full_step = trust_region_step(direction, fisher_vector_product(direction), self.trpo.max_kl)
        with torch.no_grad():
            result = backtracking_line_search(
                objective,
                theta,
                full_step,
                float(loss_before),
                self.trpo.max_kl,
                self.trpo.ls_ratio,
                self.trpo.ls_max_steps,
            )
            if not torch.isfinite(result.params).all():
                raise NonFiniteError("parameters")
            torch.nn.utils.vector_to_parameters(result.params, self.policy.parameters())
        returns = [b.episode_returns().mean().item() for b in (*meta_batch.support, meta_batch.query)]
        metrics = {
            "meta/return_before": returns[0],
            "meta/return_after": returns[-1],
            "trpo/surrogate_before": -float(loss_before),
            "trpo/surrogate_after": -result.loss,
            "trpo/improvement": float(loss_before) - result.loss,
            "trpo/kl": result.kl,
            "trpo/ls_steps": float(result.steps),
            "trpo/accepted": float(result.accepted),
            "trpo/grad_norm": grad.norm().item(),
            "trpo/step_norm": (result.params - theta).norm().item(),
            "policy/std_mean": self.policy.log_std.exp().mean().item(),
            "meta/env_steps": float(sum(b.lengths.sum() for b in (*meta_batch.support, meta_batch.query))),
        }
        metrics.update({f"inner/return_step{k}": r for k, r in enumerate(returns)})
        return metrics


def tree_index(tree, i: int):
    """Index every tensor of a nested tuple at ``i`` along its first axis."""
    if isinstance(tree, tuple):
        return tuple(tree_index(t, i) for t in tree)
    return tree[i]
