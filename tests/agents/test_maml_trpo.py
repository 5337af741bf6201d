"""MAML-TRPO: the meta-gradient (finite differences, vmap vs loop, first vs second order) and TRPO step."""

from __future__ import annotations

import dataclasses
import functools

import pytest
import torch
from maml_reference import meta_objective

import metarl.agents.fisher_subsample as fisher_subsample
import metarl.agents.maml_trpo as maml_trpo
from metarl.agents.fisher_subsample import grown_fraction
from metarl.agents.maml_trpo import MAMLTRPO
from metarl.agents.policies import GaussianMLPPolicy, gaussian_log_prob
from metarl.agents.sampling import detached_inner_step
from metarl.agents.task_map import tree_index
from metarl.config import InnerConfig, MetaConfig, TRPOConfig
from metarl.core.types import EpisodeBatch, MetaBatch

N, T, E, D, A = 3, 6, 4, 2, 2


def synthetic_batch(seed: int, dtype: torch.dtype = torch.float64, ragged: bool = True) -> EpisodeBatch:
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(3, T + 1, (N, E), generator=g) if ragged else torch.full((N, E), T)
    mask = (torch.arange(T)[None, :, None] < lengths[:, None, :]).to(dtype)
    obs = torch.randn(N, T, E, D, generator=g, dtype=dtype)
    return EpisodeBatch(
        observations=obs,
        actions=torch.randn(N, T, E, A, generator=g, dtype=dtype),
        rewards=(obs.sum(-1) + torch.randn(N, T, E, generator=g, dtype=dtype)) * mask,
        mask=mask,
        lengths=lengths,
    )


def make_learner(
    first_order: bool = False,
    grow_at: float = 0.0,
    vectorize: bool = True,
    steps: int = 1,
    fisher_product: str = "jfj",
    device: str = "cpu",
    fisher_subsample: float = 1.0,
    learn_step_size: bool = False,
    estimator: str = "reinforce",
) -> MAMLTRPO:
    torch.manual_seed(0)
    policy = GaussianMLPPolicy(D, A, (5,), "tanh").double()
    inner = InnerConfig(
        steps=steps,
        step_size=0.3,
        first_order=first_order,
        learn_step_size=learn_step_size,
        estimator=estimator,
    )
    trpo = TRPOConfig(
        vectorize=vectorize,
        max_kl=0.05,
        fisher_product=fisher_product,
        fisher_subsample=fisher_subsample,
        fisher_subsample_grow_at=grow_at,
    )
    return MAMLTRPO(policy, inner, MetaConfig(), trpo, device)


def meta_batch(steps: int = 1) -> MetaBatch:
    return MetaBatch(list(range(N)), tuple(synthetic_batch(s) for s in range(steps)), synthetic_batch(99))


@pytest.mark.parametrize("first_order", [False, True])
def test_meta_gradient_vmap_equals_loop(first_order: bool) -> None:
    mb = meta_batch()
    g_vmap = make_learner(first_order, vectorize=True).meta_gradient(mb)
    g_loop = make_learner(first_order, vectorize=False).meta_gradient(mb)
    torch.testing.assert_close(g_vmap, g_loop, rtol=1e-10, atol=1e-12)


def test_second_order_meta_gradient_matches_finite_differences() -> None:
    learner = make_learner(first_order=False)
    objective, theta = meta_objective(learner, meta_batch())
    grad = torch.func.grad(lambda t: objective(t)[0])(theta)
    g = torch.Generator().manual_seed(1)
    for _ in range(3):
        direction = torch.randn(theta.shape, generator=g, dtype=theta.dtype)
        eps = 1e-5
        numeric = (objective(theta + eps * direction)[0] - objective(theta - eps * direction)[0]) / (2 * eps)
        torch.testing.assert_close(grad @ direction, numeric, rtol=1e-6, atol=1e-9)


