"""The MAML paper's few-shot networks (arXiv:1703.03400, section 5.1-5.2), and their task-batched forwards.

Parameters are split into a ``body`` and a ``head`` (the last linear layer), so ANIL can adapt the head
alone. Batch norm always normalises with the statistics of the batch at hand, as MAML does, and keeps no
running statistics (no buffers), so the inner loop can run on parameter dicts alone.

Each network has two forwards with the same parameter names:

* ``module(x)`` (or ``functional_call(module, params, (x,))``): one task, ``x [B, *input]``;
* :func:`batched_forward`: ``N`` tasks at once, every parameter with a leading task axis ``[N, ...]`` and
  ``x [N, B, *input]``. Convolutions fold the tasks into channels and run as one grouped convolution
  (``groups=N``), and linear layers as one batched matrix product, which is much faster on CPU than
  ``torch.func.vmap`` over per-task convolutions.

The task-batched conv net can normalise with :func:`agents.batch_norm.batch_norm` (same values, cheaper
second derivative) instead of ``F.batch_norm``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .batch_norm import batch_norm

Params = dict[str, Tensor]


class FewShotMLP(nn.Module):
    """ReLU MLP ``[B, in] -> [B, out]`` (paper's sinusoid regressor: 1-40-40-1).

    Args:
        in_features: input size.
        out_features: output size.
        hidden_sizes: widths of the hidden layers.
    """

    def __init__(self, in_features: int, out_features: int, hidden_sizes: Sequence[int] = (40, 40)) -> None:
        """See the class docstring."""
        super().__init__()
        sizes = [in_features, *hidden_sizes]
        self.body = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:], strict=True))
        self.head = nn.Linear(sizes[-1], out_features)

    def forward(self, x: Tensor) -> Tensor:
        """``x [B, in] -> [B, out]``."""
        for layer in self.body:
            x = F.relu(layer(x))
        return self.head(x)


class FewShotConvNet(nn.Module):
    """Four blocks of 3x3 conv, batch norm (batch statistics), ReLU, then a linear head.

    Omniglot (``max_pool=False``): 64 filters, stride-2 convolutions, features averaged over space.
    MiniImagenet (``max_pool=True``): 32 filters, 2x2 max-pooling after each block, features flattened.

    Args:
        input_shape: ``(C, H, W)`` of one image.
        num_classes: outputs (ways).
        filters: channels of every block (paper: 64 Omniglot, 32 MiniImagenet).
        max_pool: downsample by max-pooling instead of strided convolutions.
    """

    def __init__(
        self, input_shape: Sequence[int], num_classes: int, filters: int = 64, max_pool: bool = False
    ) -> None:
        """See the class docstring."""
        super().__init__()
        channels, height, _ = input_shape
        self.max_pool = max_pool
        self.convs = nn.ModuleList(nn.Conv2d(channels if i == 0 else filters, filters, 3) for i in range(4))
        # affine batch norm with no running statistics: nothing but its two parameter tensors
        self.norms = nn.ModuleList(nn.BatchNorm2d(filters, track_running_stats=False) for _ in range(4))
        size = height
        for _ in range(4):
            size = size // 2 if max_pool else (size + 1) // 2
        self.head = nn.Linear(filters * size * size if max_pool else filters, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        """``x [B, C, H, W] -> logits [B, classes]``."""
        convs, norms = cast("Iterable[nn.Conv2d]", self.convs), cast("Iterable[nn.BatchNorm2d]", self.norms)
        for conv, norm in zip(convs, norms, strict=True):
            x = F.conv2d(x, conv.weight, conv.bias, stride=1 if self.max_pool else 2, padding=1)
            x = F.relu(F.batch_norm(x, None, None, norm.weight, norm.bias, training=True))
            if self.max_pool:
                x = F.max_pool2d(x, 2)
        x = x.flatten(1) if self.max_pool else x.mean(dim=(2, 3))
        return self.head(x)


def _batched_linear(params: Params, name: str, x: Tensor) -> Tensor:
    """``x [N, B, in]`` through per-task linear layers ``weight [N, out, in]``, ``bias [N, out]``."""
    return torch.baddbmm(params[f"{name}.bias"].unsqueeze(1), x, params[f"{name}.weight"].transpose(1, 2))


def _batched_mlp(model: FewShotMLP, params: Params, x: Tensor) -> Tensor:
    for i in range(len(model.body)):
        x = F.relu(_batched_linear(params, f"body.{i}", x))
    return _batched_linear(params, "head", x)


def _batched_conv_net(model: FewShotConvNet, params: Params, x: Tensor, closed_form: bool) -> Tensor:
    tasks, batch = x.shape[:2]
    h = x.transpose(0, 1).reshape(batch, -1, *x.shape[3:])  # [B, N * C, H, W]: task n owns channels n*C..
    for i in range(len(model.convs)):
        weight = params[f"convs.{i}.weight"]
        h = F.conv2d(
            h,
            weight.reshape(-1, *weight.shape[2:]),
            params[f"convs.{i}.bias"].reshape(-1),
            stride=1 if model.max_pool else 2,
            padding=1,
            groups=tasks,
        )
        # per channel over (B, H, W): exactly each task's own batch statistics
        norm_w, norm_b = params[f"norms.{i}.weight"].reshape(-1), params[f"norms.{i}.bias"].reshape(-1)
        if closed_form:
            h = F.relu(batch_norm(h, norm_w, norm_b))
        else:
            h = F.relu(F.batch_norm(h, None, None, norm_w, norm_b, training=True))
        if model.max_pool:
            h = F.max_pool2d(h, 2)
    h = h.reshape(batch, tasks, -1, *h.shape[2:]).transpose(0, 1)  # [N, B, filters, h, w]
    features = h.flatten(2) if model.max_pool else h.mean(dim=(3, 4))
    return _batched_linear(params, "head", features)


def batched_forward(
    model: nn.Module, params: Params, x: Tensor, *, closed_form_batch_norm: bool = False
) -> Tensor:
    """Outputs of ``N`` tasks at once: ``params [N, ...]``, ``x [N, B, *input] -> [N, B, out]``.

    Equals stacking ``functional_call(model, params[n], (x[n],))`` over tasks (tested).

    Args:
        model: the network whose parameter names ``params`` uses.
        params: every parameter with a leading task axis.
        x: the inputs of every task.
        closed_form_batch_norm: conv nets: differentiate batch norm's backward with the closed form of
            :mod:`agents.batch_norm` (same values, cheaper second-order meta-gradients) instead of PyTorch's
            formula.
    """
    if isinstance(model, FewShotMLP):
        return _batched_mlp(model, params, x)
    if isinstance(model, FewShotConvNet):
        return _batched_conv_net(model, params, x, closed_form_batch_norm)
    raise TypeError(f"batched_forward: no task-batched forward for {type(model).__name__}")
