"""Conjugate gradient, trust-region scaling and the backtracking line search on small analytic problems."""

from __future__ import annotations

import math

import pytest
import torch

from metarl.core.trpo import (
    LineSearchResult,
    backtracking_line_search,
    conjugate_gradient,
    hessian_vector_product,
    trpo_metrics,
    trust_region_step,
)


def _random_spd(p: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    a = torch.randn(p, p, generator=gen, dtype=torch.float64)
    return a @ a.T + p * torch.eye(p, dtype=torch.float64)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("iterations", [5, 10])
def test_conjugate_gradient_solves_small_spd_system(seed, iterations):
    a = _random_spd(5, seed)
    b = torch.randn(5, generator=torch.Generator().manual_seed(100 + seed), dtype=torch.float64)
    x, a_x = conjugate_gradient(lambda v: a @ v, b, iterations=iterations)
    torch.testing.assert_close(x, torch.linalg.solve(a, b), atol=1e-5, rtol=0)
    # The product it hands back (from its residual) is A x, with no extra call to matvec.
    torch.testing.assert_close(a_x, a @ x, atol=1e-8, rtol=1e-8)


def test_conjugate_gradient_returns_residual_product_even_when_stopped_early():
    a = _random_spd(30, seed=7)
    b = torch.randn(30, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    calls = []

    def matvec(v: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        return a @ v

    x, a_x = conjugate_gradient(matvec, b, iterations=3)
    assert len(calls) == 3
    torch.testing.assert_close(a_x, a @ x, atol=1e-8, rtol=1e-8)


def test_conjugate_gradient_zero_rhs_returns_zero_without_calling_matvec():
    calls = []

    def matvec(v: torch.Tensor) -> torch.Tensor:
        calls.append(v)
        return v

    x, a_x = conjugate_gradient(matvec, torch.zeros(4), iterations=10)
    assert torch.equal(x, torch.zeros(4)) and torch.equal(a_x, torch.zeros(4))
    assert calls == []


@pytest.mark.parametrize("max_kl", [1e-3, 0.01, 0.5])
def test_trust_region_step_quadratic_kl_equals_max_kl(max_kl):
    fisher = _random_spd(5, seed=3)
    direction = torch.randn(5, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    step = trust_region_step(direction, fisher @ direction, max_kl)
    assert 0.5 * float(step @ fisher @ step) == pytest.approx(max_kl, rel=1e-10)
    # Only the length changes, not the direction.
    torch.testing.assert_close(step / step.norm(), direction / direction.norm())


def _quadratic_evaluate(target: torch.Tensor):
    """``(|theta - target|^2, |theta|^2)``: the loss falls towards ``target``, the 'KL' grows away from 0."""

    def evaluate(theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return (theta - target).pow(2).sum(), theta.pow(2).sum()

    return evaluate


def test_line_search_accepts_full_step_when_it_improves_within_kl():
    target = torch.tensor([1.0, -1.0])
    params = torch.zeros(2)
    full_step = -0.1 * target  # candidate = 0.1 * target: lower loss, kl = 0.02
    result = backtracking_line_search(
        _quadratic_evaluate(target), params, full_step, loss_before=2.0, max_kl=0.05
    )
    assert result.accepted
    assert result.steps == 1
    torch.testing.assert_close(result.params, params - full_step)
    assert result.loss == pytest.approx(2 * 0.9**2)
    assert result.kl == pytest.approx(0.02)


@pytest.mark.parametrize("ratio", [0.5, 0.8])
def test_line_search_shrinks_until_kl_within_bound_and_takes_first_such(ratio):
    target = torch.tensor([1.0, 1.0])
    params = torch.zeros(2)
    # The candidate at scale s is s * target: kl = 2 s^2 and loss = 2 (1 - s)^2 < 2 for s in (0, 1].
    full_step = -target
    max_kl = 0.1
    tried: list[torch.Tensor] = []
    evaluate = _quadratic_evaluate(target)

    def recording_evaluate(theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        tried.append(theta.clone())
        return evaluate(theta)

    result = backtracking_line_search(
        recording_evaluate, params, full_step, 2.0, max_kl, ratio=ratio, max_steps=30
    )
    expected_steps = next(k for k in range(1, 31) if 2 * ratio ** (2 * (k - 1)) <= max_kl)
    assert result.accepted
    assert result.steps == expected_steps > 1
    assert result.kl <= max_kl
    assert len(tried) == expected_steps
    assert all(float(t.pow(2).sum()) > max_kl for t in tried[:-1])
    assert result.full_step_kl == pytest.approx(2.0), "the full step's KL, before any shrinking"
    torch.testing.assert_close(result.params, ratio ** (expected_steps - 1) * target)


def test_line_search_rejects_everything_and_returns_old_params_when_loss_never_improves():
    params = torch.tensor([0.3, -0.2])
    full_step = torch.tensor([1.0, 1.0])
    calls = []

    def evaluate(theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        calls.append(theta)
        return torch.tensor(5.0), torch.tensor(0.0)

    result = backtracking_line_search(evaluate, params, full_step, loss_before=1.0, max_kl=0.01, max_steps=7)
    assert not result.accepted
    assert result.params is params
    assert result.steps == 7
    assert len(calls) == 7
    assert result.loss == 1.0
    assert result.kl == 0.0
    assert result.full_step_kl == 0.0


@pytest.mark.parametrize("bad", ["loss", "kl"])
def test_line_search_treats_nan_as_rejection(bad):
    params = torch.zeros(2)
    full_step = -torch.ones(2)
    calls = []

    def evaluate(theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        calls.append(theta)
        loss, kl = torch.tensor(0.5), torch.tensor(0.0)
        if len(calls) == 1:  # only the full step is non-finite
            loss, kl = (torch.tensor(math.nan), kl) if bad == "loss" else (loss, torch.tensor(math.nan))
        return loss, kl

    result = backtracking_line_search(evaluate, params, full_step, loss_before=1.0, max_kl=0.01, ratio=0.5)
    assert result.accepted
    assert result.steps == 2
    torch.testing.assert_close(result.params, torch.full((2,), 0.5))


def test_line_search_all_nan_returns_old_params():
    params = torch.ones(3)

    def evaluate(theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.tensor(math.nan), torch.tensor(0.0)

    result = backtracking_line_search(
        evaluate, params, torch.ones(3), loss_before=1.0, max_kl=1.0, max_steps=4
    )
    assert not result.accepted
    assert torch.equal(result.params, params)
    assert result.loss == 1.0


def test_hessian_vector_product_of_a_cubic_is_its_analytic_hessian_times_v():
    a = _random_spd(4, 3)
    x = torch.randn(4, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    v = torch.randn(4, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    # f(x) = x^T A x / 2 + sum(x^3) / 6: H(x) = A + diag(x)
    hvp = hessian_vector_product(lambda t: t @ a @ t / 2 + (t**3).sum() / 6, x)
    torch.testing.assert_close(hvp(v), a @ v + x * v, atol=1e-12, rtol=0)


def test_trpo_metrics_report_the_step_and_the_surrogate_change():
    theta = torch.zeros(3)
    result = LineSearchResult(torch.tensor([3.0, 4.0, 0.0]), True, 2, -1.5, 0.004, 0.02)
    metrics = trpo_metrics(torch.tensor(-1.0), torch.tensor([0.0, 6.0, 8.0]), theta, result, 0.25)
    assert metrics == {
        "trpo/surrogate_before": 1.0,
        "trpo/surrogate_after": 1.5,
        "trpo/improvement": 0.5,
        "trpo/kl": 0.004,
        "trpo/full_step_kl": 0.02,
        "trpo/fisher_subsample": 0.25,
        "trpo/ls_steps": 2.0,
        "trpo/accepted": 1.0,
        "trpo/grad_norm": 10.0,
        "trpo/step_norm": 5.0,
    }
