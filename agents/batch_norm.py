"""Batch norm with batch statistics, whose second derivative is written out in closed form.

Second-order MAML differentiates the inner gradient, so it differentiates batch norm's backward. PyTorch
differentiates that backward with a generic formula that makes many passes over the activations; on the
Omniglot meta-batch of docs/BENCHMARKS.md it took about a quarter of a grouped second-order meta-update.
:func:`batch_norm` computes the forward and the backward with PyTorch's own kernels (so its values equal
``F.batch_norm(x, None, None, weight, bias, training=True)``) and differentiates the backward with the
closed form below, in about a dozen passes.

Per channel, over its ``M`` entries (batch and space), with ``xhat = (x - mean) * invstd``:

* forward: ``y = weight * xhat + bias``;
* backward of a cotangent ``gy``: ``gb = sum(gy)``, ``gw = sum(gy * xhat)`` and
  ``gx = s * (gy - gb / M - xhat * gw / M)`` with ``s = weight * invstd``;
* that backward's own vector-Jacobian product, for cotangents ``(a, ggw, ggb)`` of ``(gx, gw, gb)``
  (``mean_*`` are means over the channel's entries):

  - ``d_gy = ggb + ggw * xhat + s * (a - mean(a) - xhat * mean(a * xhat))``;
  - ``d_weight = invstd * (sum(a * gy) - mean(a) * gb - mean(a * xhat) * gw)``;
  - ``d_x = invstd * (G - mean(G) - xhat * mean(G * xhat)) - weight * d_weight * invstd / M * xhat`` with
    ``G = (ggw - s * mean(a * xhat)) * gy - s * gw / M * a``, whose two means follow from the sums above.

``tests/agents/test_batch_norm.py`` checks both derivatives with ``gradcheck`` and ``gradgradcheck``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, autograd

#: what ``F.batch_norm`` uses by default
EPS = 1e-5
_CHANNEL = (1, -1, 1, 1)
_REDUCE = (0, 2, 3)


def batch_norm(x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """Batch norm with the statistics of ``x``: ``x [B, C, H, W] -> [B, C, H, W]``, ``weight, bias [C]``.

    Equals ``F.batch_norm(x, None, None, weight, bias, training=True)``; only its second derivative is
    computed differently (see the module docstring).
    """
    return _BatchNorm.apply(x, weight, bias)[0]


class _BatchNorm(autograd.Function):
    """``(x, weight, bias) -> (y, mean, invstd)``; the statistics are returned for the backward only."""

    @staticmethod
    def forward(x: Tensor, weight: Tensor, bias: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        return torch.ops.aten.native_batch_norm(x, weight, bias, None, None, True, 0.0, EPS)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Tensor, ...], output: tuple[Tensor, ...]) -> None:
        x, weight, _ = inputs
        _, mean, invstd = output
        ctx.mark_non_differentiable(mean, invstd)
        ctx.save_for_backward(x, weight, mean, invstd)

    @staticmethod
    def backward(ctx: Any, gy: Tensor, *_: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        # mean and invstd enter as constants: _BatchNormBackward's derivative accounts for their
        # dependence on x
        return _BatchNormBackward.apply(gy, *ctx.saved_tensors)


class _BatchNormBackward(autograd.Function):
    """``(gy, x, weight, mean, invstd) -> (gx, gw, gb)``, differentiable once, in closed form."""

    @staticmethod
    def forward(gy: Tensor, x: Tensor, weight: Tensor, mean: Tensor, invstd: Tensor) -> tuple[Tensor, ...]:
        return torch.ops.aten.native_batch_norm_backward(
            gy, x, weight, None, None, mean, invstd, True, EPS, [True, True, True]
        )

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Tensor, ...], output: tuple[Tensor, ...]) -> None:
        ctx.save_for_backward(*inputs, output[1], output[2])
        ctx.set_materialize_grads(False)  # a None cotangent (e.g. ANIL's unused gw) skips its terms

    @staticmethod
    @autograd.function.once_differentiable
    def backward(
        ctx: Any, a: Tensor | None, ggw: Tensor | None, ggb: Tensor | None
    ) -> tuple[Tensor | None, ...]:
        gy, x, weight, mean, invstd, gw, gb = ctx.saved_tensors
        count = x.numel() // x.shape[1]
        xhat = (x - mean.view(_CHANNEL)).mul_(invstd.view(_CHANNEL))
        zero = torch.zeros_like(gw)
        ggw = zero if ggw is None else ggw
        ggb = zero if ggb is None else ggb
        if a is None:
            mean_a = mean_axhat = sum_agy = zero
        else:
            mean_a = a.mean(_REDUCE)
            mean_axhat = (a * xhat).mean(_REDUCE)
            sum_agy = (a * gy).sum(_REDUCE)
        scale = weight * invstd
        m = gw / count
        d_weight = invstd * (sum_agy - mean_a * gb - mean_axhat * gw)
        c_gy = ggw - scale * mean_axhat
        d_gy = torch.addcmul((ggb - scale * mean_a).view(_CHANNEL), c_gy.view(_CHANNEL), xhat)
        mean_g = c_gy * gb / count - scale * m * mean_a
        mean_gxhat = c_gy * m - scale * m * mean_axhat
        c_xhat = -invstd * (mean_gxhat + weight * d_weight / count)
        d_x = torch.addcmul((-invstd * mean_g).view(_CHANNEL), (invstd * c_gy).view(_CHANNEL), gy)
        d_x.addcmul_(c_xhat.view(_CHANNEL), xhat)
        if a is not None:
            d_gy.addcmul_(scale.view(_CHANNEL), a)
            d_x.addcmul_((-invstd * scale * m).view(_CHANNEL), a)
        return d_gy, d_x, d_weight, None, None
