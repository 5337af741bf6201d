"""A MAML-TRPO learner's checkpoint: the policy, the learned step sizes and the Fisher subsample's growth."""

from __future__ import annotations

from torch import Tensor, nn

from metarl.config import TRPOConfig
from metarl.core.functional import Params

from . import fisher_subsample as subsample
from . import meta_sgd


def learner_state(
    policy: nn.Module, step_sizes: Params | None, trpo: TRPOConfig, fraction: float, kl_ratios: list[float]
) -> dict[str, Tensor]:
    """The policy's state, a ``step_size.<parameter>`` entry per learned step size tensor, and more.

    With ``trpo.fisher_subsample_grow_at``, also the subsample's ``fraction`` and ``kl_ratios`` (``trpo.*``),
    so that a resumed run takes the same steps.
    """
    state = {k: v.detach().clone() for k, v in policy.state_dict().items()}
    state.update(meta_sgd.step_size_state(step_sizes))
    if trpo.fisher_subsample_grow_at > 0:
        state.update(subsample.subsample_state(fraction, kl_ratios))
    return state


def load_learner_state(
    state: dict[str, Tensor], policy: nn.Module, step_sizes: Params | None, trpo: TRPOConfig
) -> tuple[Params | None, float, list[float]]:
    """Load :func:`learner_state`'s policy entries into ``policy``.

    Returns:
        ``(step sizes, grown fraction or 0, kl_ratios)`` as :func:`meta_sgd.restored_step_sizes` and
        :func:`fisher_subsample.restored_growth` give them.

    Raises:
        ValueError: the learned step sizes do not match (:func:`meta_sgd.restored_step_sizes`).
    """
    state, trpo_state = subsample.split_subsample_state(state)
    grown, kl_ratios = subsample.restored_growth(
        trpo_state, trpo.fisher_subsample, trpo.fisher_subsample_grow_at
    )
    restored = meta_sgd.restored_step_sizes(state, step_sizes)
    policy.load_state_dict({k: v for k, v in state.items() if not k.startswith(meta_sgd.STEP_SIZE_PREFIX)})
    return restored, grown, kl_ratios
