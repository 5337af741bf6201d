"""Why learned inner step sizes (Meta-SGD, ``inner.learn_step_size``) barely move under TRPO.

Collects one meta-batch with a Meta-SGD checkpoint's policy and prints, for the policy weights and the
learned rates separately: the meta-gradient's norm, the Fisher's curvature ``v^T F v`` along random unit
directions in that block (against ``trpo.cg_damping``) and along the block's own gradient; then the TRPO
full step (conjugate gradient, scaled to ``max_kl``) for several numbers of conjugate-gradient iterations:
its length in each block, the largest change of any rate, the solve's relative residual and the linear
surrogate gain ``g^T step``; and the first of them again without damping.

    python experiments/diagnostics/rate_block_check.py runs/hcvel-metasgd/checkpoints/latest.pt \\
        runs/hcvel-metasgd/config.yaml

The checkpoint may also be a run directory (its ``checkpoints/latest.pt``); without a config file the
checkpoint's own config is used.
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable

import torch
from _loader import build_probe, probe_config, read_state, sample_meta_batch
from torch import Tensor

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
    parser.add_argument(
        "checkpoint", help="a checkpoint (or run directory) trained with inner.learn_step_size: true"
    )
    parser.add_argument(
        "config", nargs="?", help="its run's config.yaml (default: the config the checkpoint stores)"
    )
    parser.add_argument("--cg-iterations", type=int, nargs="+", default=[10, 30, 100])
    parser.add_argument("--probes", type=int, default=8)
    parser.add_argument("--seed", type=int, default=123, help="seed of the meta-batch's tasks and episodes")
    args = parser.parse_args()
    # the exact Fisher (every task), one thread: the numbers in docs/RESULTS.md
    state = read_state(args.checkpoint)
    config = probe_config(args.config, state, ["num_threads=1", "trpo.fisher_subsample=1.0"])
    if not config.inner.learn_step_size:
        source = args.config or args.checkpoint
        parser.exit(2, f"rate_block_check: {source}: inner.learn_step_size is false; expected true\n")
    probe = build_probe(config, state)
    learner = probe.learner
    meta_batch = sample_meta_batch(probe, args.seed)
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
