"""Reference paths for the MAML-TRPO equivalence tests: the whole meta-objective, differentiated directly."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from metarl.agents.maml_trpo import MAMLTRPO
from metarl.core.types import MetaBatch


def meta_objective(
    learner: MAMLTRPO, meta_batch: MetaBatch
) -> tuple[Callable[[Tensor], tuple[Tensor, Tensor]], Tensor]:
    """``(objective, theta)``: ``objective(theta [P]) -> (mean query loss, mean KL)``, current ``theta``.

    The old adapted policy (the one the query episodes were collected with) is computed once and held
    fixed, so ``objective(theta)`` has KL 0 and importance ratio 1 at the returned ``theta``.
    """
    supports, query, theta, like = learner._prepare(meta_batch)
    adapt, outputs = learner._task_maps(supports, query[0], like)
    with torch.no_grad():
        old = tuple(t.detach() for t in outputs(adapt(theta)))
    return learner._objective(supports, query, old, like), theta
