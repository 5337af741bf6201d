"""MAML-TRPO (Finn et al., 2017, arXiv:1703.03400, Algorithm 3).

One meta-iteration:

1. :meth:`MAMLTRPO.sample` collects, for each of ``N`` tasks, support episodes with the current parameters,
   takes a vanilla policy-gradient step on them (``inner.step_size``), and repeats for ``inner.steps`` steps
   with fresh episodes each time; then it collects query episodes with the adapted parameters.
2. :meth:`MAMLTRPO.step` maximises the query surrogate ``E[pi'(a|s) / pi'_old(a|s) * A]`` of the *adapted*
   policy ``pi' = adapt(theta)`` with TRPO: the gradient goes through the inner step(s) (second order unless
   ``inner.first_order``), the Fisher-vector product is the Hessian of the mean KL between the old and new
   adapted policies (``J^T F J``: Jacobian of the adaptation, Fisher of the adapted Gaussian; or double
   backprop through the adaptation), conjugate gradient gives the direction, and a backtracking line search
   accepts the first step that improves the surrogate with mean KL <= ``trpo.max_kl``.

All per-task work is one pure function of the flat parameter vector ``theta`` (:func:`task_outer_loss`),
mapped over tasks with ``torch.func.vmap`` (or a Python loop, the reference path), so the same code serves
both.

With ``inner.learn_step_size`` (Meta-SGD, Li et al. 2017, arXiv:1707.09835) every policy parameter entry has
its own inner step size, initialised to ``inner.step_size``; ``theta`` is then ``[policy parameters; step
sizes]`` (``2P``), and TRPO updates both under the same KL limit on the adapted policy.

With ``inner.estimator: lvc`` the inner loss is ProMP's low-variance curvature form (Rothfuss et al. 2018,
arXiv:1810.06784), importance-weighted against the policy that collected the support episodes: the inner
step at the current ``theta`` is unchanged, but its Jacobian, and so the meta-gradient and the Fisher
through it, gains the term ``alpha * mean_t A_t grad log pi_t grad log pi_t^T`` that the paper's estimator
leaves out (:func:`policy_gradient_loss`).
"""

from __future__ import annotations

import functools
import math
import statistics
import time
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
    inner_step,
    unflatten_params,
)
from metarl.core.returns import discounted_returns, gae_advantages, masked_mean, masked_normalize
from metarl.core.trpo import backtracking_line_search, conjugate_gradient, trust_region_step
from metarl.core.types import EpisodeBatch, MetaBatch, Task

from .baselines import LinearFeatureBaseline
from .mlp_curvature import ClosedFormMetaUpdate, closed_form_supported, mlp_layout
from .policies import (
    GaussianMLPPolicy,
    TaskPolicy,
    gaussian_fisher_product,
    gaussian_kl,
    gaussian_log_prob,
    task_noise_seeds,
)

#: ``(observations [T, E, D], actions [T, E, A], advantages [T, E], mask [T, E])`` of one task
PGData = tuple[Tensor, Tensor, Tensor, Tensor]
#: :data:`PGData` and the log-probabilities ``[T, E]`` of the actions under the policy that took them
LVCData = tuple[Tensor, Tensor, Tensor, Tensor, Tensor]
#: key prefix of the learned step sizes in :meth:`MAMLTRPO.state_dict`
STEP_SIZE_PREFIX = "step_size."
#: key prefix of the TRPO state in :meth:`MAMLTRPO.state_dict` (the grown Fisher subsample)
TRPO_STATE_PREFIX = "trpo."
#: meta-updates whose full-step KL ratios decide whether ``trpo.fisher_subsample`` grows
FISHER_GROWTH_WINDOW = 10