def test_first_order_gradient_differs_from_second_order() -> None:
    mb = meta_batch()
    second = make_learner(first_order=False).meta_gradient(mb)
    first = make_learner(first_order=True).meta_gradient(mb)
    assert not torch.allclose(first, second, rtol=1e-3)
    cosine = (first @ second) / (first.norm() * second.norm())
    assert cosine > 0.5, "first-order MAML should still point roughly the same way"


@pytest.mark.parametrize("estimator", ["reinforce", "lvc"])
def test_two_inner_steps_gradient_matches_finite_differences_and_loop(estimator: str) -> None:
    """With lvc too: the line search evaluates the objective whose gradient built the step."""
    mb = meta_batch(steps=2)
    learner = make_learner(steps=2, estimator=estimator)
    objective, theta = meta_objective(learner, mb)
    grad = torch.func.grad(lambda t: objective(t)[0])(theta)
    direction = torch.randn(theta.shape, generator=torch.Generator().manual_seed(2), dtype=theta.dtype)
    numeric = (objective(theta + 1e-5 * direction)[0] - objective(theta - 1e-5 * direction)[0]) / 2e-5
    torch.testing.assert_close(grad @ direction, numeric, rtol=1e-6, atol=1e-9)
    looped = make_learner(steps=2, vectorize=False, estimator=estimator).meta_gradient(mb)
    torch.testing.assert_close(grad, looped)


def test_objective_at_current_parameters_has_zero_kl_and_unit_ratio() -> None:
    learner = make_learner()
    mb = meta_batch()
    objective, theta = meta_objective(learner, mb)
    loss, kl = objective(theta)
    assert abs(float(kl)) < 1e-12
    # with ratio 1 the surrogate is minus the mean advantage, which normalisation makes 0 per task
    assert abs(float(loss)) < 1e-10


def test_trpo_step_improves_surrogate_within_kl_limit() -> None:
    learner = make_learner()
    mb = meta_batch()
    before = torch.nn.utils.parameters_to_vector(learner.policy.parameters()).clone()
    metrics = learner.step(mb)
    after = torch.nn.utils.parameters_to_vector(learner.policy.parameters())
    assert metrics["trpo/accepted"] == 1.0
    assert metrics["trpo/improvement"] > 0
    assert 0 < metrics["trpo/kl"] <= learner.trpo.max_kl
    assert not torch.equal(before, after)
    assert all(isinstance(v, float) for v in metrics.values())


def test_trpo_step_with_tiny_kl_limit_still_respects_it() -> None:
    learner = make_learner()
    learner.trpo = dataclasses.replace(learner.trpo, max_kl=1e-6)
    metrics = learner.step(meta_batch())
    assert metrics["trpo/kl"] <= 1e-6


def test_fisher_vector_product_vmap_equals_loop() -> None:
    mb = meta_batch()
    products = []
    for vectorize in (True, False):
        objective, theta = meta_objective(make_learner(vectorize=vectorize), mb)
        _, hvp = torch.func.vjp(torch.func.grad(lambda t, f=objective: f(t)[1]), theta)
        v = torch.randn(theta.shape, generator=torch.Generator().manual_seed(3), dtype=theta.dtype)
        products.append(hvp(v)[0])
    torch.testing.assert_close(products[0], products[1])
    assert products[0].norm() > 0


def test_adapt_is_the_inner_step_of_the_objective() -> None:
    """The sampling-time adaptation (vmapped, detached) gives the policy the meta-objective adapts to."""
    learner = make_learner()
    mb = meta_batch()
    adapted = learner.adapt(learner.initial_params(N), mb.support[0], learner.inner.step_size)
    from torch.func import functional_call

    supports, query, theta, like = learner._prepare(mb)
    adapt, outputs = learner._task_maps(supports, query[0], like)
    mean_old, _ = outputs(adapt(theta))
    mean = torch.stack(
        [
            functional_call(learner.policy, {k: v[i] for k, v in adapted.items()}, (query[0][i],))[0]
            for i in range(N)
        ]
    )
    torch.testing.assert_close(mean, mean_old)


