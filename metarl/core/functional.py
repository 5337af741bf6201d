"""Parameter-dict helpers and the one inner loop (``torch.func``) shared by RL, evaluation and few-shot.

Parameters travel as ``dict[str, Tensor]`` built from ``named_parameters()``; a model is evaluated on them
with :func:`torch.func.functional_call`. The inner update is

    ``params' = params - alpha * grad(loss)(params, support)``

with the gradient kept in the graph (second order, exact MAML) or detached (first-order MAML).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

Params = dict[str, Tensor]
InnerLoss = Callable[[Params, Any], Tensor]
#: an inner learning rate: one number for every parameter, or one tensor per parameter (Meta-SGD,
#: arXiv:1707.09835), each broadcastable against that parameter
StepSize = float | Params


def parameters_of(module: nn.Module) -> Params:
    """The module's parameters as a dict (the tensors themselves, so gradients reach the module)."""
    return dict(module.named_parameters())


def flatten_params(params: Params) -> Tensor:
    """Concatenate every parameter into one vector ``[P]`` (dict order)."""
    return torch.cat([p.reshape(-1) for p in params.values()])


def unflatten_params(vector: Tensor, like: Params) -> Params:
    """Split a vector ``[P]`` back into tensors shaped like ``like`` (differentiable)."""
    needed = sum(p.numel() for p in like.values())
    if needed != vector.numel():
        raise ValueError(f"vector has {vector.numel()} entries, the parameters need {needed}")
    out, offset = {}, 0
    for name, p in like.items():
        out[name] = vector[offset : offset + p.numel()].view_as(p)
        offset += p.numel()
    return out


def expand_params(params: Params, n: int) -> Params:
    """Give every parameter a leading task axis of size ``n`` (a view, no copy): ``[*s] -> [n, *s]``."""
    return {k: v.expand(n, *v.shape) for k, v in params.items()}


def inner_step(
    loss_fn: InnerLoss, params: Params, support: Any, step_size: StepSize, first_order: bool
) -> Params:
    """One gradient step on ``loss_fn(params, support)``.

    Args:
        loss_fn: scalar loss of the parameters on the support data.
        params: current parameters.
        support: whatever ``loss_fn`` takes as data (tensors, tuples of tensors).
        step_size: the inner learning rate ``alpha``: a float, or a dict with a tensor for every key of
            ``params`` (learned per-parameter rates, Meta-SGD); those stay in the graph, so the outer loss
            differentiates them, also in first-order mode.
        first_order: if True the gradient is detached, so the outer gradient skips second-order terms.

    Returns:
        The adapted parameters.
    """
    grads = torch.func.grad(loss_fn)(params, support)
    if first_order:
        grads = {k: g.detach() for k, g in grads.items()}
    if isinstance(step_size, dict):
        return {k: p - step_size[k] * grads[k] for k, p in params.items()}
    return {k: p - step_size * grads[k] for k, p in params.items()}


def inner_adapt(
    loss_fn: InnerLoss,
    params: Params,
    supports: Sequence[Any],
    step_sizes: Sequence[StepSize],
    first_order: bool,
) -> Params:
    """Take one :func:`inner_step` per support set, in order (``len(step_sizes) == len(supports)``).

    Each step size is a float or a per-parameter dict (see :func:`inner_step`).
    """
    if len(step_sizes) != len(supports):
        raise ValueError(f"got {len(supports)} support sets but {len(step_sizes)} step sizes")
    for support, step_size in zip(supports, step_sizes, strict=True):
        params = inner_step(loss_fn, params, support, step_size, first_order)
    return params
