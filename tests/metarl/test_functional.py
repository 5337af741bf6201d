"""Parameter-dict helpers and the torch.func inner loop against manual autograd."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from metarl.core.functional import (
    expand_params,
    flatten_params,
    inner_adapt,
    inner_step,
    parameters_of,
    unflatten_params,
)


def _model(seed: int = 0) -> nn.Module:
    """A small non-linear regressor ``[..., 3] -> [..., 1]`` in float64."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1)).double()


def _data(seed: int, n: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=gen, dtype=torch.float64)
    y = torch.randn(n, 1, generator=gen, dtype=torch.float64)
    return x, y


def _loss_fn(model: nn.Module):
    def loss(params: dict[str, torch.Tensor], data: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        x, y = data
        return (torch.func.functional_call(model, params, (x,)) - y).pow(2).mean()

    return loss


def test_flatten_unflatten_round_trip():
    params = parameters_of(_model())
    vector = flatten_params(params)
    assert vector.shape == (sum(p.numel() for p in params.values()),)
    restored = unflatten_params(vector, params)
    assert list(restored) == list(params)
    for name, p in params.items():
        assert restored[name].shape == p.shape
        assert torch.equal(restored[name], p)


def test_unflatten_keeps_the_graph():
    params = {k: v.detach() for k, v in parameters_of(_model()).items()}
    vector = flatten_params(params).requires_grad_(True)
    total = sum(p.sum() for p in unflatten_params(vector, params).values())
    (grad,) = torch.autograd.grad(total, vector)
    assert torch.equal(grad, torch.ones_like(vector))


@pytest.mark.parametrize(
    "delta",
    [-1, 1],
    ids=["too-short", "too-long"],
)
def test_unflatten_wrong_size_raises(delta):
    params = parameters_of(_model())
    size = flatten_params(params).numel()
    with pytest.raises(ValueError, match=rf"vector has {size + delta} entries, the parameters need {size}"):
        unflatten_params(torch.zeros(size + delta, dtype=torch.float64), params)


def test_functional_call_on_parameters_of_matches_module():
    model = _model()
    x, _ = _data(1)
    torch.testing.assert_close(torch.func.functional_call(model, parameters_of(model), (x,)), model(x))


def test_parameters_of_returns_the_module_tensors():
    model = _model()
    params = parameters_of(model)
    assert all(params[name] is p for name, p in model.named_parameters())


@pytest.mark.parametrize("first_order", [False, True])
def test_inner_step_matches_manual_autograd_step(first_order):
    model = _model()
    params = parameters_of(model)
    support = _data(1)
    loss_fn = _loss_fn(model)
    adapted = inner_step(loss_fn, params, support, step_size=0.3, first_order=first_order)
    grads = torch.autograd.grad(loss_fn(params, support), list(params.values()))
    for (name, p), g in zip(params.items(), grads, strict=True):
        torch.testing.assert_close(adapted[name], p - 0.3 * g)


def _outer_grads_manual_second_order(model: nn.Module, support, query, alpha: float) -> list[torch.Tensor]:
    loss_fn = _loss_fn(model)
    params = parameters_of(model)
    grads = torch.autograd.grad(loss_fn(params, support), list(params.values()), create_graph=True)
    adapted = {name: p - alpha * g for (name, p), g in zip(params.items(), grads, strict=True)}
    return list(torch.autograd.grad(loss_fn(adapted, query), list(params.values())))


def _outer_grads(model: nn.Module, support, query, alpha: float, first_order: bool) -> list[torch.Tensor]:
    loss_fn = _loss_fn(model)
    params = parameters_of(model)
    adapted = inner_step(loss_fn, params, support, alpha, first_order)
    return list(torch.autograd.grad(loss_fn(adapted, query), list(params.values())))


def test_second_order_outer_gradient_matches_manual_double_backprop():
    model = _model()
    support, query = _data(1), _data(2)
    expected = _outer_grads_manual_second_order(model, support, query, alpha=0.5)
    actual = _outer_grads(model, support, query, alpha=0.5, first_order=False)
    for a, e in zip(actual, expected, strict=True):
        torch.testing.assert_close(a, e)


def test_first_order_outer_gradient_is_query_gradient_at_adapted_params():
    model = _model()
    support, query = _data(1), _data(2)
    loss_fn = _loss_fn(model)
    params = parameters_of(model)
    grads = torch.autograd.grad(loss_fn(params, support), list(params.values()))
    adapted = {
        name: (p - 0.5 * g).detach().requires_grad_(True)
        for (name, p), g in zip(params.items(), grads, strict=True)
    }
    expected = torch.autograd.grad(loss_fn(adapted, query), list(adapted.values()))
    actual = _outer_grads(model, support, query, alpha=0.5, first_order=True)
    for a, e in zip(actual, expected, strict=True):
        torch.testing.assert_close(a, e)


def test_first_and_second_order_differ_on_nonlinear_model():
    model = _model()
    support, query = _data(1), _data(2)
    first = flatten_params(dict(enumerate(_outer_grads(model, support, query, 0.5, first_order=True))))
    second = flatten_params(dict(enumerate(_outer_grads(model, support, query, 0.5, first_order=False))))
    assert (first - second).abs().max() > 1e-4


@pytest.mark.parametrize("first_order", [False, True])
def test_inner_adapt_two_steps_equals_two_inner_steps(first_order):
    model = _model()
    params = parameters_of(model)
    loss_fn = _loss_fn(model)
    supports = [_data(1), _data(2)]
    adapted = inner_adapt(loss_fn, params, supports, [0.3, 0.15], first_order)
    manual = inner_step(loss_fn, params, supports[0], 0.3, first_order)
    manual = inner_step(loss_fn, manual, supports[1], 0.15, first_order)
    for name in params:
        torch.testing.assert_close(adapted[name], manual[name])


def test_inner_adapt_with_no_supports_returns_params_unchanged():
    model = _model()
    params = parameters_of(model)
    adapted = inner_adapt(_loss_fn(model), params, [], [], first_order=False)
    assert all(adapted[name] is p for name, p in params.items())


@pytest.mark.parametrize(("n_supports", "n_steps"), [(2, 1), (1, 3)])
def test_inner_adapt_length_mismatch_raises(n_supports, n_steps):
    model = _model()
    supports = [_data(i) for i in range(n_supports)]
    with pytest.raises(ValueError, match=rf"got {n_supports} support sets but {n_steps} step sizes"):
        inner_adapt(_loss_fn(model), parameters_of(model), supports, [0.1] * n_steps, first_order=False)


def test_expand_params_adds_task_axis_as_view():
    params = {k: v.detach() for k, v in parameters_of(_model()).items()}
    expanded = expand_params(params, 5)
    assert list(expanded) == list(params)
    for name, p in params.items():
        assert expanded[name].shape == (5, *p.shape)
        assert expanded[name].data_ptr() == p.data_ptr()
        for n in range(5):
            assert torch.equal(expanded[name][n], p)


@pytest.mark.parametrize("first_order", [False, True])
@pytest.mark.parametrize("expand", [False, True], ids=["shared-params", "expanded-params"])
def test_vmap_inner_step_over_tasks_matches_loop(first_order, expand):
    model = _model()
    params = parameters_of(model)
    loss_fn = _loss_fn(model)
    tasks = [_data(10 + n) for n in range(4)]
    xs = torch.stack([x for x, _ in tasks])
    ys = torch.stack([y for _, y in tasks])

    def step(p, x, y):
        return inner_step(loss_fn, p, (x, y), 0.2, first_order)

    if expand:
        batched = torch.func.vmap(step, in_dims=(0, 0, 0))(expand_params(params, 4), xs, ys)
    else:
        batched = torch.func.vmap(step, in_dims=(None, 0, 0))(params, xs, ys)
    for n, support in enumerate(tasks):
        looped = inner_step(loss_fn, params, support, 0.2, first_order)
        for name in params:
            assert batched[name].shape == (4, *params[name].shape)
            torch.testing.assert_close(batched[name][n], looped[name])


def test_per_parameter_step_sizes_equal_a_float_when_all_equal():
    """Meta-SGD's dict of step sizes: all entries alpha gives the float step; they receive gradients."""
    model = _model()
    params = parameters_of(model)
    data = _data(1)
    rates = {k: torch.full_like(v, 0.1, requires_grad=True) for k, v in params.items()}
    with_float = inner_step(_loss_fn(model), params, data, 0.1, first_order=False)
    with_dict = inner_step(_loss_fn(model), params, data, rates, first_order=True)
    for k in params:
        torch.testing.assert_close(with_dict[k], with_float[k])
    query = _loss_fn(model)(with_dict, _data(2))
    grads = torch.autograd.grad(query, list(rates.values()))
    assert all(g.abs().sum() > 0 for g in grads)