def grown_fraction(
    fraction: float, kl_ratios: list[float], grow_at: float, window: int = FISHER_GROWTH_WINDOW
) -> tuple[float, list[float]]:
    """The Fisher subsample's next fraction, and the KL ratios to keep watching.

    Args:
        fraction: the fraction of tasks in the Fisher-vector products now.
        kl_ratios: the full steps' KL over ``max_kl``, oldest first, since the fraction last changed.
        grow_at: double the fraction (up to 1) once the median of the last ``window`` ratios exceeds this;
            0 never grows.
        window: how many of the latest ratios the median takes.

    Returns:
        ``(fraction, kl_ratios)``: after a growth the ratios start afresh (they described the old product).
    """
    kept = kl_ratios[-window:]
    if grow_at <= 0 or fraction >= 1.0 or len(kept) < window or statistics.median(kept) <= grow_at:
        return fraction, kept
    return min(1.0, 2.0 * fraction), []


def policy_gradient_loss(
    policy: GaussianMLPPolicy, params: Params, data: PGData | LVCData, estimator: str = "reinforce"
) -> Tensor:
    """The inner policy-gradient loss of one task, a mean over its real steps.

    ``reinforce`` (``data`` a :data:`PGData`): ``-mean_t log pi(a_t|s_t) A_t``, the paper's.
    ``lvc`` (``data`` a :data:`LVCData`): ``-mean_t pi(a_t|s_t) / pi_b(a_t|s_t) A_t`` with ``pi_b`` the policy
    that collected the episodes (ProMP's low-variance curvature, arXiv:1810.06784). At ``pi = pi_b`` both
    have the same gradient, so the inner step is the same there; their Hessians differ by
    ``-mean_t A_t grad log pi_t grad log pi_t^T``, the score-function term that the reinforce form drops
    when the meta-gradient differentiates the inner step (the support episodes' distribution depends on
    ``theta``). Away from ``pi_b`` (in the line search) the ratio reweights the episodes, so the objective
    that TRPO's line search evaluates is the one whose gradient and Fisher the step was built from.
    """
    observations, actions, advantages, mask = data[:4]
    mean, log_std = functional_call(policy, params, (observations,))
    log_prob = gaussian_log_prob(mean, log_std, actions)
    if estimator == "lvc":
        return -masked_mean(torch.exp(log_prob - data[4]) * advantages, mask)
    return -masked_mean(log_prob * advantages, mask)


def behaviour_log_probs(
    theta: Tensor,
    supports: tuple[PGData, ...],
    *,
    policy: GaussianMLPPolicy,
    like: Params,
    step_sizes: tuple[float, ...],
    learned: bool = False,
) -> tuple[Tensor, ...]:
    """One task's ``log pi_b(a|s) [T, E]`` for each support set, ``pi_b`` the policy that collected it.

    That is ``theta`` for the first set and ``theta`` adapted by the steps before it for the others;
    arguments as in :func:`adapt_flat` (the adapted values do not depend on the estimator at ``theta``).
    """
    out = []
    for k, (observations, actions, _, _) in enumerate(supports):
        params = adapt_flat(
            theta,
            supports[:k],
            policy=policy,
            like=like,
            step_sizes=step_sizes[:k],
            first_order=True,
            learned=learned,
        )
        mean, log_std = policy_outputs(params, observations, policy=policy, like=like)
        out.append(gaussian_log_prob(mean, log_std, actions))
    return tuple(out)


def adapt_flat(
    theta: Tensor,
    supports: tuple[PGData, ...],
    *,
    policy: GaussianMLPPolicy,
    like: Params,
    step_sizes: tuple[float, ...],
    first_order: bool,
    learned: bool = False,
    estimator: str = "reinforce",
) -> Tensor:
    """One task's adapted parameters ``[P]`` as a function of the meta-parameters ``theta``.

    Args:
        theta: flat meta-parameters ``[P]``, or ``[2P]`` (parameters, then one step size per entry) if
            ``learned``.
        supports: one :data:`PGData` per inner step (:data:`LVCData` with ``estimator`` lvc).
        policy: the module evaluated functionally.
        like: a parameter dict giving names and shapes of the policy's parameters.
        step_sizes: one inner step size per support set (unused if ``learned``).
        first_order: detach the inner gradients (then the Jacobian of this map is the identity, up to the
            learned step sizes, which stay differentiable).
        learned: take every step with the learned per-entry step sizes in ``theta``.
        estimator: the inner loss's form, ``reinforce`` or ``lvc`` (:func:`policy_gradient_loss`): at the
            ``theta`` that collected the supports, the same adapted parameters with different derivatives.
    """
    loss_fn = functools.partial(policy_gradient_loss, policy, estimator=estimator)
    size = sum(p.numel() for p in like.values())
    params = unflatten_params(theta[:size], like)
    rates: tuple[StepSize, ...] = step_sizes
    if learned:
        rates = (unflatten_params(theta[size:], like),) * len(supports)
    return flatten_params(inner_adapt(loss_fn, params, supports, rates, first_order))


