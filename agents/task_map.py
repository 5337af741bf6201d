"""One task's functions over the meta-batch's task axis: ``torch.func.vmap``, or a loop (``trpo.vectorize``).

:mod:`agents.maml_trpo` writes its maths for one task; these map it over ``N`` tasks and average.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor


def map_tasks(fn: Callable, in_dims: tuple[int | None, ...], vectorize: bool) -> Callable:
    """``fn`` over the task axis: ``torch.func.vmap`` or, as the reference, a Python loop and a stack.

    ``in_dims`` marks each positional argument as per-task (``0``) or shared (``None``); outputs are tensors
    or tuples of tensors, stacked along a new leading task axis.
    """
    if vectorize:
        return torch.func.vmap(fn, in_dims=in_dims, randomness="error")

    def looped(*args: Any) -> Any:
        num_tasks = next(_first_tensor(a).shape[0] for a, d in zip(args, in_dims, strict=True) if d == 0)
        outs = [
            fn(*(a if d is None else tree_index(a, i) for a, d in zip(args, in_dims, strict=True)))
            for i in range(num_tasks)
        ]
        if isinstance(outs[0], tuple):
            return tuple(torch.stack(parts) for parts in zip(*outs, strict=True))
        return torch.stack(outs)

    return looped


def tree_index(tree: Any, i: int) -> Any:
    """Index every tensor of a nested tuple at ``i`` along its first axis."""
    if isinstance(tree, tuple):
        return tuple(tree_index(t, i) for t in tree)
    return tree[i]


def _first_tensor(tree: Any) -> Tensor:
    return _first_tensor(tree[0]) if isinstance(tree, tuple) else tree


def vjp(fn: Callable, primal: Tensor) -> tuple[Any, Callable]:
    """``torch.func.vjp`` without auxiliary outputs: ``(fn(primal), cotangent -> (grad,))``."""
    out = torch.func.vjp(fn, primal)
    return out[0], out[1]


def to_device(data: tuple[Tensor, ...], device: torch.device) -> tuple[Tensor, ...]:
    """Every tensor of ``data`` on ``device``."""
    return tuple(t.to(device) for t in data)


def task_maps(
    adapt: Callable[[Tensor, tuple], Tensor],
    outputs: Callable[[Tensor, Tensor], tuple[Tensor, Tensor]],
    supports: tuple,
    query_obs: Tensor,
    vectorize: bool,
) -> tuple[Callable[[Tensor], Tensor], Callable[[Tensor], tuple[Tensor, Tensor]]]:
    """``(adapt_all, outputs_all)``: ``theta [P] -> adapted [N, P]`` and ``adapted -> outputs [N, ...]``.

    ``adapt(theta, one task's supports)`` and ``outputs(params, one task's query observations)`` are
    per-task; ``query_obs`` is ``[N, T, E, D]``. With no support sets (``inner.steps: 0``, the pretrained
    baseline) ``adapt_all`` is the identity per task.
    """
    outputs_all = map_tasks(outputs, (0, 0), vectorize)
    num_tasks = query_obs.shape[0]
    if not supports:
        return (lambda theta: theta.expand(num_tasks, -1)), (lambda adapted: outputs_all(adapted, query_obs))
    adapt_all = map_tasks(adapt, (None, 0), vectorize)
    return (lambda theta: adapt_all(theta, supports)), (lambda adapted: outputs_all(adapted, query_obs))


def mean_objective(
    per_task: Callable[..., tuple[Tensor, Tensor]], supports: tuple, query: tuple, old: tuple, vectorize: bool
) -> Callable[[Tensor], tuple[Tensor, Tensor]]:
    """``theta -> (mean loss, mean KL)`` over the tasks of ``per_task(theta, supports, query, *old)``.

    ``old`` holds the old adapted policies' outputs (``(mean [N, T, E, A], log_std [N, A])``).
    """
    mapped = map_tasks(per_task, (None, 0, 0, 0, 0), vectorize)

    def objective(theta: Tensor) -> tuple[Tensor, Tensor]:
        loss, kl = mapped(theta, supports, query, *old)
        return loss.mean(), kl.mean()

    return objective


def mean_loss_and_gradient(
    surrogate: Callable[..., tuple[Tensor, Tensor]], query: tuple, old: tuple, vjp_adapt: Callable,
    vjp_outputs: Callable,
) -> tuple[Tensor, Tensor]:  # fmt: skip
    """The mean over tasks of ``surrogate(mean, log_std, query, *old)[0]`` at ``old``, and its gradient.

    The gradient ``[P]`` in the outputs, then through the reverse products of the outputs (``vjp_outputs``)
    and of the adaptation (``vjp_adapt``); both are returned detached.
    """
    mapped = torch.func.vmap(surrogate, randomness="error")

    def mean_loss(m: Tensor, s: Tensor) -> Tensor:
        return mapped(m, s, query, *old)[0].mean()

    out_grads = torch.func.grad(mean_loss, argnums=(0, 1))(*old)
    grad = vjp_adapt(vjp_outputs(out_grads)[0])[0]
    return mean_loss(*old).detach(), grad.detach()
