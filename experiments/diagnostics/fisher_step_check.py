"""How a cheaper Fisher-vector product changes the TRPO step, on one meta-batch of a config.

Collects one meta-batch with the config's policy (freshly initialised, or ``--checkpoint``), then builds
the TRPO step (conjugate gradient, scaled to ``max_kl``) with each product and prints its cost, its length,
its cosine with the exact step, and the surrogate gain and KL of the full step:

- ``exact``: ``trpo.fisher_subsample: 1.0``;
- ``tasks F``: the library's subsample, the first ``F`` of the tasks, each with all of its episodes;
- ``episodes F``: the first ``F`` of every task's episodes (rllab's ``subsample_factor``; what metarl did
  until 2026-12-02), kept here as the rejected alternative;
- ``query episodes F``: the Jacobian on every support episode, the Fisher ``F'`` on the first ``F`` of each
  task's query episodes (isolates where the episode subsample goes wrong);
- ``closed_form tasks F``: ``trpo.fisher_product: closed_form`` on the first ``F`` of the tasks (F = 1 is
  exact too);
- ``cg K`` (``--cg-iterations``): the exact product, ``K`` conjugate-gradient iterations instead of the
  config's;
- ``fisher without J`` (``--no-jacobian``): the adapted policies' Fisher ``F'`` alone, as if the inner step's
  Jacobian ``J = I - alpha H`` were the identity (one Fisher product instead of two Hessian-vector products
  and one), with the exact gradient.

    python experiments/diagnostics/fisher_step_check.py experiments/half_cheetah_dir.yaml --fractions 0.25 0.5
    python experiments/diagnostics/fisher_step_check.py experiments/half_cheetah_vel.yaml --fractions 0.5 \
        --closed-form-fractions 1.0 0.5 0.4 --cg-iterations 6 8 --no-jacobian --no-episode-variants
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import math
import time
from collections.abc import Callable

import torch
from _loader import add_run_arguments, probe_from_args
from torch import Tensor

import metarl.agents.maml_trpo as maml
from metarl.agents.mlp_curvature import ClosedFormMetaUpdate
from metarl.agents.mlp_derivatives import mlp_layout
from metarl.core.trpo import conjugate_gradient, trust_region_step


def episode_subsampled_product(self, supports, query, theta, like, full, old, jacobian_too=True):
    """``J^T F' J`` with ``F'`` (and ``J`` if ``jacobian_too``) on the first episodes of every task."""
    adapt, adapted, vjp_adapt, _ = full
    keep = max(1, math.ceil(self.trpo.fisher_subsample * query[0].shape[2]))
    query = tuple(t[:, :, :keep] for t in query)
    if jacobian_too:
        supports = tuple(tuple(t[:, :, :keep] for t in d) for d in supports)
    adapt_kept, outputs = self._task_maps(supports, query[0], like)
    if jacobian_too:
        adapt = adapt_kept
        _, vjp_adapt = torch.func.vjp(adapt, theta)
    _, vjp_outputs = torch.func.vjp(outputs, adapted)
    return maml.jfj_product(adapt, outputs, theta, adapted, vjp_adapt, vjp_outputs, old[1], query[3])


def fisher_without_jacobian(learner: maml.MAMLTRPO, meta_batch) -> Callable[[Tensor], Tensor]:
    """``v -> mean_i F'_i v``: the adapted policies' Fisher with ``J = I`` (closed form; one inner step)."""
    supports, query, theta, _ = learner._prepare(meta_batch)
    layout = mlp_layout(learner.policy)
    with torch.no_grad():
        update = ClosedFormMetaUpdate(
            layout, theta, supports, query, learner.inner.step_size, True, len(query[0])
        )
    return update.fisher_vector_product


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_run_arguments(parser)
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.25])
    parser.add_argument(
        "--closed-form-fractions",
        type=float,
        nargs="*",
        default=[],
        help="closed_form on these task fractions",
    )
    parser.add_argument(
        "--cg-iterations", type=int, nargs="*", default=[], help="exact product, K CG iterations"
    )
    parser.add_argument(
        "--no-jacobian", action="store_true", help="add the Fisher without the inner Jacobian"
    )
    parser.add_argument(
        "--no-episode-variants", action="store_true", help="only the library's task subsample per --fractions"
    )
    args = parser.parse_args()
    probe, meta_batch = probe_from_args(args)
    learner = probe.learner
    library_product = maml.MAMLTRPO._jfj_product
    # (name, fisher_product, fraction, jfj product, CG iterations, J = I in the products)
    iterations = learner.trpo.cg_iterations
    variants = [("exact", "jfj", 1.0, library_product, iterations, False)]
    for fraction in args.fractions:
        variants += [(f"tasks {fraction}", "jfj", fraction, library_product, iterations, False)]
        if not args.no_episode_variants:
            query_only = functools.partialmethod(episode_subsampled_product, jacobian_too=False)
            variants += [
                (f"episodes {fraction}", "jfj", fraction, episode_subsampled_product, iterations, False)
            ]
            variants += [(f"query episodes {fraction}", "jfj", fraction, query_only, iterations, False)]
    for fraction in args.closed_form_fractions:
        variants += [
            (f"closed_form tasks {fraction}", "closed_form", fraction, library_product, iterations, False)
        ]
    for count in args.cg_iterations:
        variants += [(f"cg {count}", "closed_form", 1.0, library_product, count, False)]
    if args.no_jacobian:
        variants += [("fisher without J", "closed_form", 1.0, library_product, iterations, True)]
    theta = learner.meta_parameters()
    reference = None
    for name, fisher_product, fraction, product, cg_iterations, no_jacobian in variants:
        learner.trpo = dataclasses.replace(
            learner.trpo, fisher_subsample=fraction, fisher_product=fisher_product
        )
        maml.MAMLTRPO._jfj_product = product
        start = time.perf_counter()
        loss, grad, fvp, objective = learner.linearize(meta_batch)
        if no_jacobian:
            fvp = fisher_without_jacobian(learner, meta_batch)
        direction, fisher_direction = conjugate_gradient(
            lambda v, fvp=fvp: fvp(v).detach() + learner.trpo.cg_damping * v, grad, cg_iterations
        )
        step = -trust_region_step(direction, fisher_direction, learner.trpo.max_kl)
        seconds = time.perf_counter() - start
        reference = step if reference is None else reference
        with torch.no_grad():
            new_loss, kl = objective(theta + step)
        cosine = float(torch.nn.functional.cosine_similarity(step, reference, dim=0))
        print(
            f"{name:20s} {seconds:6.1f} s  step norm {step.norm():.4f}  cosine with exact {cosine:.3f}  "
            f"full step: surrogate gain {float(loss - new_loss):.5f}, KL {float(kl):.5f}",
            flush=True,
        )
    maml.MAMLTRPO._jfj_product = library_product


if __name__ == "__main__":
    main()