def policy_outputs(
    params: Tensor, observations: Tensor, *, policy: GaussianMLPPolicy, like: Params
) -> tuple[Tensor, Tensor]:
    """``(mean [T, E, A], log_std [A])`` of the policy with flat parameters ``params [P]``."""
    return functional_call(policy, unflatten_params(params, like), (observations,))


def surrogate_and_kl(
    mean: Tensor, log_std: Tensor, query: PGData, old_mean: Tensor, old_log_std: Tensor
) -> tuple[Tensor, Tensor]:
    """Negative surrogate ``-E[pi/pi_old * A]`` and mean ``KL(pi_old || pi)`` over one task's query steps.

    Args:
        mean: ``[T, E, A]`` means of the policy being optimised.
        log_std: ``[A]`` its log-std.
        query: the query :data:`PGData`.
        old_mean: ``[T, E, A]`` means of the policy that collected the query.
        old_log_std: ``[A]`` its log-std.
    """
    _, actions, advantages, mask = query
    log_ratio = gaussian_log_prob(mean, log_std, actions) - gaussian_log_prob(old_mean, old_log_std, actions)
    loss = -masked_mean(torch.exp(log_ratio) * advantages, mask)
    kl = masked_mean(gaussian_kl(old_mean, old_log_std, mean, log_std), mask)
    return loss, kl


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
    learned: bool = False,
    estimator: str = "reinforce",
) -> tuple[Tensor, Tensor]:
    """Negative query surrogate and mean KL of one task's adapted policy, as functions of ``theta``.

    The composition :func:`adapt_flat` -> :func:`policy_outputs` -> :func:`surrogate_and_kl`; arguments as
    there. Returns ``(loss, kl)`` scalars.
    """
    adapted = adapt_flat(
        theta,
        supports,
        policy=policy,
        like=like,
        step_sizes=step_sizes,
        first_order=first_order,
        learned=learned,
        estimator=estimator,
    )
    mean, log_std = policy_outputs(adapted, query[0], policy=policy, like=like)
    return surrogate_and_kl(mean, log_std, query, old_mean, old_log_std)


def map_tasks(fn: Callable, in_dims: tuple[int | None, ...], vectorize: bool) -> Callable:
    """``fn`` over the task axis: ``torch.func.vmap`` or, as the reference, a Python loop and a stack.

    ``in_dims`` marks each positional argument as per-task (``0``) or shared (``None``); outputs are tensors
    or tuples of tensors, stacked along a new leading task axis.
    """
    if vectorize:
        return torch.func.vmap(fn, in_dims=in_dims, randomness="error")

    def looped(*args):
        num_tasks = next(_first_tensor(a).shape[0] for a, d in zip(args, in_dims, strict=True) if d == 0)
        outs = [
            fn(*(a if d is None else tree_index(a, i) for a, d in zip(args, in_dims, strict=True)))
            for i in range(num_tasks)
        ]
        if isinstance(outs[0], tuple):
            return tuple(torch.stack(parts) for parts in zip(*outs, strict=True))
        return torch.stack(outs)

    return looped


def _first_tensor(tree) -> Tensor:
    return _first_tensor(tree[0]) if isinstance(tree, tuple) else tree


