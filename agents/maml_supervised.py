"""Few-shot MAML (Finn et al., 2017, arXiv:1703.03400, Algorithm 2) and its variants, with an Adam outer step.

One meta-iteration on ``N`` tasks, each with a support set and a query set:

1. adapt: ``theta_n' = theta - alpha * grad L(theta; support_n)``, ``inner.steps`` times, with the shared
   inner loop :func:`metarl.core.functional.inner_adapt`;
2. meta-loss: the mean over tasks of ``L(theta_n'; query_n)``;
3. Adam step on ``theta`` with the gradient of that loss, taken through the inner steps.

Variants, set in :class:`~metarl.config.InnerConfig`:

* MAML: ``first_order: false`` (the exact, second-order meta-gradient);
* first-order MAML: ``first_order: true`` (inner gradients detached);
* Meta-SGD (arXiv:1707.09835): ``learn_step_size: true``, one learned step size per parameter entry,
  initialised to ``inner.step_size`` and meta-trained with ``theta``;
* ANIL (arXiv:1909.09157): ``adapt: head``, only the last linear layer adapts; the body still receives the
  meta-gradient.

The per-task maths is :func:`task_losses`. It runs on one task (the per-task loop, the tested reference),
under ``torch.func.vmap`` over tasks, or on all tasks at once with task-batched parameters
(:func:`agents.fewshot_models.batched_forward`, grouped convolutions): ``meta.batching`` picks. In
grouped mode, ``meta.second_order_batch_norm`` picks how batch norm's backward is differentiated for the
second-order meta-gradient (:mod:`agents.batch_norm`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import cast, get_args

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from metarl.config import Batching, InnerConfig, MetaConfig
from metarl.core.errors import ConfigError
from metarl.core.functional import Params, StepSize, expand_params, inner_adapt, inner_step
from metarl.training.fewshot import TaskBatch

from .fewshot_models import FewShotConvNet, batched_forward

#: ``(inputs [S, *x], targets [S, ...])`` of one task, or with a leading task axis in batched mode
Data = tuple[Tensor, Tensor]
Forward = Callable[[Params, Tensor], Tensor]
BATCHING: tuple[str, ...] = get_args(Batching)


def per_task_loss(kind: str, outputs: Tensor, targets: Tensor) -> Tensor:
    """Mean loss over the examples of each task: ``outputs [..., S, out]`` -> ``[...]`` (``[]`` for one task).

    ``kind`` is ``regression`` (mean squared error) or ``classification`` (cross-entropy).
    """
    if kind == "regression":
        return (outputs - targets).pow(2).mean(dim=(-2, -1))
    logits = (
        outputs if outputs.dim() == 2 else outputs.transpose(-1, -2)
    )  # cross_entropy wants classes on dim 1
    return F.cross_entropy(logits, targets, reduction="none").mean(dim=-1)


def per_task_metric(kind: str, outputs: Tensor, targets: Tensor) -> Tensor:
    """What evaluation reports: the mean squared error (regression) or accuracy (classification) per task."""
    if kind == "regression":
        return per_task_loss(kind, outputs, targets)
    return (outputs.argmax(dim=-1) == targets).to(outputs.dtype).mean(dim=-1)


def task_losses(
    params: Params,
    step_size: StepSize,
    support: Data,
    query: Data,
    *,
    forward: Forward,
    kind: str,
    steps: int,
    first_order: bool,
    adapted: tuple[str, ...],
) -> tuple[Tensor, Tensor]:
    """Query loss after ``steps`` inner steps on the support set, and the query loss before adapting.

    Works on one task (``params`` as in the model, data ``[S, *x]``, losses ``[]``) or, with a task-batched
    ``forward``, on ``N`` tasks at once (``params [N, ...]``, data ``[N, S, *x]``, losses ``[N]``): the inner
    loss is then the sum of the per-task losses, whose gradient is every task's own gradient.

    Args:
        params: the meta-parameters (``theta``).
        step_size: ``alpha``, a float or per-parameter tensors (Meta-SGD).
        support: the inner data.
        query: the outer data.
        forward: ``(params, inputs) -> outputs``.
        kind: ``regression`` or ``classification``.
        steps: inner steps.
        first_order: detach the inner gradients.
        adapted: names of the parameters the inner loop changes (all, or the head for ANIL).

    Returns:
        ``(query loss after adapting, query loss before)``, the second without a graph.
    """
    fixed = {k: v for k, v in params.items() if k not in adapted}
    rates = {k: step_size[k] for k in adapted} if isinstance(step_size, dict) else step_size

    def inner_loss(fast: Params, data: Data) -> Tensor:
        return per_task_loss(kind, forward({**fixed, **fast}, data[0]), data[1]).sum()

    fast = inner_adapt(
        inner_loss, {k: params[k] for k in adapted}, [support] * steps, [rates] * steps, first_order
    )
    after = per_task_loss(kind, forward({**fixed, **fast}, query[0]), query[1])
    with torch.no_grad():  # a logged number only: no graph
        before = per_task_loss(kind, forward(params, query[0]), query[1])
    return after, before


class MetaModel(nn.Module):
    """What a few-shot run trains and checkpoints: the network, and Meta-SGD's step sizes if learned.

    Args:
        net: the network.
        step_size: initial value of every learned step size.
        learn_step_size: hold a learned step size per parameter entry (Meta-SGD).
    """

    def __init__(self, net: nn.Module, step_size: float, learn_step_size: bool) -> None:
        """See the class docstring."""
        super().__init__()
        self.net = net
        self.step_sizes = nn.ParameterDict(
            {
                k.replace(".", "__"): nn.Parameter(torch.full_like(p, step_size))
                for k, p in net.named_parameters()
            }
            if learn_step_size
            else {}
        )

    def learned_step_sizes(self) -> Params | None:
        """Meta-SGD's step sizes keyed like the network's parameters, or None."""
        if not len(self.step_sizes):
            return None
        return {k.replace("__", "."): v for k, v in self.step_sizes.items()}


class SupervisedMAML:
    """Few-shot meta-learner: MAML, first-order MAML, Meta-SGD or ANIL (see the module docstring).

    Args:
        net: the network (:class:`~agents.fewshot_models.FewShotMLP` or ``FewShotConvNet``).
        kind: ``regression`` or ``classification``.
        inner: inner-loop settings (steps, step size, first order, learned step sizes, what adapts).
        meta: outer-loop settings (Adam learning rate, batching).
    """

    def __init__(self, net: nn.Module, kind: str, inner: InnerConfig, meta: MetaConfig) -> None:
        """See the class docstring."""
        self.net = net
        self.kind = kind
        self.inner = inner
        self.model = MetaModel(net, inner.step_size, inner.learn_step_size)
        names = [k for k, _ in net.named_parameters()]
        self.adapted = tuple(k for k in names if inner.adapt == "all" or k.startswith("head."))
        self.batching = meta.batching
        if self.batching == "auto":  # fastest on CPU for both nets: experiments/benchmark_fewshot.py
            self.batching = "grouped"
        if self.batching == "vmap" and isinstance(net, FewShotConvNet) and not inner.first_order:
            # torch 2.13: vmap's second derivative through batch norm disagrees with the loop, grouped
            # convolutions and finite differences (by ~0.1%); tests/agents/test_maml_supervised.py checks it
            raise ConfigError(
                "meta.batching: vmap gives wrong second-order gradients through the conv net's batch norm; "
                "use grouped (the default) or loop, or set inner.first_order=true"
            )
        # same values either way; the closed form only makes the second derivative cheaper
        choice = meta.second_order_batch_norm
        self.closed_form_batch_norm = choice == "closed_form" or (choice == "auto" and not inner.first_order)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=meta.learning_rate)

    def _step_size(self) -> StepSize:
        learned = self.model.learned_step_sizes()
        return self.inner.step_size if learned is None else learned

    def _functional(self, params: Params, x: Tensor) -> Tensor:
        return functional_call(self.net, params, (x,))

    def _batched_forward(self, params: Params, x: Tensor) -> Tensor:
        return batched_forward(self.net, params, x, closed_form_batch_norm=self.closed_form_batch_norm)

    def meta_losses(self, batch: TaskBatch, steps: int | None = None) -> tuple[Tensor, Tensor]:
        """Per-task query losses ``[N]`` after and before adapting, with the current batching mode."""
        params: Params = dict(self.net.named_parameters())
        per_task = functools.partial(
            task_losses,
            kind=self.kind,
            steps=self.inner.steps if steps is None else steps,
            first_order=self.inner.first_order,
            adapted=self.adapted,
        )
        step_size = self._step_size()
        support, query = batch.support, batch.query
        if self.batching == "grouped":
            tasks = support[0].shape[0]
            forward = self._batched_forward
            return per_task(expand_params(params, tasks), step_size, support, query, forward=forward)
        one_task = functools.partial(per_task, forward=self._functional)
        if self.batching == "vmap":
            mapped = torch.func.vmap(one_task, in_dims=(None, None, 0, 0), randomness="error")
            return mapped(params, step_size, support, query)
        outs = [one_task(params, step_size, _index(support, n), _index(query, n)) for n in range(len(batch))]
        return torch.stack([o[0] for o in outs]), torch.stack([o[1] for o in outs])

    def step(self, batch: TaskBatch) -> dict[str, float]:
        """One meta-update (Adam) on a meta-batch; returns flat float metrics."""
        after, before = self.meta_losses(batch)
        loss = after.mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        squares = sum(p.grad.pow(2).sum() for p in self.model.parameters() if p.grad is not None)
        grad_norm = torch.sqrt(cast(Tensor, squares))  # a tensor once one parameter has a gradient
        self.optimizer.step()
        metrics = {
            "meta/loss_before": before.mean().item(),
            "meta/loss_after": loss.item(),
            "meta/grad_norm": grad_norm.item(),
        }
        learned = self.model.learned_step_sizes()
        if learned is not None:
            metrics["inner/step_size_mean"] = (
                torch.cat([v.reshape(-1) for v in learned.values()]).mean().item()
            )
        return metrics

    def adaptation_metrics(self, batch: TaskBatch, step_sizes: Sequence[float]) -> Tensor:
        """Query metric of every task after ``0..k`` inner steps (first-order, no meta-gradient).

        Meta-SGD uses its learned step sizes for every step instead of ``step_sizes``.

        Returns:
            ``[N, len(step_sizes) + 1]``: mean squared error or accuracy on each task's query set.
        """
        params = {k: v.detach() for k, v in self.net.named_parameters()}
        learned = self.model.learned_step_sizes()
        rates = [{k: v.detach() for k, v in learned.items()} if learned else a for a in step_sizes]
        curve = functools.partial(task_curve, rates=rates, kind=self.kind, adapted=self.adapted)
        if self.batching == "grouped":
            forward = self._batched_forward
            return curve(expand_params(params, len(batch)), batch.support, batch.query, forward=forward)
        one_task = functools.partial(curve, forward=self._functional)
        if self.batching == "vmap":
            return torch.func.vmap(one_task, in_dims=(None, 0, 0), randomness="error")(
                params, batch.support, batch.query
            )
        return torch.stack(
            [one_task(params, _index(batch.support, n), _index(batch.query, n)) for n in range(len(batch))]
        )


def task_curve(
    params: Params,
    support: Data,
    query: Data,
    *,
    rates: Sequence[StepSize],
    forward: Forward,
    kind: str,
    adapted: tuple[str, ...],
) -> Tensor:
    """Query metric before and after each first-order inner step: ``[len(rates) + 1]`` (batched ``[N, ..]``).

    Same arguments as :func:`task_losses`, with ``rates`` one step size per step.
    """
    fixed = {k: v for k, v in params.items() if k not in adapted}
    fast = {k: params[k] for k in adapted}

    def inner_loss(fast_params: Params, data: Data) -> Tensor:
        return per_task_loss(kind, forward({**fixed, **fast_params}, data[0]), data[1]).sum()

    columns = [per_task_metric(kind, forward(params, query[0]), query[1])]
    for rate in rates:
        step_rate = {k: rate[k] for k in adapted} if isinstance(rate, dict) else rate
        fast = {k: v.detach() for k, v in inner_step(inner_loss, fast, support, step_rate, True).items()}
        columns.append(per_task_metric(kind, forward({**fixed, **fast}, query[0]), query[1]))
    return torch.stack(columns, dim=-1).detach()


def _index(data: Data, n: int) -> Data:
    return data[0][n], data[1][n]
