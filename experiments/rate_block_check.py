"""Why learned inner step sizes (Meta-SGD, ``inner.learn_step_size``) barely move under TRPO.

Collects one meta-batch with a Meta-SGD checkpoint's policy and prints, for the policy weights and the
learned rates separately: the meta-gradient's norm, the Fisher's curvature ``v^T F v`` along random unit
directions in that block (against ``trpo.cg_damping``) and along the block's own gradient; then the TRPO
full step (conjugate gradient, scaled to ``max_kl``) for several numbers of conjugate-gradient iterations:
its length in each block, the largest change of any rate, the solve's relative residual and the linear
surrogate gain ``g^T step``; and the first of them again without damping.

    python experiments/rate_block_check.py runs/hcvel-metasgd/checkpoints/latest.pt \\
        runs/hcvel-metasgd/config.yaml
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable

import torch
from torch import Tensor

from metarl.app.build import build, build_collector
from metarl.checkpoint import load_checkpoint
from metarl.config import load_config
from metarl.core.seeding import training_generators
from metarl.core.trpo import conjugate_gradient, trust_region_step


def block_curvature(fvp: Callable[[Tensor], Tensor], size: int, block: slice, probes: int) -> list[float]:
    """``v^T F v`` for ``probes`` random unit vectors ``v`` ``[size]`` that are zero outside ``block``."""
    values = []
    for _ in range(probes):
        v = torch.zeros(size)
        v[block] = torch.randn(block.stop - block.start)
        v /= v.norm()
        values.append(float(v @ fvp(v)))
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkpoint", help="a checkpoint trained with inner.learn_step_size: true")
    parser.add_argument("config", help="its run's config.yaml")
    parser.add_argument("--cg-iterations", type=int, nargs="+", default=[10, 30, 100])
    parser.add_argument("--probes", type=int, default=8)
    parser.add_argument("--seed", type=int, default=123, help="seed of the meta-batch's tasks and episodes")
    args = parser.parse_args()
    # the exact Fisher (every task), one thread: the numbers in docs/RESULTS.md
    config = load_config(args.config, ["num_threads=1", "trpo.fisher_subsample=1.0"])
    if not config.inner.learn_step_size:
        parser.exit(2, f"rate_block_check: {args.config}: inner.learn_step_size is false; expected true\n")
    built = build(config)
    distribution, learner, collector = built.distribution, built.learner, build_collector(config)
    learner.load_state_dict(load_checkpoint(args.checkpoint)["policy"])
    rng, gen = training_generators(args.seed)
    meta_batch = learner.sample(collector, distribution.sample_tasks(config.meta.batch_size, rng), rng, gen)
    collector.close()  # its workers are not needed for the rest
    _, grad, fvp, _ = learner.linearize(meta_batch)
    total = learner.meta_parameters().numel()
    half = total // 2  # the rates mirror the weights entry for entry, after them
    blocks = {"weights": slice(0, half), "rates": slice(half, total)}
    print(f"{half} policy parameters and {half} learned rates; cg_damping {config.trpo.cg_damping:.0e}")
    torch.manual_seed(0)
    for name, block in blocks.items():
        values = block_curvature(fvp, total, block, args.probes)
        along = torch.zeros(total)
        along[block] = grad[block] / grad[block].norm()
        print(
            f"{name}: gradient norm {grad[block].norm():.3e}; v'Fv, random unit v: median "
            f"{statistics.median(values):.3e} ({min(values):.3e} to {max(values):.3e}); "
            f"along the block's gradient {float(along @ fvp(along)):.3e}"
        )
    runs = [(iterations, config.trpo.cg_damping) for iterations in args.cg_iterations]
    runs.append((args.cg_iterations[0], 0.0))  # does the damping matter?
    for iterations, damping in runs:
        damped = lambda v, d=damping: fvp(v).detach() + d * v  # noqa: E731
        direction, fisher_direction = conjugate_gradient(damped, grad, iterations)
        step = trust_region_step(direction, fisher_direction, config.trpo.max_kl)
        weights, rates = step[blocks["weights"]], step[blocks["rates"]]
        residual = (damped(direction) - grad).norm() / grad.norm()
        print(
            f"cg {iterations}, damping {damping:.0e}: full step norm, weights {weights.norm():.3e}, "
            f"rates {rates.norm():.3e}; largest rate change {rates.abs().max():.3e}; "
            f"relative residual {residual:.2e}; linear surrogate gain {float(grad @ step):.3e}"
        )


if __name__ == "__main__":
    main()