class MAMLTRPO:
    """Meta-learner holding the policy; all maths lives in the functions above.

    Args:
        policy: the meta-policy; its parameters are updated in place by :meth:`step`.
        inner: inner-loop settings (steps, step size, first order).
        meta: outer-loop settings (discount, GAE, advantage normalisation, baseline).
        trpo: TRPO settings.
        device: where the meta-update runs (e.g. ``cuda``); the policy, sampling and adaptation during
            sampling stay on the CPU, and the updated parameters are copied back.
    """

    def __init__(
        self,
        policy: GaussianMLPPolicy,
        inner: InnerConfig,
        meta: MetaConfig,
        trpo: TRPOConfig,
        device: str | torch.device = "cpu",
    ) -> None:
        """See the class docstring."""
        self.policy = policy
        self.device = torch.device(device)
        self.inner = inner
        self.meta = meta
        self.trpo = trpo
        self.baseline = LinearFeatureBaseline(meta.baseline_reg)
        #: the Fisher subsample's fraction as grown by ``trpo.fisher_subsample_grow_at`` (0: not grown)
        self.grown_subsample = 0.0
        #: the full steps' KL over ``max_kl`` since the fraction last changed (:func:`grown_fraction`)
        self.kl_ratios: list[float] = []
        #: learned inner step sizes, one per policy parameter entry (``inner.learn_step_size``), else None
        self.step_sizes: Params | None = None
        if inner.learn_step_size:
            self.step_sizes = {
                k: torch.full_like(p.detach(), inner.step_size) for k, p in policy.named_parameters()
            }

    @property
    def fisher_subsample(self) -> float:
        """The fraction of tasks in the Fisher-vector products: the config's, or more once grown."""
        return max(self.trpo.fisher_subsample, self.grown_subsample)

    # ---- state -------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Tensor]:
        """The policy's state, plus a ``step_size.<parameter>`` entry per learned step size tensor.

        With ``trpo.fisher_subsample_grow_at``, also ``trpo.fisher_subsample`` (the fraction in use) and
        ``trpo.kl_ratios`` (the ratios watched so far), so that a resumed run takes the same steps.
        """
        state = {k: v.detach().clone() for k, v in self.policy.state_dict().items()}
        for k, v in (self.step_sizes or {}).items():
            state[f"{STEP_SIZE_PREFIX}{k}"] = v.detach().clone()
        if self.trpo.fisher_subsample_grow_at > 0:
            fraction, ratios = self.fisher_subsample, self.kl_ratios
            state[f"{TRPO_STATE_PREFIX}fisher_subsample"] = torch.tensor(fraction, dtype=torch.float64)
            state[f"{TRPO_STATE_PREFIX}kl_ratios"] = torch.tensor(ratios, dtype=torch.float64)
        return state

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        """Load what :meth:`state_dict` returns (checkpoints of runs without learned step sizes too).

        A grown Fisher subsample is restored only when this learner grows it too; a config whose fraction
        is already larger keeps its own (and watches the KL afresh).
        """
        trpo_state = {
            k.removeprefix(TRPO_STATE_PREFIX): v for k, v in state.items() if k.startswith(TRPO_STATE_PREFIX)
        }
        state = {k: v for k, v in state.items() if not k.startswith(TRPO_STATE_PREFIX)}
        self.grown_subsample, self.kl_ratios = 0.0, []
        if self.trpo.fisher_subsample_grow_at > 0 and "fisher_subsample" in trpo_state:
            saved = float(trpo_state["fisher_subsample"])
            if saved >= self.trpo.fisher_subsample:
                self.grown_subsample = saved
                self.kl_ratios = [float(r) for r in trpo_state.get("kl_ratios", torch.zeros(0))]
        learned = {
            k.removeprefix(STEP_SIZE_PREFIX): v for k, v in state.items() if k.startswith(STEP_SIZE_PREFIX)
        }
        if (self.step_sizes is None) != (not learned):
            have = "has" if learned else "has no"
            want = "learns" if self.step_sizes is not None else "does not learn"
            raise ValueError(f"the state {have} learned step sizes, but this learner {want} them")
        self.policy.load_state_dict({k: v for k, v in state.items() if not k.startswith(STEP_SIZE_PREFIX)})
        if self.step_sizes is not None:
            if set(learned) != set(self.step_sizes):
                raise ValueError(
                    f"learned step sizes for {sorted(learned)}, expected {sorted(self.step_sizes)}"
                )
            self.step_sizes = {k: learned[k].detach().clone().to(v) for k, v in self.step_sizes.items()}

    def meta_parameters(self) -> Tensor:
        """``theta``: the policy's parameters, then the learned step sizes if any (``[P]`` or ``[2P]``)."""
        theta = flatten_params({k: v.detach() for k, v in self.policy.named_parameters()})
        if self.step_sizes is None:
            return theta
        return torch.cat([theta, flatten_params(self.step_sizes)])

    def set_meta_parameters(self, theta: Tensor) -> None:
        """Write ``theta`` (as :meth:`meta_parameters` lays it out) into the policy and the step sizes."""
        size = sum(p.numel() for p in self.policy.parameters())
        torch.nn.utils.vector_to_parameters(theta[:size].cpu(), self.policy.parameters())
        if self.step_sizes is not None:
            self.step_sizes = {
                k: v.clone() for k, v in unflatten_params(theta[size:].cpu(), self.step_sizes).items()
            }

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
        """One inner step for every task at once: ``[N, ...]`` parameters -> ``[N, ...]`` (detached).

        With learned step sizes, ``step_size`` scales them by ``step_size / inner.step_size``: training
        passes ``inner.step_size`` (the learned rates as they are), and the evaluation protocol's
        ``alpha, alpha / 2, ...`` becomes the learned rates, then half of them.
        """
        rates: StepSize = step_size
        if self.step_sizes is not None:
            scale = step_size / self.inner.step_size
            rates = {k: scale * v for k, v in self.step_sizes.items()}
        return self._adapt_tasks(params, self.pg_data(batch), rates)

    def _adapt_tasks(self, params: Params, data: PGData, step_size: StepSize) -> Params:
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
    def _task_maps(self, supports: tuple[PGData, ...], query_obs: Tensor, like: Params):
        """``(adapt, outputs)``: ``theta [P] -> adapted [N, P]`` and ``adapted [N, P] -> (mean, log_std)``.

        With no support sets (``inner.steps: 0``, the pretrained baseline) ``adapt`` is the identity per task.
        """
        outputs_all = map_tasks(
            functools.partial(policy_outputs, policy=self.policy, like=like), (0, 0), self.trpo.vectorize
        )
        num_tasks = query_obs.shape[0]
        if not supports:
            return (lambda theta: theta.expand(num_tasks, -1)), (
                lambda adapted: outputs_all(adapted, query_obs)
            )
        adapt_all = map_tasks(
            functools.partial(
                adapt_flat,
                policy=self.policy,
                like=like,
                step_sizes=(self.inner.step_size,) * len(supports),
                first_order=self.inner.first_order,
                learned=self.step_sizes is not None,
                estimator=self.inner.estimator,
            ),
            (None, 0),
            self.trpo.vectorize,
        )
        return (lambda theta: adapt_all(theta, supports)), (lambda adapted: outputs_all(adapted, query_obs))

    def _objective(
        self, supports: tuple[PGData, ...], query: PGData, old: tuple[Tensor, Tensor], like: Params
    ):
        """``theta -> (mean loss, mean KL)`` over tasks, vmapped or looped."""
        per_task = functools.partial(
            task_outer_loss,
            policy=self.policy,
            like=like,
            step_sizes=(self.inner.step_size,) * len(supports),
            first_order=self.inner.first_order,
            learned=self.step_sizes is not None,
            estimator=self.inner.estimator,
        )
        mapped = map_tasks(per_task, (None, 0, 0, 0, 0), self.trpo.vectorize)

        def objective(theta: Tensor) -> tuple[Tensor, Tensor]:
            loss, kl = mapped(theta, supports, query, *old)
            return loss.mean(), kl.mean()

        return objective

    def _prepare(self, meta_batch: MetaBatch) -> tuple[tuple[PGData, ...], PGData, Tensor, Params]:
        """Advantages for every support and query batch, on the meta-update device, and ``theta [P]``.

        With ``inner.estimator: lvc`` each support set is an :data:`LVCData`, with the log-probabilities of
        the policy that collected it (:func:`behaviour_log_probs`).
        """
        supports = tuple(_to(self.pg_data(b), self.device) for b in meta_batch.support)
        query = _to(self.pg_data(meta_batch.query), self.device)
        if not all(torch.isfinite(data[2]).all() for data in (*supports, query)):
            raise NonFiniteError("advantages")
        like = {k: v.detach().to(self.device) for k, v in self.policy.named_parameters()}
        theta = self.meta_parameters().to(self.device)
        if self.inner.estimator == "lvc" and supports:
            behaviour = map_tasks(
                functools.partial(
                    behaviour_log_probs,
                    policy=self.policy,
                    like=like,
                    step_sizes=(self.inner.step_size,) * len(supports),
                    learned=self.step_sizes is not None,
                ),
                (None, 0),
                self.trpo.vectorize,
            )
            with torch.no_grad():
                log_probs = behaviour(theta, supports)
            supports = tuple((*data, lp.detach()) for data, lp in zip(supports, log_probs, strict=True))
        return supports, query, theta, like

    def meta_objective(
        self, meta_batch: MetaBatch
    ) -> tuple[Callable[[Tensor], tuple[Tensor, Tensor]], Tensor]:
        """``(objective, theta)``: ``objective(theta [P]) -> (mean query loss, mean KL)``, current ``theta``.

        The old adapted policy (the one the query episodes were collected with) is computed here once and held
        fixed, so ``objective(theta)`` has KL 0 and importance ratio 1 at the returned ``theta``.
        """
        supports, query, theta, like = self._prepare(meta_batch)
        adapt, outputs = self._task_maps(supports, query[0], like)
        with torch.no_grad():
            old = tuple(t.detach() for t in outputs(adapt(theta)))
        return self._objective(supports, query, old, like), theta

    def meta_gradient(self, meta_batch: MetaBatch) -> Tensor:
        """Gradient ``[P]`` of the mean query loss w.r.t. the meta-parameters (the direct reference)."""
        objective, theta = self.meta_objective(meta_batch)
        return torch.func.grad(lambda t: objective(t)[0])(theta)

    def linearize(self, meta_batch: MetaBatch) -> tuple[Tensor, Tensor, Callable[[Tensor], Tensor], Callable]:
        """The pieces of a TRPO step at the current parameters.

        Returns:
            ``(loss, grad, fvp, objective)``: the mean query loss, its gradient ``[P]`` through the inner
            step(s), the Fisher-vector product ``v [P] -> F v [P]`` (undamped) of the mean KL through the
            inner step(s), and ``objective(theta) -> (loss, kl)`` for the line search.

        With ``trpo.fisher_product: jfj`` the product is ``J^T F' J v``: ``J`` the Jacobian of the inner
        adaptation (a forward-mode product going in, a reverse-mode one coming out), ``F'`` the Fisher of
        each task's adapted Gaussian policy in its outputs (:func:`gaussian_fisher_product`). It is exact
        where TRPO uses it: the KL's Hessian also has a term with the adaptation's second derivative
        times the KL's gradient, and that gradient is zero at the current parameters. The gradient reuses
        the same reverse pass. ``double_backprop`` differentiates the KL's gradient through the adaptation
        again (about twice the work; the reference). ``closed_form`` computes the same gradient, ``J^T F' J``
        and line-search objective from the Gaussian MLP's layers written out (:mod:`agents.mlp_curvature`;
        at most one inner step).
        """
        supports, query, theta, like = self._prepare(meta_batch)
        if self.trpo.fisher_product == "closed_form":
            return self._closed_form(supports, query, theta, like)
        adapt, outputs = self._task_maps(supports, query[0], like)
        adapted, vjp_adapt = torch.func.vjp(adapt, theta)
        (mean, log_std), vjp_outputs = torch.func.vjp(outputs, adapted)
        old = mean.detach(), log_std.detach()
        mapped = torch.func.vmap(surrogate_and_kl, randomness="error")

        def mean_loss(m: Tensor, s: Tensor) -> Tensor:
            return mapped(m, s, query, *old)[0].mean()

        out_grads = torch.func.grad(mean_loss, argnums=(0, 1))(*old)
        grad = vjp_adapt(vjp_outputs(out_grads)[0])[0]
        loss = mean_loss(*old).detach()
        objective = self._objective(supports, query, old, like)
        if self.trpo.fisher_product == "jfj":
            fvp = self._jfj_product(
                supports, query, theta, like, (adapt, adapted, vjp_adapt, vjp_outputs), old
            )
        else:
            _, fvp_fn = torch.func.vjp(torch.func.grad(lambda t: objective(t)[1]), theta)

            def fvp(v: Tensor) -> Tensor:
                return fvp_fn(v)[0]

        return loss, grad.detach(), fvp, objective

    def _closed_form(self, supports, query, theta, like):
        """:meth:`linearize` by :class:`agents.mlp_curvature.ClosedFormMetaUpdate` (no autograd graph)."""
        layout = mlp_layout(self.policy)
        why = closed_form_supported(
            self.policy, len(supports), self.step_sizes is not None, self.inner.estimator
        )
        if layout is None or why is not None:
            raise ValueError(f"trpo.fisher_product: closed_form does not apply: {why}; use jfj")
        keep = max(1, math.ceil(self.fisher_subsample * query[0].shape[0]))
        with torch.no_grad():
            update = ClosedFormMetaUpdate(
                layout, theta, supports, query, self.inner.step_size, self.inner.first_order, keep
            )
        return update.loss, update.grad, update.fisher_vector_product, update.objective

    def _jfj_product(self, supports, query, theta, like, full, old) -> Callable[[Tensor], Tensor]:
        """``v -> mean_i J_i^T F'_i J_i v`` over the first :attr:`fisher_subsample` of the tasks.

        ``full`` holds ``(adapt, adapted, vjp_adapt, vjp_outputs)`` on every task, reused when nothing is
        subsampled. With a subsample, each kept task's term is exact (its inner-step Jacobian on all of its
        support episodes, its Fisher on all of its query episodes); only the mean runs over fewer tasks.
        The tasks are drawn i.i.d., so the first ``k`` are a uniform sample and the product is an unbiased
        estimate of the full one. The gradient and the line search (which enforces the KL limit) still use
        every task.

        Subsampling *episodes* within each task instead (rllab's ``subsample_factor``) is biased here: the
        Jacobian ``J = I - alpha H`` on fewer support episodes carries a noisier inner Hessian ``H``, and the
        noise enters ``J^T F' J`` squared, so the Fisher is inflated and TRPO's steps shrink (3.6x shorter
        on a HalfCheetahDir meta-batch, measured; see docs/BENCHMARKS.md).
        """
        adapt, adapted, vjp_adapt, vjp_outputs = full
        num_tasks = query[0].shape[0]
        keep = max(1, math.ceil(self.fisher_subsample * num_tasks))
        mean_old, log_std_old = old
        if keep < num_tasks:
            supports = tuple(_first_tasks(d, keep) for d in supports)
            query = _first_tasks(query, keep)
            adapt, outputs = self._task_maps(supports, query[0], like)
            adapted, vjp_adapt = torch.func.vjp(adapt, theta)
            _, vjp_outputs = torch.func.vjp(outputs, adapted)
            log_std_old = log_std_old[:keep]
        else:
            _, outputs = self._task_maps(supports, query[0], like)
        return jfj_product(adapt, outputs, theta, adapted, vjp_adapt, vjp_outputs, log_std_old, query[3])

    def step(self, meta_batch: MetaBatch) -> dict[str, float]:
        """One TRPO meta-update; updates the policy in place and returns flat float metrics.

        Raises:
            NonFiniteError: NaN or inf in the advantages, the meta-gradient or the new parameters (the policy
                is left unchanged).
        """
        subsample = self.fisher_subsample
        loss_before, grad, fvp, objective = self.linearize(meta_batch)
        if not torch.isfinite(grad).all():
            raise NonFiniteError("gradient")
        theta = self.meta_parameters().to(self.device)

        def damped_fvp(v: Tensor) -> Tensor:
            return fvp(v).detach() + self.trpo.cg_damping * v

        direction, fisher_direction = conjugate_gradient(damped_fvp, grad, self.trpo.cg_iterations)
        full_step = trust_region_step(direction, fisher_direction, self.trpo.max_kl)
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
            self.set_meta_parameters(result.params)
        kl_ratio = result.full_step_kl / self.trpo.max_kl
        grown, self.kl_ratios = grown_fraction(
            subsample,
            [*self.kl_ratios, kl_ratio if math.isfinite(kl_ratio) else math.inf],
            self.trpo.fisher_subsample_grow_at,
            window=FISHER_GROWTH_WINDOW,
        )
        if grown > subsample:
            self.grown_subsample = grown
        returns = [b.episode_returns().mean().item() for b in (*meta_batch.support, meta_batch.query)]
        metrics = {
            "meta/return_before": returns[0],
            "meta/return_after": returns[-1],
            "trpo/surrogate_before": -float(loss_before),
            "trpo/surrogate_after": -result.loss,
            "trpo/improvement": float(loss_before) - result.loss,
            "trpo/kl": result.kl,
            "trpo/full_step_kl": result.full_step_kl,
            "trpo/fisher_subsample": subsample,
            "trpo/ls_steps": float(result.steps),
            "trpo/accepted": float(result.accepted),
            "trpo/grad_norm": grad.norm().item(),
            "trpo/step_norm": (result.params - theta).norm().item(),
            "policy/std_mean": self.policy.log_std.exp().mean().item(),
            "meta/env_steps": float(sum(b.lengths.sum() for b in (*meta_batch.support, meta_batch.query))),
        }
        metrics.update({f"inner/return_step{k}": r for k, r in enumerate(returns)})
        if self.step_sizes is not None:
            rates = flatten_params(self.step_sizes)
            metrics["inner/step_size_mean"] = rates.mean().item()
            metrics["inner/step_size_min"] = rates.min().item()
            metrics["inner/step_size_max"] = rates.max().item()
        return metrics


