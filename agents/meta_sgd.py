"""Meta-SGD's learned inner step sizes (Li et al. 2017, arXiv:1707.09835) for :mod:`agents.maml_trpo`.

With ``inner.learn_step_size`` every policy parameter entry has its own inner step size, initialised to
``inner.step_size``; the meta-parameters ``theta`` are then ``[policy parameters; step sizes]`` (``2P``),
and TRPO updates both under the same KL limit on the adapted policy.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from metarl.core.functional import Params, StepSize, flatten_params, unflatten_params

#: key prefix of the learned step sizes in :meth:`agents.maml_trpo.MAMLTRPO.state_dict`
STEP_SIZE_PREFIX = "step_size."


def initial_step_sizes(policy: nn.Module, step_size: float) -> Params:
    """One step size per entry of every policy parameter, all ``step_size``: ``{name: [*shape]}``."""
    return {k: torch.full_like(p.detach(), step_size) for k, p in policy.named_parameters()}


def learned_rates(rates: Tensor, like: Params, steps: int) -> tuple[StepSize, ...]:
    """The flat step sizes ``[P]`` (``theta``'s second half) as the rates of ``steps`` inner steps."""
    return (unflatten_params(rates, like),) * steps


def scaled_step_sizes(step_sizes: Params, step_size: float, base: float) -> Params:
    """The learned rates scaled by ``step_size / base`` (the evaluation's ``alpha, alpha / 2, ...``)."""
    scale = step_size / base
    return {k: scale * v for k, v in step_sizes.items()}


def step_size_state(step_sizes: Params | None) -> dict[str, Tensor]:
    """A ``step_size.<parameter>`` entry per learned step size tensor (none without learned ones)."""
    return {f"{STEP_SIZE_PREFIX}{k}": v.detach().clone() for k, v in (step_sizes or {}).items()}


def restored_step_sizes(state: dict[str, Tensor], current: Params | None) -> Params | None:
    """The learned step sizes in ``state`` (a learner's state dict), checked against ``current``.

    Raises:
        ValueError: the state has learned step sizes and the learner does not learn them, or the reverse,
            or they are for other parameters.
    """
    learned = {
        k.removeprefix(STEP_SIZE_PREFIX): v for k, v in state.items() if k.startswith(STEP_SIZE_PREFIX)
    }
    if (current is None) != (not learned):
        have = "has" if learned else "has no"
        want = "learns" if current is not None else "does not learn"
        raise ValueError(f"the state {have} learned step sizes, but this learner {want} them")
    if current is None:
        return None
    if set(learned) != set(current):
        raise ValueError(f"learned step sizes for {sorted(learned)}, expected {sorted(current)}")
    return {k: learned[k].detach().clone().to(v) for k, v in current.items()}


def step_size_metrics(step_sizes: Params | None) -> dict[str, float]:
    """``inner/step_size_{mean,min,max}`` over every learned entry (empty without learned ones)."""
    if step_sizes is None:
        return {}
    rates = flatten_params(step_sizes)
    return {
        "inner/step_size_mean": rates.mean().item(),
        "inner/step_size_min": rates.min().item(),
        "inner/step_size_max": rates.max().item(),
    }


def meta_parameters(policy: nn.Module, step_sizes: Params | None) -> Tensor:
    """``theta``: the policy's parameters, then the learned step sizes if any (``[P]`` or ``[2P]``)."""
    theta = flatten_params({k: v.detach() for k, v in policy.named_parameters()})
    return theta if step_sizes is None else torch.cat([theta, flatten_params(step_sizes)])


def set_meta_parameters(theta: Tensor, policy: nn.Module, step_sizes: Params | None) -> Params | None:
    """Write the policy's part of ``theta`` (laid out as :func:`meta_parameters`) into ``policy``, in place.

    Returns:
        The step sizes read from the rest of ``theta`` (new tensors), or None without learned step sizes.
    """
    size = sum(p.numel() for p in policy.parameters())
    torch.nn.utils.vector_to_parameters(theta[:size].cpu(), policy.parameters())
    if step_sizes is None:
        return None
    rates = unflatten_params(theta[size:].cpu(), step_sizes)
    return {k: v.clone() for k, v in rates.items()}
