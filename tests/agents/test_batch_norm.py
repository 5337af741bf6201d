"""Batch norm with the closed-form second derivative: values, first and second derivatives."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from metarl.agents.batch_norm import batch_norm


def _inputs(seed: int = 0, size: int = 5) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    # an offset mean and unequal scales per channel, as after a convolution
    scales = torch.tensor([0.1, 1.0, 10.0], dtype=torch.float64).view(1, -1, 1, 1)
    x = torch.randn(2, 3, size, size, generator=gen, dtype=torch.float64) * scales + 2.0
    weight = torch.randn(3, generator=gen, dtype=torch.float64)
    bias = torch.randn(3, generator=gen, dtype=torch.float64)
    return x.requires_grad_(), weight.requires_grad_(), bias.requires_grad_()


def test_values_equal_pytorch_batch_norm() -> None:
    x, weight, bias = _inputs()
    torch.testing.assert_close(
        batch_norm(x, weight, bias), F.batch_norm(x, None, None, weight, bias, training=True), rtol=0, atol=0
    )


def test_first_and_second_derivatives_pass_gradcheck() -> None:
    inputs = _inputs(size=3)  # gradgradcheck builds the full Jacobian: keep it small
    assert torch.autograd.gradcheck(batch_norm, inputs)
    assert torch.autograd.gradgradcheck(batch_norm, inputs)


@pytest.mark.parametrize("used", ["x", "weight", "x+weight+bias"])
def test_second_derivative_equals_pytorch_when_only_some_gradients_are_used(used: str) -> None:
    """The inner-gradient pieces MAML differentiates: ANIL-like uses of only some of (gx, gw, gb)."""
    x, weight, bias = _inputs(1)
    cotangent = torch.randn_like(x)
    results = []
    for norm in (batch_norm, lambda *a: F.batch_norm(a[0], None, None, a[1], a[2], training=True)):
        out = norm(x, weight, bias)
        gx, gw, gb = torch.autograd.grad((out * cotangent).sum(), (x, weight, bias), create_graph=True)
        picked = {"x": gx.pow(2).sum(), "weight": gw.pow(3).sum()}
        picked["x+weight+bias"] = picked["x"] + picked["weight"] + gb.sin().sum()
        # the backward does not depend on the bias, so its second derivative is absent (None)
        results.append(torch.autograd.grad(picked[used], (x, weight, bias), allow_unused=True))
    # (and PyTorch leaves out the weight's when only gw is used; that is zero)
    assert results[0][2] is None and results[1][2] is None
    for got, want, like in zip(results[0][:2], results[1][:2], (x, weight), strict=True):
        torch.testing.assert_close(
            got, torch.zeros_like(like) if want is None else want, rtol=1e-9, atol=1e-12
        )
