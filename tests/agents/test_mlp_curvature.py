"""The closed-form meta-update equals the torch.func one: pieces, products, gradient, subsample, step."""

from __future__ import annotations

import pytest
import torch

from metarl.agents.maml_trpo import MAMLTRPO
from metarl.agents.mlp_curvature import ClosedFormMetaUpdate, closed_form_supported
from metarl.agents.mlp_derivatives import (
    inner_gradient,
    inner_hessian_product,
    join_params,
    mlp_layout,
    split_params,
)
from metarl.agents.policies import GaussianMLPPolicy, gaussian_log_prob
from metarl.config import InnerConfig, MetaConfig, TRPOConfig
from metarl.core.functional import flatten_params, unflatten_params
from metarl.core.types import EpisodeBatch, MetaBatch

N, T, E, D, A = 5, 6, 3, 3, 2


def synthetic_batch(seed: int) -> EpisodeBatch:
    """Ragged episodes (some padding), float64."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(2, T + 1, (N, E), generator=g)
    mask = (torch.arange(T)[None, :, None] < lengths[:, None, :]).double()
    obs = torch.randn(N, T, E, D, generator=g, dtype=torch.float64)
    return EpisodeBatch(
        observations=obs,
        actions=torch.randn(N, T, E, A, generator=g, dtype=torch.float64),
        rewards=(obs.sum(-1) + torch.randn(N, T, E, generator=g, dtype=torch.float64)) * mask,
        mask=mask,
        lengths=lengths,
    )


def make_learner(
    activation: str = "relu",
    product: str = "closed_form",
    first_order: bool = False,
    steps: int = 1,
    fisher_subsample: float = 1.0,
    hidden: tuple[int, ...] = (7, 6),
) -> MAMLTRPO:
    torch.manual_seed(0)
    policy = GaussianMLPPolicy(D, A, hidden, activation, init_std=0.7).double()
    with torch.no_grad():  # nonzero biases and log-stds, so that every term of the products is exercised
        for p in policy.parameters():
            p.add_(0.3 * torch.randn_like(p))
    inner = InnerConfig(steps=steps, step_size=0.4, first_order=first_order)
    trpo = TRPOConfig(max_kl=0.05, fisher_product=product, fisher_subsample=fisher_subsample)
    return MAMLTRPO(policy, inner, MetaConfig(), trpo)


def meta_batch(steps: int = 1) -> MetaBatch:
    return MetaBatch(list(range(N)), tuple(synthetic_batch(s) for s in range(steps)), synthetic_batch(99))


def test_split_and_join_follow_named_parameters_order() -> None:
    policy = make_learner().policy
    layout = mlp_layout(policy)
    assert layout is not None and layout.activation == "relu" and layout.shapes == ((7, D), (6, 7), (A, 6))
    flat = flatten_params(dict(policy.named_parameters())).detach()
    weights, biases, log_std = split_params(flat, layout)
    torch.testing.assert_close(weights[1], policy.body[2].weight.detach())
    torch.testing.assert_close(biases[2], policy.mean.bias.detach())
    torch.testing.assert_close(log_std, policy.log_std.detach())
    torch.testing.assert_close(join_params((weights, biases, log_std)), flat)


@pytest.mark.parametrize("activation", ["relu", "tanh", "elu"])
def test_inner_gradient_and_hessian_product_equal_autograd(activation: str) -> None:
    """R-operator Hessian-vector product against torch.func's forward-over-reverse, per task."""
    learner = make_learner(activation)
    policy, layout = learner.policy, mlp_layout(learner.policy)
    like = {k: v.detach() for k, v in policy.named_parameters()}
    theta = flatten_params(like)
    batch = synthetic_batch(3)
    obs, actions = batch.observations.reshape(N, T * E, D), batch.actions.reshape(N, T * E, A)
    mask = batch.mask.reshape(N, T * E)
    advantages = torch.randn(N, T * E, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    coef = mask * advantages / mask.sum(-1, keepdim=True)

    def loss(t: torch.Tensor, i: int) -> torch.Tensor:
        mean, log_std = torch.func.functional_call(policy, unflatten_params(t, like), (obs[i],))
        return -(coef[i] * gaussian_log_prob(mean, log_std, actions[i])).sum()

    grad, curvature = inner_gradient(split_params(theta, layout), obs, actions, coef, activation)
    v = torch.randn(theta.shape, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    per_task_v = torch.randn(
        (N, *theta.shape), generator=torch.Generator().manual_seed(6), dtype=torch.float64
    )
    shared = inner_hessian_product(curvature, v, layout)
    own = inner_hessian_product(curvature, per_task_v, layout)
    for i in range(N):
        torch.testing.assert_close(grad[i], torch.func.grad(loss)(theta, i), rtol=1e-10, atol=1e-12)
        for tangent, got in ((v, shared[i]), (per_task_v[i], own[i])):
            _, expected = torch.func.jvp(lambda t, i=i: torch.func.grad(loss)(t, i), (theta,), (tangent,))
            torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)
    assert shared.abs().max() > 1e-3


@pytest.mark.parametrize(
    ("activation", "first_order", "steps", "fisher_subsample"),
    [
        ("relu", False, 1, 1.0),
        ("tanh", False, 1, 1.0),
        ("elu", False, 1, 1.0),
        ("relu", True, 1, 1.0),
        ("relu", False, 0, 1.0),
        ("tanh", False, 1, 0.5),
    ],
)
def test_linearize_equals_jfj(
    activation: str, first_order: bool, steps: int, fisher_subsample: float
) -> None:
    """Loss, meta-gradient, old outputs and Fisher-vector product equal the torch.func path's.

    Covers one inner step (second and first order), none (the pretrained baseline), every activation and
    the task subsample, whose first 3 of 5 tasks cut a chunk.
    """
    mb = meta_batch(steps)
    closed = make_learner(activation, "closed_form", first_order, steps, fisher_subsample)
    reference = make_learner(activation, "jfj", first_order, steps, fisher_subsample)
    loss, grad, fvp, objective = closed.linearize(mb)
    loss_ref, grad_ref, fvp_ref, objective_ref = reference.linearize(mb)
    torch.testing.assert_close(loss, loss_ref, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(grad, grad_ref, rtol=1e-10, atol=1e-12)
    g = torch.Generator().manual_seed(7)
    tangents = [torch.randn(grad.shape, generator=g, dtype=torch.float64) for _ in range(2)]
    first = fvp(tangents[0])
    for v in tangents:
        torch.testing.assert_close(fvp(v), fvp_ref(v), rtol=1e-10, atol=1e-12)
    # the products work in place on their own temporaries only: the cached primal passes stay as they were
    assert torch.equal(fvp(tangents[0]), first)
    theta = closed.meta_parameters()
    step = 0.05 * grad / grad.norm()
    for a, b in zip(objective(theta - step), objective_ref(theta - step), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    assert grad.norm() > 1e-4


def test_chunks_of_tasks_give_the_same_product(monkeypatch) -> None:
    """The chunk size is a cache optimisation only."""
    import metarl.agents.mlp_curvature as curvature

    mb = meta_batch()
    learner = make_learner("tanh")
    v = torch.randn(
        learner.meta_parameters().shape, generator=torch.Generator().manual_seed(8), dtype=torch.float64
    )
    results = []
    for size in (1, 2, N):
        monkeypatch.setattr(curvature, "CHUNK_TASKS", size)
        _, grad, fvp, _ = learner.linearize(mb)
        results.append((grad, fvp(v)))
    for grad, product in results[1:]:
        torch.testing.assert_close(grad, results[0][0], rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(product, results[0][1], rtol=1e-12, atol=1e-14)


def test_trpo_step_is_the_same_as_jfj() -> None:
    """The whole meta-update (CG, scaling, line search) lands on the same parameters.

    Ten conjugate-gradient iterations on this small, poorly conditioned problem amplify the products'
    1e-13 differences to about 1e-5 of the parameters, so the step is compared at 1e-4 (jfj against double
    backprop differs by as much).
    """
    mb = meta_batch()
    closed, reference = make_learner("tanh", "closed_form"), make_learner("tanh", "jfj")
    metrics, metrics_ref = closed.step(mb), reference.step(mb)
    after, after_ref = closed.meta_parameters(), reference.meta_parameters()
    assert (after - after_ref).norm() < 1e-4 * after_ref.norm()
    moved = make_learner("tanh").meta_parameters()
    assert (after_ref - moved).norm() > 1e-3 * after_ref.norm(), "the step itself is far larger"
    assert metrics["trpo/ls_steps"] == metrics_ref["trpo/ls_steps"]
    assert metrics["trpo/kl"] == pytest.approx(metrics_ref["trpo/kl"], rel=1e-3)


def test_closed_form_refuses_what_it_does_not_cover() -> None:
    policy = make_learner().policy
    assert closed_form_supported(policy, 1, False, "reinforce") is None
    assert "inner.steps is 2" in closed_form_supported(policy, 2, False, "reinforce")
    assert "learn_step_size" in closed_form_supported(policy, 1, True, "reinforce")
    assert "'lvc'" in closed_form_supported(policy, 1, False, "lvc")
    assert "not a GaussianMLPPolicy" in closed_form_supported(torch.nn.Linear(2, 2), 1, False, "reinforce")
    with pytest.raises(ValueError, match="trpo.fisher_product: closed_form does not apply: inner.steps is 2"):
        make_learner(steps=2).linearize(meta_batch(2))
    with pytest.raises(ValueError, match="at most one inner step"):
        ClosedFormMetaUpdate(
            mlp_layout(policy), torch.zeros(1), (None, None), (torch.zeros(1, 1, 1, 1),), 0.1, False, 1
        )
