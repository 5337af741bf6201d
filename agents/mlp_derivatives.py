"""The Gaussian MLP policy's derivatives written out, by Pearlmutter's R-operator (Neural Comput. 6(1), 1994).

Forward and backward passes of :class:`agents.policies.GaussianMLPPolicy`'s layers, their forward-mode
tangents, the inner policy-gradient loss's gradient and Hessian-vector products, and the adapted policy's
Fisher products, with every layer input, activation slope and back-propagated signal of the primal passes
kept for reuse. :mod:`agents.mlp_curvature` assembles them into the TRPO meta-update.

Notation (one chunk of ``C`` tasks, ``n = T * E`` steps each, layers ``l = 0 .. L-1``): ``x_l [C, n, in_l]``
is layer ``l``'s input (``x_0`` the observations), ``z_l = x_l W_l^T + b_l``, ``x_{l+1} = act(z_l)``, the
mean is ``z_{L-1}``; ``R(.)`` is the directional derivative along a tangent ``v`` of the parameters.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .policies import ACTIVATIONS, GaussianMLPPolicy


@dataclass(frozen=True)
class MLPLayout:
    """Where each layer's weight and bias and the log-std sit in the flat parameter vector ``[P]``.

    Attributes:
        shapes: ``(out, in)`` per layer, first to last (the mean head last).
        activation: the hidden layers' activation, a key of :data:`agents.policies.ACTIVATIONS`.
    """

    shapes: tuple[tuple[int, int], ...]
    activation: str

    @property
    def act_dim(self) -> int:
        """Action size ``A``."""
        return self.shapes[-1][0]


def mlp_layout(policy: nn.Module) -> MLPLayout | None:
    """The layout of a :class:`GaussianMLPPolicy` in ``named_parameters()`` order, or None for other policies.

    The order is ``log_std, body.0.weight, body.0.bias, ..., mean.weight, mean.bias`` (the log-std, then
    weight and bias per layer), which :func:`split_params` and :func:`join_params` rely on.
    """
    if not isinstance(policy, GaussianMLPPolicy):
        return None
    linears = [m for m in policy.body if isinstance(m, nn.Linear)] + [policy.mean]
    names = {cls: name for name, cls in ACTIVATIONS.items()}
    acts = {names.get(type(m)) for m in policy.body if not isinstance(m, nn.Linear)}
    activation = acts.pop() if len(acts) == 1 else None
    if activation is None:
        return None
    expected = [f"{layer}.{kind}" for layer in _layer_names(policy) for kind in ("weight", "bias")]
    if [k for k, _ in policy.named_parameters()] != ["log_std", *expected]:
        return None
    return MLPLayout(tuple((m.out_features, m.in_features) for m in linears), activation)


def _layer_names(policy: GaussianMLPPolicy) -> list[str]:
    body = [f"body.{i}" for i, m in enumerate(policy.body) if isinstance(m, nn.Linear)]
    return [*body, "mean"]


#: per-layer weights ``[..., out, in]``, biases ``[..., out]`` and the log-std ``[..., A]``
Layers = tuple[tuple[Tensor, ...], tuple[Tensor, ...], Tensor]


def split_params(flat: Tensor, layout: MLPLayout) -> Layers:
    """``[..., P] -> (weights, biases, log_std)``, views with the same leading axes."""
    lead, offset, weights, biases = flat.shape[:-1], layout.act_dim, [], []
    for out_dim, in_dim in layout.shapes:
        weights.append(flat[..., offset : offset + out_dim * in_dim].reshape(*lead, out_dim, in_dim))
        offset += out_dim * in_dim
        biases.append(flat[..., offset : offset + out_dim])
        offset += out_dim
    return tuple(weights), tuple(biases), flat[..., : layout.act_dim]


def join_params(layers: Layers) -> Tensor:
    """The inverse of :func:`split_params`: ``(weights, biases, log_std) -> [..., P]``."""
    weights, biases, log_std = layers
    lead = log_std.shape[:-1]
    parts = [t for w, b in zip(weights, biases, strict=True) for t in (w.reshape(*lead, -1), b)]
    return torch.cat([log_std, *parts], dim=-1)


@dataclass(frozen=True)
class Forward:
    """What the primal forward pass leaves for the derivative passes.

    Attributes:
        inputs: ``x_l [C, n, in_l]`` for every layer.
        slopes: ``act'(z_l) [C, n, out_l]`` for every hidden layer.
        bends: ``act''(z_l)`` for every hidden layer, or None where it is zero (ReLU).
        mean: the output ``[C, n, A]``.
    """

    inputs: tuple[Tensor, ...]
    slopes: tuple[Tensor, ...]
    bends: tuple[Tensor | None, ...]
    mean: Tensor


def _linear(x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """``x W^T + b`` for ``x [C, n, in]``, ``W [out, in]`` (shared) or ``[C, out, in]``, ``b`` alike.

    One BLAS call with the bias as its addend (no separate pass over ``[C, n, out]``).
    """
    if weight.dim() == 2:
        flat = torch.addmm(bias, x.reshape(-1, x.shape[-1]), weight.T)
        return flat.view(*x.shape[:-1], weight.shape[0])
    return torch.baddbmm(bias.unsqueeze(-2), x, weight.transpose(-1, -2))


def _add_matmul_(out: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """``out += a @ b`` in place, ``a [C, n, k]``, ``b [k, m]`` (shared) or ``[C, k, m]``; returns ``out``.

    BLAS accumulates into ``out`` (beta = 1), so the sum costs no pass of its own and no new tensor.
    """
    if b.dim() == 2:
        out.view(-1, out.shape[-1]).addmm_(a.reshape(-1, a.shape[-1]), b)
        return out
    return out.baddbmm_(a, b)


def activation_slopes(z: Tensor, activation: str) -> tuple[Tensor, Tensor, Tensor | None]:
    """``(act(z), act'(z), act''(z) or None if zero)``, the derivatives ``torch`` uses (ReLU's 0 at 0)."""
    if activation == "relu":
        slope = (z > 0).to(z.dtype)
        return z * slope, slope, None
    if activation == "tanh":
        h = torch.tanh(z)
        slope = 1 - h * h
        return h, slope, -2 * h * slope
    if activation == "elu":
        positive = z > 0
        h = torch.where(positive, z, torch.expm1(z))
        slope = torch.where(positive, torch.ones_like(z), h + 1)
        return h, slope, torch.where(positive, torch.zeros_like(z), h + 1)
    raise ValueError(f"policy.activation: {activation!r} is not one of {sorted(ACTIVATIONS)}")


def mlp_forward(
    weights: tuple[Tensor, ...], biases: tuple[Tensor, ...], x: Tensor, activation: str
) -> Forward:
    """The primal pass over ``x [C, n, D]``, keeping what :func:`mlp_jvp` and :func:`mlp_vjp` need."""
    inputs, slopes, bends = [x], [], []
    for weight, bias in zip(weights[:-1], biases[:-1], strict=True):
        h, slope, bend = activation_slopes(_linear(inputs[-1], weight, bias), activation)
        inputs.append(h)
        slopes.append(slope)
        bends.append(bend)
    return Forward(tuple(inputs), tuple(slopes), tuple(bends), _linear(inputs[-1], weights[-1], biases[-1]))


def mlp_jvp(
    fwd: Forward, weights: tuple[Tensor, ...], d_weights: tuple[Tensor, ...], d_biases: tuple[Tensor, ...]
) -> tuple[Tensor, tuple[Tensor | None, ...], tuple[Tensor | None, ...]]:
    """Forward-mode tangent of the mean along a parameter tangent (the R-operator's forward pass).

    Returns:
        ``(R mean [C, n, A], R z_l of the hidden layers, R x_l of every layer's input)``; ``R x_0`` is None
        (the observations do not depend on the parameters), and so is ``R z_l`` where ``act''`` is zero
        (ReLU: no product needs it, and its memory becomes ``R x_{l+1}``).
    """
    d_inputs: list[Tensor | None] = [None]
    d_pre: list[Tensor | None] = []
    for layer, (weight, d_weight, d_bias) in enumerate(zip(weights, d_weights, d_biases, strict=True)):
        d_z = _linear(fwd.inputs[layer], d_weight, d_bias)
        if d_inputs[-1] is not None:
            d_z = _add_matmul_(d_z, d_inputs[-1], weight.transpose(-1, -2))
        if layer == len(weights) - 1:
            return d_z, tuple(d_pre), tuple(d_inputs)
        if fwd.bends[layer] is None:
            d_pre.append(None)
            d_inputs.append(d_z.mul_(fwd.slopes[layer]))
        else:
            d_pre.append(d_z)
            d_inputs.append(fwd.slopes[layer] * d_z)
    raise ValueError("an MLP needs at least one layer")


def mlp_vjp(
    fwd: Forward, weights: tuple[Tensor, ...], d_mean: Tensor
) -> tuple[tuple[Tensor, ...], tuple[Tensor, ...], tuple[Tensor, ...], tuple[Tensor, ...]]:
    """Back-propagate ``d_mean [C, n, A]`` (a loss's gradient in the means) to the parameters.

    Returns:
        ``(grad weights [C, out, in], grad biases [C, out], deltas, backs)``: per layer the signal
        ``delta_l`` in ``z_l``, and per hidden layer ``back_l = delta_{l+1} W_{l+1}`` (the signal in
        ``x_{l+1}`` before the activation's slope), which the Hessian-vector product reuses.
    """
    delta, grad_w, grad_b, deltas, backs = d_mean, [], [], [], []
    for layer in range(len(weights) - 1, -1, -1):
        deltas.append(delta)
        grad_w.append(torch.matmul(delta.transpose(-1, -2), fwd.inputs[layer]))
        grad_b.append(delta.sum(-2))
        if layer > 0:
            back = torch.matmul(delta, weights[layer])
            backs.append(back)
            delta = back * fwd.slopes[layer - 1]
    return tuple(grad_w[::-1]), tuple(grad_b[::-1]), tuple(deltas[::-1]), tuple(backs[::-1])


@dataclass(frozen=True)
class PolicyGradientCurvature:
    """One chunk's inner loss ``L = -sum_t c_t log pi(a_t|s_t)`` at ``theta``, ready for Hessian products.

    Attributes:
        weights: ``theta``'s layer weights (shared by the chunk's tasks: ``[out, in]``).
        fwd: the primal forward pass on the support observations.
        deltas: :func:`mlp_vjp`'s per-layer signals of the loss's gradient.
        bent_backs: ``back_l * act''(z_l)`` per hidden layer, None where ``act''`` is zero.
        residual: ``a - mean`` ``[C, n, A]``.
        coef: ``c_t = mask_t A_t / (real steps)`` ``[C, n]``.
        inv_var: ``exp(-2 log_std)`` ``[A]``.
        activation: the hidden activation.
    """

    weights: tuple[Tensor, ...]
    fwd: Forward
    deltas: tuple[Tensor, ...]
    bent_backs: tuple[Tensor | None, ...]
    residual: Tensor
    coef: Tensor
    inv_var: Tensor


def gaussian_pg_signal(mean: Tensor, log_std: Tensor, actions: Tensor, coef: Tensor) -> tuple[Tensor, Tensor]:
    """Gradient of ``-sum_t coef_t log N(a_t; mean_t, exp(log_std)^2)`` in ``(mean [C, n, A], log_std)``.

    ``log_std`` is ``[A]`` or ``[C, A]``; returns ``(d_mean [C, n, A], d_log_std [C, A])``.
    """
    inv_var = torch.exp(-2 * log_std).unsqueeze(-2)
    residual = actions - mean
    d_mean = -coef.unsqueeze(-1) * residual * inv_var
    d_log_std = (coef.unsqueeze(-1) * (1 - residual * residual * inv_var)).sum(-2)
    return d_mean, d_log_std


def inner_gradient(
    layers: Layers, observations: Tensor, actions: Tensor, coef: Tensor, activation: str
) -> tuple[Tensor, PolicyGradientCurvature]:
    """The inner loss's gradient ``[C, P]`` at shared ``layers`` and what its Hessian products reuse.

    Args:
        layers: ``theta`` split by :func:`split_params` (no task axis).
        observations: ``[C, n, D]``.
        actions: ``[C, n, A]``.
        coef: ``[C, n]`` the weight of each step's ``log pi`` (``mask * advantage / real steps``).
        activation: the hidden activation.
    """
    weights, biases, log_std = layers
    fwd = mlp_forward(weights, biases, observations, activation)
    d_mean, d_log_std = gaussian_pg_signal(fwd.mean, log_std, actions, coef)
    grad_w, grad_b, deltas, backs = mlp_vjp(fwd, weights, d_mean)
    bent = tuple(None if bend is None else back * bend for back, bend in zip(backs, fwd.bends, strict=True))
    curvature = PolicyGradientCurvature(
        weights, fwd, deltas, bent, actions - fwd.mean, coef, torch.exp(-2 * log_std)
    )
    return join_params((grad_w, grad_b, d_log_std)), curvature


def inner_hessian_product(curv: PolicyGradientCurvature, v: Tensor, layout: MLPLayout) -> Tensor:
    """``H v`` per task, ``[P]`` (shared) or ``[C, P]`` tangent -> ``[C, P]``, by the R-operator.

    ``H`` is the Hessian of :class:`PolicyGradientCurvature`'s loss in ``theta``, which the product never
    forms: one forward tangent pass and one backward pass over the chunk's steps.
    """
    d_weights, d_biases, d_log_std = split_params(v, layout)
    fwd, weights, c = curv.fwd, curv.weights, curv.coef.unsqueeze(-1)
    d_mean, d_pre, d_inputs = mlp_jvp(fwd, weights, d_weights, d_biases)
    shifted = d_mean + 2 * curv.residual * d_log_std.unsqueeze(-2)
    delta = c * curv.inv_var.unsqueeze(-2) * shifted
    out_log_std = (
        2 * curv.inv_var * (c * curv.residual * (d_mean + curv.residual * d_log_std.unsqueeze(-2))).sum(-2)
    )
    out_w, out_b = [], []
    for layer in range(len(weights) - 1, -1, -1):
        grad_w = torch.matmul(delta.transpose(-1, -2), fwd.inputs[layer])
        d_input = d_inputs[layer]
        if d_input is not None:
            grad_w = grad_w.baddbmm_(curv.deltas[layer].transpose(-1, -2), d_input)
        out_w.append(grad_w)
        out_b.append(delta.sum(-2))
        if layer > 0:
            back = _add_matmul_(torch.matmul(delta, weights[layer]), curv.deltas[layer], d_weights[layer])
            delta = back.mul_(fwd.slopes[layer - 1])
            bent, d_z = curv.bent_backs[layer - 1], d_pre[layer - 1]
            if bent is not None:
                assert d_z is not None, "R z_l is kept wherever act'' is nonzero"
                delta = delta.addcmul_(bent, d_z)
    num_tasks = curv.coef.shape[0]
    return join_params((tuple(out_w[::-1]), tuple(out_b[::-1]), out_log_std.expand(num_tasks, -1)))


@dataclass(frozen=True)
class QueryFisher:
    """One chunk's adapted policies on their query steps, ready for Fisher products.

    Attributes:
        weights: the adapted layer weights ``[C, out, in]``.
        fwd: the primal forward pass on the query observations.
        step_weights: ``mask / real steps`` ``[C, n]`` (each task's mean over its real steps).
        inv_var: ``exp(-2 log_std)`` of the adapted policies ``[C, A]``.
    """

    weights: tuple[Tensor, ...]
    fwd: Forward
    step_weights: Tensor
    inv_var: Tensor


def fisher_product(fisher: QueryFisher, u: Tensor, layout: MLPLayout) -> Tensor:
    """``F u`` per task, ``[C, P] -> [C, P]``: the Hessian of each task's mean KL at the adapted policy.

    The Fisher of the Gaussian in its outputs (``exp(-2 log_std)`` on the means, 2 on the log-stds, as
    :func:`agents.policies.gaussian_fisher_product`) between the network's Jacobian and its transpose.
    """
    d_weights, d_biases, d_log_std = split_params(u, layout)
    d_mean, _, _ = mlp_jvp(fisher.fwd, fisher.weights, d_weights, d_biases)
    weighted = fisher.step_weights.unsqueeze(-1) * fisher.inv_var.unsqueeze(-2) * d_mean
    grad_w, grad_b, _, _ = mlp_vjp(fisher.fwd, fisher.weights, weighted)
    return join_params((grad_w, grad_b, 2 * fisher.step_weights.sum(-1, keepdim=True) * d_log_std))


__all__ = [
    "Forward",
    "Layers",
    "MLPLayout",
    "PolicyGradientCurvature",
    "QueryFisher",
    "activation_slopes",
    "fisher_product",
    "gaussian_pg_signal",
    "inner_gradient",
    "inner_hessian_product",
    "join_params",
    "mlp_forward",
    "mlp_jvp",
    "mlp_layout",
    "mlp_vjp",
    "split_params",
]
