"""The Fisher-vector product on a subsample of the tasks (``trpo.fisher_subsample``), and its growth.

The products average over the first ``ceil(fraction * N)`` tasks. Each kept task's term is exact (its
inner-step Jacobian on all of its support episodes, its Fisher on all of its query episodes); only the mean
runs over fewer tasks. The tasks are drawn i.i.d., so the first ``k`` are a uniform sample and the product
is an unbiased estimate of the full one. The gradient and the line search (which enforces the KL limit)
still use every task.

Subsampling *episodes* within each task instead (rllab's ``subsample_factor``) is biased here: the Jacobian
``J = I - alpha H`` on fewer support episodes carries a noisier inner Hessian ``H``, and the noise enters
``J^T F' J`` squared, so the Fisher is inflated and TRPO's steps shrink (3.6x shorter on a HalfCheetahDir
meta-batch, measured; see docs/BENCHMARKS.md).

With ``trpo.fisher_subsample_grow_at`` the fraction doubles once the full steps' KL overshoots the limit
too often (:func:`grown_fraction`), and the learner's state keeps the grown fraction for a resumed run.
"""

from __future__ import annotations

import math
import statistics

import torch
from torch import Tensor

from metarl.config import TRPOConfig

#: key prefix of the TRPO state in :meth:`agents.maml_trpo.MAMLTRPO.state_dict` (the grown Fisher subsample)
TRPO_STATE_PREFIX = "trpo."
#: meta-updates whose full-step KL ratios decide whether ``trpo.fisher_subsample`` grows
FISHER_GROWTH_WINDOW = 10


def kept_tasks(fraction: float, num_tasks: int) -> int:
    """How many of the first tasks the Fisher products average over: ``max(1, ceil(fraction * N))``."""
    return max(1, math.ceil(fraction * num_tasks))


def first_tasks(data: tuple[Tensor, ...], keep: int) -> tuple[Tensor, ...]:
    """The first ``keep`` tasks of every tensor: ``[N, ...] -> [keep, ...]``."""
    return tuple(t[:keep] for t in data)


def grown_fraction(
    fraction: float, kl_ratios: list[float], grow_at: float, window: int = FISHER_GROWTH_WINDOW
) -> tuple[float, list[float]]:
    """The Fisher subsample's next fraction, and the KL ratios to keep watching.

    Args:
        fraction: the fraction of tasks in the Fisher-vector products now.
        kl_ratios: the full steps' KL over ``max_kl``, oldest first, since the fraction last changed.
        grow_at: double the fraction (up to 1) once the median of the last ``window`` ratios exceeds this;
            0 never grows.
        window: how many of the latest ratios the median takes.

    Returns:
        ``(fraction, kl_ratios)``: after a growth the ratios start afresh (they described the old product).
    """
    kept = kl_ratios[-window:]
    if grow_at <= 0 or fraction >= 1.0 or len(kept) < window or statistics.median(kept) <= grow_at:
        return fraction, kept
    return min(1.0, 2.0 * fraction), []


def watched_kl_ratios(
    fraction: float, kl_ratios: list[float], full_step_kl: float, trpo: TRPOConfig
) -> tuple[float, list[float]]:
    """:func:`grown_fraction` after one more meta-update whose full step had KL ``full_step_kl``.

    The ratio is over ``trpo.max_kl``; a non-finite one counts as infinitely large.
    """
    ratio = full_step_kl / trpo.max_kl
    ratios = [*kl_ratios, ratio if math.isfinite(ratio) else math.inf]
    return grown_fraction(fraction, ratios, trpo.fisher_subsample_grow_at, window=FISHER_GROWTH_WINDOW)


def subsample_state(fraction: float, kl_ratios: list[float]) -> dict[str, Tensor]:
    """``trpo.fisher_subsample`` (the fraction in use) and ``trpo.kl_ratios`` (those watched so far)."""
    return {
        f"{TRPO_STATE_PREFIX}fisher_subsample": torch.tensor(fraction, dtype=torch.float64),
        f"{TRPO_STATE_PREFIX}kl_ratios": torch.tensor(kl_ratios, dtype=torch.float64),
    }


def split_subsample_state(state: dict[str, Tensor]) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """``(the rest of state, the TRPO entries without their prefix)``."""
    trpo = {k.removeprefix(TRPO_STATE_PREFIX): v for k, v in state.items() if k.startswith(TRPO_STATE_PREFIX)}
    return {k: v for k, v in state.items() if not k.startswith(TRPO_STATE_PREFIX)}, trpo


def restored_growth(
    trpo_state: dict[str, Tensor], configured: float, grow_at: float
) -> tuple[float, list[float]]:
    """``(grown fraction or 0, kl_ratios)`` from :func:`subsample_state`'s entries.

    A grown fraction is restored only when the learner grows it too (``grow_at > 0``); a config whose
    fraction (``configured``) is already larger keeps its own and watches the KL afresh.
    """
    if grow_at > 0 and "fisher_subsample" in trpo_state:
        saved = float(trpo_state["fisher_subsample"])
        if saved >= configured:
            return saved, [float(r) for r in trpo_state.get("kl_ratios", torch.zeros(0))]
    return 0.0, []