def jfj_product(
    adapt: Callable, outputs: Callable, theta: Tensor, adapted: Tensor, vjp_adapt: Callable,
    vjp_outputs: Callable, log_std: Tensor, mask: Tensor,
) -> Callable[[Tensor], Tensor]:  # fmt: skip
    """``v -> mean_i J_i^T F'_i J_i v`` (the mean KL's Fisher through the inner step).

    Args:
        adapt: ``theta [P'] -> adapted [N, P]``.
        outputs: ``adapted [N, P] -> (mean [N, T, E, A], log_std [N, A])``.
        theta: the meta-parameters ``[P']``.
        adapted: ``adapt(theta)``.
        vjp_adapt: the reverse-mode product of ``adapt`` at ``theta``.
        vjp_outputs: the reverse-mode product of ``outputs`` at ``adapted``.
        log_std: ``[N, A]`` the adapted policies' log-stds.
        mask: ``[N, T, E]`` the steps the KL averages over, per task.
    """
    weights = mask / mask.sum(dim=(-2, -1), keepdim=True).clamp_min(1.0) / mask.shape[0]

    def fvp(v: Tensor) -> Tensor:
        _, jv = torch.func.jvp(adapt, (theta,), (v,))
        _, tangents = torch.func.jvp(outputs, (adapted,), (jv,))
        return vjp_adapt(vjp_outputs(gaussian_fisher_product(*tangents, log_std, weights))[0])[0]

    return fvp


def _first_tasks(data: PGData, keep: int) -> PGData:
    """The first ``keep`` tasks: ``[N, ...] -> [keep, ...]``."""
    return tuple(t[:keep] for t in data)  # type: ignore[return-value]


def _to(data: PGData, device: torch.device) -> PGData:
    return tuple(t.to(device) for t in data)  # type: ignore[return-value]


def tree_index(tree, i: int):
    """Index every tensor of a nested tuple at ``i`` along its first axis."""
    if isinstance(tree, tuple):
        return tuple(tree_index(t, i) for t in tree)
    return tree[i]
