"""Policies: MLPs from observations to action distributions, evaluated functionally in the inner loop.

``forward`` returns tensors (``mean``, ``log_std``) rather than a ``torch.distributions`` object, because
``torch.func.vmap`` can only return tensors; :func:`gaussian_log_prob` and :func:`gaussian_kl` do the rest.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor, nn

ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "tanh": nn.Tanh, "elu": nn.ELU}


class GaussianMLPPolicy(nn.Module):
    """Diagonal Gaussian policy: an MLP gives the mean, a learned state-independent vector the log-std.

    The MAML paper uses two hidden layers of 100 ReLU units. Weights are Xavier-uniform, biases zero.
    The module has no buffers, so it can be evaluated with ``functional_call`` on adapted parameters.

    Args:
        obs_dim: observation size.
        act_dim: action size.
        hidden_sizes: widths of the hidden layers, e.g. ``(100, 100)``.
        activation: one of ``relu``, ``tanh``, ``elu``.
        init_std: initial standard deviation of every action dimension (> 0).
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        hidden_sizes: tuple[int, ...] = (100, 100),
        activation: str = "relu",
        init_std: float = 1.0,
    ) -> None:
        """Build the layers; see the class docstring."""
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"policy.activation: {activation!r} is not one of {sorted(ACTIVATIONS)}")
        if init_std <= 0:
            raise ValueError(f"policy.init_std: must be > 0, got {init_std}")
        sizes = (obs_dim, *hidden_sizes)
        layers: list[nn.Module] = []
        for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True):
            layers += [nn.Linear(n_in, n_out), ACTIVATIONS[activation]()]
        self.body = nn.Sequential(*layers)
        self.mean = nn.Linear(sizes[-1], act_dim)
        self.log_std = nn.Parameter(torch.full((act_dim,), math.log(init_std)))
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, observations: Tensor) -> tuple[Tensor, Tensor]:
        """Map ``[..., obs_dim]`` observations to ``(mean [..., act_dim], log_std [act_dim])``."""
        return self.mean(self.body(observations)), self.log_std


def gaussian_log_prob(mean: Tensor, log_std: Tensor, actions: Tensor) -> Tensor:
    """Log-density of ``actions [..., A]`` under ``N(mean, exp(log_std)^2)``, summed over ``A``: ``[...]``."""
    z = (actions - mean) * torch.exp(-log_std)
    return (-0.5 * z.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)


def gaussian_kl(mean_p: Tensor, log_std_p: Tensor, mean_q: Tensor, log_std_q: Tensor) -> Tensor:
    """``KL(p || q)`` between diagonal Gaussians, summed over the action axis: ``[..., A] -> [...]``."""
    var_ratio = torch.exp(2 * (log_std_p - log_std_q))
    mean_term = ((mean_p - mean_q) * torch.exp(-log_std_q)).pow(2)
    return 0.5 * (var_ratio + mean_term - 1).sum(-1) - (log_std_p - log_std_q).sum(-1)


def sample_gaussian(mean: Tensor, log_std: Tensor, generator: torch.Generator) -> Tensor:
    """Draw actions ``[..., A]`` with ``generator`` (so seeded runs repeat exactly)."""
    noise = torch.randn(mean.shape, generator=generator, dtype=mean.dtype, device=mean.device)
    return mean + torch.exp(log_std) * noise


def gaussian_fisher_product(
    d_mean: Tensor, d_log_std: Tensor, log_std: Tensor, weights: Tensor
) -> tuple[Tensor, Tensor]:
    """Fisher information of a diagonal Gaussian policy, in its outputs, applied to a tangent.

    This is the Hessian of ``sum_t weights_t * KL(old_t || new_t)`` with respect to the new policy's
    ``(mean, log_std)``, taken at ``new = old``: ``exp(-2 log_std)`` on the means, ``2`` on the log-stds
    (weighted by ``sum(weights)``), no cross terms. With ``weights = mask / count`` it is the Hessian of the
    masked mean KL that TRPO constrains.

    Args:
        d_mean: tangent of the means ``[..., T, E, A]``.
        d_log_std: tangent of the log-stds ``[..., A]``.
        log_std: the policy's log-std ``[..., A]``.
        weights: ``[..., T, E]`` weight of each step (0 on padding).

    Returns:
        ``(F d_mean [..., T, E, A], F d_log_std [..., A])``.
    """
    inv_var = torch.exp(-2 * log_std)[..., None, None, :]
    total = weights.sum(dim=(-2, -1))[..., None]
    return weights[..., None] * d_mean * inv_var, 2 * total * d_log_std