@pytest.mark.parametrize(
    ("first_order", "vectorize", "steps", "estimator"),
    [
        (False, True, 1, "reinforce"),
        (False, False, 1, "reinforce"),
        (False, True, 2, "reinforce"),
        (True, True, 1, "reinforce"),
        (False, True, 1, "lvc"),
        (False, False, 2, "lvc"),
    ],
)
def test_jfj_fisher_product_equals_double_backprop(
    first_order: bool, vectorize: bool, steps: int, estimator: str
) -> None:
    """J^T F J (Jacobian of the adaptation, Fisher of the adapted policy) is the KL's Hessian at theta."""
    mb = meta_batch(steps)
    v = torch.randn(sum(p.numel() for p in make_learner().policy.parameters()), dtype=torch.float64)
    products, grads = [], []
    for fisher in ("jfj", "double_backprop"):
        learner = make_learner(first_order, vectorize, steps, fisher_product=fisher, estimator=estimator)
        _, grad, fvp, _ = learner.linearize(mb)
        products.append(fvp(v))
        grads.append(grad)
    torch.testing.assert_close(products[0], products[1], rtol=1e-9, atol=1e-12)
    assert products[0].norm() > 0
    # the gradient from the shared reverse pass is the direct meta-gradient
    direct = make_learner(first_order, vectorize, steps, estimator=estimator).meta_gradient(mb)
    torch.testing.assert_close(grads[0], direct)
    torch.testing.assert_close(grads[0], grads[1])


def test_lvc_keeps_the_inner_step_and_adds_the_score_term_to_the_meta_gradient() -> None:
    """ProMP's LVC: same adapted policy; meta-gradient minus the paper's = mean_i alpha S_i v_i.

    ``S_i = mean_t A_t grad log pi_t grad log pi_t^T`` over task i's support steps and ``v_i`` the query
    loss's gradient at the adapted parameters, since ``J_lvc = I - alpha (H - S) = J + alpha S``.
    """
    mb = meta_batch()
    paper, lvc = make_learner(), make_learner(estimator="lvc")
    objective_paper, theta = meta_objective(paper, mb)
    objective_lvc, _ = meta_objective(lvc, mb)
    torch.testing.assert_close(objective_lvc(theta), objective_paper(theta), rtol=1e-12, atol=1e-12)
    supports, query, theta, like = paper._prepare(mb)
    (observations, actions, advantages, mask) = supports[0]
    alpha = paper.inner.step_size
    expected = torch.zeros_like(theta)
    for i in range(N):
        inner = paper.inner_loop(like)
        assert inner.step_size == alpha and not inner.first_order
        adapted = maml_trpo.adapt_flat(theta, tuple(tree_index(d, i) for d in supports), inner)
        outputs = maml_trpo.policy_outputs(adapted, query[0][i], inner)
        old = tuple(t.detach() for t in outputs)

        def query_loss(a, i=i, old=old, inner=inner):
            out = maml_trpo.policy_outputs(a, query[0][i], inner)
            return maml_trpo.surrogate_and_kl(*out, tree_index(query, i), *old)[0]

        def log_probs(t, i=i, inner=inner):
            out = maml_trpo.policy_outputs(t, observations[i], inner)
            return gaussian_log_prob(*out, actions[i])  # [T, E]

        v = torch.func.grad(query_loss)(adapted)
        scores = torch.func.jacrev(log_probs)(theta)  # [T, E, P]
        weights = advantages[i] * mask[i] / mask[i].sum()
        curvature = torch.einsum("te,tep,teq->pq", weights, scores, scores)
        expected += alpha * curvature @ v / N
    difference = lvc.meta_gradient(mb) - paper.meta_gradient(mb)
    torch.testing.assert_close(difference, expected, rtol=1e-8, atol=1e-12)
    assert difference.norm() > 1e-3 * paper.meta_gradient(mb).norm()


