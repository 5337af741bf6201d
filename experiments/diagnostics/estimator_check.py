"""How ProMP's LVC estimator (``inner.estimator: lvc``) changes the MAML-TRPO meta-update, on one meta-batch.

Collects one meta-batch with the config's policy (freshly initialised, or ``--checkpoint``) and, for the
paper's estimator (``reinforce``) and ``lvc``, prints:

- the meta-gradient's norm, and its cosine between the two halves of the tasks (how much of it is signal:
  two independent estimates of the same expected gradient);
- the TRPO step (conjugate gradient with the exact Fisher, scaled to ``max_kl``): its length, and its
  surrogate gain and KL on the sampled meta-batch.

Then the cosine between the two estimators' gradients and steps, and the split-half cosine of their
difference, the score-function term ``alpha * mean_t A_t grad log pi grad log pi^T v`` that ``lvc`` adds.

    python experiments/diagnostics/estimator_check.py experiments/half_cheetah_vel.yaml \
        --checkpoint experiments/pretrained/half_cheetah_vel/policy.pt
"""

from __future__ import annotations

import argparse
import dataclasses

import torch
from _loader import add_run_arguments, probe_from_args
from torch import Tensor

from metarl.agents.maml_trpo import MAMLTRPO
from metarl.core.trpo import conjugate_gradient, trust_region_step
from metarl.core.types import EpisodeBatch, MetaBatch


def task_slice(meta_batch: MetaBatch, tasks: slice) -> MetaBatch:
    """The meta-batch of the tasks in ``tasks`` (advantages are normalised per task: nothing else moves)."""

    def cut(batch: EpisodeBatch) -> EpisodeBatch:
        sliced = {f.name: getattr(batch, f.name) for f in dataclasses.fields(batch)}
        return EpisodeBatch(**{name: None if x is None else x[tasks] for name, x in sliced.items()})

    supports = tuple(cut(b) for b in meta_batch.support)
    return MetaBatch(meta_batch.tasks[tasks], supports, cut(meta_batch.query))


def cosine(a: Tensor, b: Tensor) -> float:
    """Cosine similarity of two flat vectors."""
    return float(torch.nn.functional.cosine_similarity(a, b, dim=0))


def trpo_step(learner: MAMLTRPO, meta_batch: MetaBatch) -> tuple[Tensor, Tensor, float, float]:
    """``(gradient, full step, surrogate gain, KL)`` of the TRPO update on ``meta_batch``."""
    loss, grad, fvp, objective = learner.linearize(meta_batch)
    direction, fisher_direction = conjugate_gradient(
        lambda v: fvp(v).detach() + learner.trpo.cg_damping * v, grad, learner.trpo.cg_iterations
    )
    step = -trust_region_step(direction, fisher_direction, learner.trpo.max_kl)
    with torch.no_grad():
        new_loss, kl = objective(learner.meta_parameters() + step)
    return grad, step, float(loss - new_loss), float(kl)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_run_arguments(parser)
    args = parser.parse_args()
    probe, meta_batch = probe_from_args(args)
    learner = probe.learner
    learner.trpo = dataclasses.replace(learner.trpo, fisher_subsample=1.0, fisher_subsample_grow_at=0.0)
    half = len(meta_batch.tasks) // 2
    halves = task_slice(meta_batch, slice(0, half)), task_slice(meta_batch, slice(half, 2 * half))
    grads, steps, half_grads = {}, {}, {}
    for estimator in ("reinforce", "lvc"):
        learner.inner = dataclasses.replace(learner.inner, estimator=estimator)
        grads[estimator], steps[estimator], gain, kl = trpo_step(learner, meta_batch)
        half_grads[estimator] = [learner.meta_gradient(h) for h in halves]
        print(
            f"{estimator:10s} gradient norm {grads[estimator].norm():.4f}, split-half cosine "
            f"{cosine(*half_grads[estimator]):.3f}; full step: norm {steps[estimator].norm():.4f}, "
            f"surrogate gain {gain:.5f}, KL {kl:.5f}",
            flush=True,
        )
    term = [lvc - paper for lvc, paper in zip(half_grads["lvc"], half_grads["reinforce"], strict=True)]
    print(
        f"lvc against reinforce: gradient cosine {cosine(grads['lvc'], grads['reinforce']):.3f}, "
        f"step cosine {cosine(steps['lvc'], steps['reinforce']):.3f}; the added term: norm "
        f"{(grads['lvc'] - grads['reinforce']).norm():.4f}, split-half cosine {cosine(*term):.3f}"
    )


if __name__ == "__main__":
    main()