def task_noise_seeds(base: int, num_tasks: int) -> list[int]:
    """One independent 63-bit seed per task, derived from ``base`` and the task's index in the meta-batch."""
    return [
        int(np.random.SeedSequence([base, n]).generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))
        for n in range(num_tasks)
    ]


def task_batched_forward(
    module: nn.Module, params: dict[str, Tensor], observations: Tensor
) -> tuple[Tensor, Tensor]:
    """``N`` tasks' outputs at once: ``params [N, ...]``, ``observations [N, E, D]``.

    Returns ``(mean [N, E, A], log_std [N, A])``, equal to ``torch.func.vmap`` of ``functional_call`` over
    the task axis (tested: bit for bit in float32, to rounding in float64). For a :class:`GaussianMLPPolicy`
    each layer is one batched matrix product with the bias as its addend, which halves the sampling policy's
    time per call (40 tasks x 20 episodes, noise included: 0.74 ms against 1.37 ms through ``vmap`` on one
    core); other modules go
    through ``vmap``.
    """
    if type(module) is not GaussianMLPPolicy:
        return torch.func.vmap(lambda p, o: torch.func.functional_call(module, p, (o,)), randomness="error")(
            params, observations
        )
    h = observations
    for name, layer in module.body.named_children():
        if isinstance(layer, nn.Linear):
            h = torch.baddbmm(
                params[f"body.{name}.bias"].unsqueeze(1), h, params[f"body.{name}.weight"].transpose(1, 2)
            )
        else:
            h = layer(h)
    mean = torch.baddbmm(params["mean.bias"].unsqueeze(1), h, params["mean.weight"].transpose(1, 2))
    return mean, params["log_std"]


class TaskPolicy:
    """The sampling policy of ``N`` tasks: per-task parameters and a separate action-noise stream per task.

    Each task draws its noise from its own generator, so the actions of task ``n`` depend only on its
    parameters, its observations and its seed, never on which other tasks are batched with it. That lets a
    collector cut the meta-batch into slices (:meth:`select`) for worker processes or Ray actors and still
    return exactly what one in-process call returns. It pickles (generators are rebuilt from the seeds).

    Args:
        module: the policy module, evaluated with ``functional_call``.
        params: per-task parameters, ``[N, ...]`` per entry.
        seeds: ``N`` noise seeds (:func:`task_noise_seeds`).
    """

    def __init__(
        self, module: nn.Module, params: dict[str, Tensor], seeds: list[int], deterministic: bool = False
    ) -> None:
        """See the class docstring."""
        if any(v.shape[0] != len(seeds) for v in params.values()):
            raise ValueError(f"params need a leading task axis of {len(seeds)} (one per seed)")
        self.module = module
        self.params = params
        self.seeds = list(seeds)
        self.deterministic = deterministic
        self._generators: list[torch.Generator] | None = None

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_generators"] = None
        return state

    def select(self, start: int, stop: int) -> TaskPolicy:
        """The policy of tasks ``start..stop-1`` with fresh noise streams (copies: pickles only the slice)."""
        params = {k: v[start:stop].clone() for k, v in self.params.items()}
        return TaskPolicy(self.module, params, self.seeds[start:stop], self.deterministic)

    @torch.no_grad()
    def __call__(self, observations: Tensor) -> Tensor:
        """Sample actions ``[N, E, A]`` for observations ``[N, E, D]`` (``deterministic``: the means)."""
        mean, log_std = task_batched_forward(self.module, self.params, observations)
        if self.deterministic:
            return mean
        if self._generators is None:
            self._generators = [torch.Generator().manual_seed(s) for s in self.seeds]
        noise = torch.stack(
            [torch.randn(mean.shape[1:], generator=g, dtype=mean.dtype) for g in self._generators]
        )
        return mean + torch.exp(log_std)[:, None, :] * noise


def task_policy(
    module: nn.Module, params: dict[str, Tensor], generator: torch.Generator, deterministic: bool = False
) -> TaskPolicy:
    """The collector's sampling policy of per-task parameters ``[N, ...]`` (observations ``[N, E, D]``).

    ``deterministic``: act with the mean action (the generator is still drawn from, so what follows is
    the same either way).

    One draw from ``generator`` seeds a separate noise stream per task (:class:`TaskPolicy`), so the
    episodes do not depend on how a collector splits the tasks among workers.
    """
    base = int(torch.randint(0, 2**62, (1,), generator=generator))
    num_tasks = next(iter(params.values())).shape[0]
    return TaskPolicy(module, params, task_noise_seeds(base, num_tasks), deterministic)