def test_jfj_product_is_symmetric_positive_semidefinite() -> None:
    _, _, fvp, _ = make_learner().linearize(meta_batch())
    g = torch.Generator().manual_seed(5)
    size = sum(p.numel() for p in make_learner().policy.parameters())
    u = torch.randn(size, generator=g, dtype=torch.float64)
    w = torch.randn(size, generator=g, dtype=torch.float64)
    torch.testing.assert_close(u @ fvp(w), w @ fvp(u))
    assert float(u @ fvp(u)) >= 0


def test_trpo_step_is_the_same_with_either_fisher_product() -> None:
    mb = meta_batch()
    results = []
    for fisher in ("jfj", "double_backprop"):
        learner = make_learner(fisher_product=fisher)
        metrics = learner.step(mb)
        results.append((torch.nn.utils.parameters_to_vector(learner.policy.parameters()), metrics))
    torch.testing.assert_close(results[0][0], results[1][0], rtol=1e-8, atol=1e-10)
    assert results[0][1]["trpo/ls_steps"] == results[1][1]["trpo/ls_steps"]


@pytest.mark.skipif(
    not torch.cuda.is_available(), reason="no CUDA device here: the CUDA meta-update is not run"
)
@pytest.mark.parametrize("fisher_product", ["jfj", "closed_form"])
def test_meta_update_on_cuda_equals_cpu(fisher_product: str) -> None:
    mb = meta_batch()
    cpu = make_learner(fisher_product=fisher_product)
    cuda = make_learner(device="cuda", fisher_product=fisher_product)
    cpu.step(mb)
    cuda.step(mb)
    for p_cpu, p_cuda in zip(cpu.policy.parameters(), cuda.policy.parameters(), strict=True):
        assert p_cuda.device.type == "cpu", "the policy stays on the CPU for sampling"
        torch.testing.assert_close(p_cpu, p_cuda, rtol=1e-7, atol=1e-9)


def first_tasks(batch: EpisodeBatch, k: int) -> EpisodeBatch:
    sliced = {f.name: getattr(batch, f.name) for f in dataclasses.fields(batch)}
    return EpisodeBatch(**{name: None if x is None else x[:k] for name, x in sliced.items()})


@pytest.mark.parametrize("steps", [1, 2])
def test_fisher_subsample_is_the_exact_product_of_the_first_tasks(steps: int) -> None:
    mb = meta_batch(steps)
    size = sum(p.numel() for p in make_learner().policy.parameters())
    v = torch.randn(size, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    exact = make_learner(steps=steps).linearize(mb)[2](v)
    # a fraction that keeps every task is the exact product
    torch.testing.assert_close(make_learner(steps=steps, fisher_subsample=0.99).linearize(mb)[2](v), exact)
    # ceil(0.5 * 3) = 2 tasks, each with all of its episodes: the exact product of a two-task meta-batch
    half = make_learner(steps=steps, fisher_subsample=0.5).linearize(mb)[2](v)
    two = MetaBatch(mb.tasks[:2], tuple(first_tasks(b, 2) for b in mb.support), first_tasks(mb.query, 2))
    torch.testing.assert_close(half, make_learner(steps=steps).linearize(two)[2](v))
    assert not torch.allclose(half, exact)
    assert float(v @ half) > 0


def test_fisher_subsample_step_keeps_the_kl_limit() -> None:
    learner = make_learner(fisher_subsample=0.5)
    metrics = learner.step(meta_batch())
    assert metrics["trpo/accepted"] == 1.0 and 0 < metrics["trpo/kl"] <= learner.trpo.max_kl


def test_grown_fraction_doubles_once_the_median_kl_ratio_of_a_full_window_exceeds_the_threshold() -> None:
    assert grown_fraction(0.25, [9.0] * 9, 2.0, window=10) == (0.25, [9.0] * 9), "window not full yet"
    # the median, not the mean: one outlier does not grow it
    assert grown_fraction(0.25, [1.5] * 6 + [50.0] * 4, 2.0, window=10)[0] == 0.25
    assert grown_fraction(0.25, [1.5] * 4 + [3.0] * 6, 2.0, window=10) == (0.5, [])
    assert grown_fraction(0.75, [3.0] * 10, 2.0, window=10) == (1.0, []), "never beyond all the tasks"
    assert grown_fraction(1.0, [3.0] * 12, 2.0, window=10) == (1.0, [3.0] * 10)
    assert grown_fraction(0.25, [3.0] * 10, 0.0, window=10)[0] == 0.25, "0 keeps the fraction fixed"


def test_fisher_subsample_grows_from_the_full_steps_kl_and_resumes_exactly(monkeypatch) -> None:
    monkeypatch.setattr(fisher_subsample, "FISHER_GROWTH_WINDOW", 1)
    mb = meta_batch()
    fixed = make_learner(fisher_subsample=0.3)
    metrics = fixed.step(mb)
    ratio = metrics["trpo/full_step_kl"] / fixed.trpo.max_kl
    assert metrics["trpo/fisher_subsample"] == 0.3 and fixed.fisher_subsample == 0.3
    assert "trpo.fisher_subsample" not in fixed.state_dict(), "no growth, no extra state"
    # a threshold just below this step's KL ratio grows it; one above does not
    above = make_learner(fisher_subsample=0.3, grow_at=ratio * 1.01)
    above.step(mb)
    assert above.fisher_subsample == 0.3 and above.kl_ratios == [pytest.approx(ratio)]
    grows = make_learner(fisher_subsample=0.3, grow_at=max(ratio * 0.99, 1.0 + 1e-9))
    grows.step(mb)
    assert grows.fisher_subsample == pytest.approx(0.6) and grows.kl_ratios == []
    state = grows.state_dict()
    assert float(state["trpo.fisher_subsample"]) == pytest.approx(0.6)
    # a fresh learner loading the state takes the same next step as the one that grew
    resumed = make_learner(fisher_subsample=0.3, grow_at=grows.trpo.fisher_subsample_grow_at)
    resumed.load_state_dict(state)
    assert resumed.fisher_subsample == pytest.approx(0.6)
    after = grows.step(meta_batch(1))
    again = resumed.step(meta_batch(1))
    assert after["trpo/fisher_subsample"] == again["trpo/fisher_subsample"] == pytest.approx(0.6)
    torch.testing.assert_close(resumed.meta_parameters(), grows.meta_parameters(), rtol=0, atol=0)
    # a learner that does not grow ignores the state, and one configured larger keeps its own fraction
    plain = make_learner(fisher_subsample=0.3)
    plain.load_state_dict(state)
    assert plain.fisher_subsample == 0.3
    larger = make_learner(fisher_subsample=1.0, grow_at=2.0)
    larger.load_state_dict(state)
    assert larger.fisher_subsample == 1.0 and larger.kl_ratios == []


# ---- learned inner step sizes (Meta-SGD) ----


@pytest.mark.parametrize("first_order", [False, True])
def test_learned_step_sizes_start_as_the_fixed_one_with_the_same_policy_gradient(first_order: bool) -> None:
    mb = meta_batch()
    fixed = make_learner(first_order).meta_gradient(mb)
    learned = make_learner(first_order, learn_step_size=True).meta_gradient(mb)
    assert learned.shape == (2 * fixed.shape[0],)
    torch.testing.assert_close(learned[: fixed.shape[0]], fixed, rtol=1e-10, atol=1e-12)
    assert learned[fixed.shape[0] :].norm() > 0, "the step sizes get a gradient, in first-order mode too"


@pytest.mark.parametrize(("steps", "estimator"), [(1, "reinforce"), (2, "reinforce"), (2, "lvc")])
def test_step_size_gradient_matches_finite_differences_and_the_loop(steps: int, estimator: str) -> None:
    mb = meta_batch(steps)
    learner = make_learner(steps=steps, learn_step_size=True, estimator=estimator)
    objective, theta = meta_objective(learner, mb)
    grad = torch.func.grad(lambda t: objective(t)[0])(theta)
    size = theta.shape[0] // 2
    direction = torch.zeros_like(theta)
    direction[size:] = torch.randn(size, generator=torch.Generator().manual_seed(4), dtype=theta.dtype)
    numeric = (objective(theta + 1e-5 * direction)[0] - objective(theta - 1e-5 * direction)[0]) / 2e-5
    torch.testing.assert_close(grad @ direction, numeric, rtol=1e-6, atol=1e-9)
    looped = make_learner(steps=steps, learn_step_size=True, vectorize=False, estimator=estimator)
    loop = looped.meta_gradient(mb)
    torch.testing.assert_close(grad, loop, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("fisher_subsample", [1.0, 0.5])
def test_jfj_product_with_learned_step_sizes_equals_double_backprop(fisher_subsample: float) -> None:
    mb = meta_batch()
    v = torch.randn(2 * sum(p.numel() for p in make_learner().policy.parameters()), dtype=torch.float64)
    products = [
        make_learner(
            learn_step_size=True, fisher_product=product, fisher_subsample=fisher_subsample
        ).linearize(mb)[2](v)
        for product in ("jfj", "double_backprop")
    ]
    if fisher_subsample == 1.0:
        torch.testing.assert_close(products[0], products[1], rtol=1e-9, atol=1e-12)
    assert float(v @ products[0]) > 0


def test_trpo_step_moves_the_step_sizes_within_the_kl_limit_and_state_round_trips() -> None:
    learner = make_learner(learn_step_size=True)
    metrics = learner.step(meta_batch())
    assert metrics["trpo/accepted"] == 1.0 and 0 < metrics["trpo/kl"] <= learner.trpo.max_kl
    rates = torch.cat([r.flatten() for r in learner.step_sizes.values()])
    assert not torch.allclose(rates, torch.full_like(rates, 0.3))
    assert metrics["inner/step_size_min"] <= metrics["inner/step_size_mean"] <= metrics["inner/step_size_max"]
    state = learner.state_dict()
    assert {k for k in state if k.startswith("step_size.")} == {f"step_size.{k}" for k in learner.step_sizes}
    other = make_learner(learn_step_size=True)
    other.load_state_dict(state)
    torch.testing.assert_close(other.meta_parameters(), learner.meta_parameters())
    with pytest.raises(ValueError, match="has learned step sizes"):
        make_learner().load_state_dict(state)
    with pytest.raises(ValueError, match="has no learned step sizes"):
        other.load_state_dict(make_learner().state_dict())


def test_adapt_scales_the_learned_step_sizes_like_alpha() -> None:
    learner = make_learner(learn_step_size=True)
    learner.step_sizes = {k: torch.rand_like(v) for k, v in learner.step_sizes.items()}
    batch = synthetic_batch(0)
    params = learner.initial_params(N)
    half = learner.adapt(params, batch, 0.15)  # inner.step_size is 0.3: half of each learned rate
    data = learner.pg_data(batch)
    rates = {k: 0.5 * v for k, v in learner.step_sizes.items()}
    loss_fn = functools.partial(maml_trpo.policy_gradient_loss, learner.policy)
    torch.testing.assert_close(half, detached_inner_step(loss_fn, params, data, rates))
    fixed = make_learner().adapt(params, batch, 0.15)
    assert not torch.allclose(half["log_std"], fixed["log_std"])


def with_empty_episodes(batch: EpisodeBatch, extra: int) -> EpisodeBatch:
    """``batch`` with ``extra`` empty episodes (lengths 0, zeros) after each task's, as step budgets pad."""

    def pad(x: torch.Tensor, axis: int) -> torch.Tensor:
        shape = list(x.shape)
        shape[axis] = extra
        return torch.cat([x, x.new_zeros(shape)], dim=axis)

    return EpisodeBatch(
        pad(batch.observations, 2), pad(batch.actions, 2), pad(batch.rewards, 2), pad(batch.mask, 2),
        pad(batch.lengths, 1),
    )  # fmt: skip


@pytest.mark.parametrize("fisher_product", ["jfj", "closed_form"])
def test_empty_padding_episodes_change_neither_meta_gradient_nor_trpo_step(fisher_product: str) -> None:
    mb = meta_batch()
    support = tuple(with_empty_episodes(b, 3) for b in mb.support)
    padded = MetaBatch(mb.tasks, support, with_empty_episodes(mb.query, 5))
    torch.testing.assert_close(make_learner().meta_gradient(padded), make_learner().meta_gradient(mb))
    results = []
    for batch in (mb, padded):
        learner = make_learner(fisher_product=fisher_product)
        metrics = learner.step(batch)
        results.append((torch.nn.utils.parameters_to_vector(learner.policy.parameters()), metrics))
    torch.testing.assert_close(results[1][0], results[0][0], rtol=1e-9, atol=1e-11)
    for name in ("meta/return_before", "meta/return_after", "meta/env_steps", "trpo/ls_steps"):
        assert results[1][1][name] == pytest.approx(results[0][1][name], rel=1e-9)


@pytest.mark.parametrize(
    ("fisher_product", "estimator", "steps"),
    [("jfj", "reinforce", 1), ("closed_form", "reinforce", 1), ("jfj", "lvc", 1), ("jfj", "reinforce", 2)],
)
def test_dropping_the_padding_changes_neither_meta_gradient_nor_trpo_step_nor_adaptation(
    fisher_product: str, estimator: str, steps: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``compact_steps`` gives what the padded ``[N, T, E]`` layout gives, up to the order of summation.

    The TRPO step itself is compared where conjugate gradient is well conditioned: on this small lvc problem
    (Fisher condition number ~1e5) a relative change of 1e-15 in the Fisher product moves CG's 10th iterate
    by ~1e-4, so there the comparison stops at the step's inputs (loss, gradient, Fisher product, objective).
    """
    mb = meta_batch(steps)
    support = tuple(with_empty_episodes(b, 2) for b in mb.support)
    ragged = MetaBatch(mb.tasks, support, with_empty_episodes(mb.query, 3))
    assert ragged.query.mask.sum() < ragged.query.mask.numel() / 2  # mostly padding, as step budgets give

    def run() -> list[torch.Tensor]:
        learner = make_learner(fisher_product=fisher_product, estimator=estimator, steps=steps)
        adapted = learner.adapt(learner.initial_params(N), ragged.support[0], 0.3)
        loss, grad, fvp, objective = learner.linearize(ragged)
        v = torch.linspace(-1.0, 1.0, grad.numel(), dtype=grad.dtype)
        out = [adapted["log_std"], loss, grad, learner.meta_gradient(ragged), fvp(v), *objective(
            learner.meta_parameters() + 0.01 * v
        )]  # fmt: skip
        if estimator != "lvc":
            learner.step(ragged)
            out.append(torch.nn.utils.parameters_to_vector(learner.policy.parameters()))
        return out

    compact = run()
    assert learner_data_shape(ragged) == (N, int(ragged.query.mask.sum(dim=(1, 2)).max()), 1)
    monkeypatch.setattr(maml_trpo, "compact_steps", lambda data: data)
    padded = run()
    for a, b in zip(compact, padded, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11)


def learner_data_shape(batch: MetaBatch) -> tuple[int, ...]:
    return tuple(make_learner().pg_data(batch.query)[3].shape)


def test_step_reports_success_rates_before_and_after_adaptation_for_batches_that_carry_them() -> None:
    mb = meta_batch()
    assert not any(k.startswith(("meta/success", "inner/success")) for k in make_learner().step(mb))
    support = dataclasses.replace(mb.support[0], successes=torch.tensor([[1.0, 0, 0, 0]] * N))
    query = dataclasses.replace(mb.query, successes=torch.tensor([[1.0, 1, 0, 0]] * N))
    metrics = make_learner().step(MetaBatch(mb.tasks, (support,), query))
    assert metrics["meta/success_before"] == pytest.approx(0.25) == metrics["inner/success_step0"]
    assert metrics["meta/success_after"] == pytest.approx(0.5) == metrics["inner/success_step1"]
