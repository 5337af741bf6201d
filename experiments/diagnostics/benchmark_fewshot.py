"""Few-shot meta-training speed: the batched learner against the per-task loop, and first vs second order.

Measured in one run, with repeats interleaved (loop, batched, loop, ...) so that load from other processes
hits both alike; medians are reported, and ratios come from the same run.

    python experiments/diagnostics/benchmark_fewshot.py [--quick] [--threads 1] [--out PATH.json]

Cases (second-order MAML unless stated; one meta-update = ``learner.step`` on a fixed meta-batch, so task
sampling is not timed):

* sinusoid: MLP 1-40-40-1, meta-batch 25, K = 10, one inner step (the paper's setting);
* omniglot-5w1s: 4-block conv net, 64 filters, 28x28 generated images, 5-way 1-shot with 1 query image per
  class, meta-batch 32, one inner step (the paper's setting).

For Omniglot, ``grouped`` is what ``meta.batching: auto`` runs (with the closed-form batch-norm second
derivative, ``meta.second_order_batch_norm: auto``); ``grouped_pytorch_batch_norm`` is the same with PyTorch's
own batch-norm double backward.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from metarl.agents.fewshot_models import FewShotConvNet, FewShotMLP
from metarl.agents.maml_supervised import SupervisedMAML
from metarl.config import InnerConfig, MetaConfig
from metarl.envs.fewshot import SinusoidTasks
from metarl.training.fewshot import TaskBatch, as_task_batch


def sinusoid_case():
    batch = as_task_batch(SinusoidTasks().sample(25, np.random.default_rng(0), shots=10, query_shots=10))
    return (lambda: FewShotMLP(1, 1, (40, 40))), "regression", 0.01, batch


def omniglot_case(tasks: int = 32, ways: int = 5, shots: int = 1):
    rng = np.random.default_rng(0)
    labels = torch.arange(ways).repeat_interleave(shots).expand(tasks, -1).contiguous()

    def images() -> torch.Tensor:
        return torch.from_numpy((rng.random((tasks, ways * shots, 1, 28, 28)) < 0.2).astype(np.float32))

    batch = TaskBatch((images(), labels), (images(), labels), tuple(range(tasks)))
    return (lambda: FewShotConvNet((1, 28, 28), ways, filters=64)), "classification", 0.4, batch


def seconds_per_step(make_net, kind, alpha, batch, variant, iterations) -> float:
    batching, first_order, *batch_norm = variant
    torch.manual_seed(0)
    learner = SupervisedMAML(
        make_net(),
        kind,
        InnerConfig(steps=1, step_size=alpha, first_order=first_order),
        MetaConfig(batching=batching, second_order_batch_norm=batch_norm[0] if batch_norm else "auto"),
    )
    learner.step(batch)  # warm-up
    begin = time.perf_counter()
    for _ in range(iterations):
        learner.step(batch)
    return (time.perf_counter() - begin) / iterations


def compare(case, variants: dict[str, tuple], repeats: int, iterations: int) -> dict:
    """Median seconds per meta-update of each variant, interleaved.

    A variant is ``name -> (batching, first_order)`` or ``(batching, first_order, second_order_batch_norm)``.
    """
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(repeats):
        for name, variant in variants.items():
            times[name].append(seconds_per_step(*case, variant, iterations))
    return {
        name: {"median_s": statistics.median(t), "repeats_s": t, "iterations_per_s": 1 / statistics.median(t)}
        for name, t in times.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one short repeat (a smoke test)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default="benchmark_fewshot.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    repeats = 1 if args.quick else args.repeats
    result: dict = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "command": "python experiments/diagnostics/benchmark_fewshot.py"
        + (" --quick" if args.quick else "")
        + f" --threads {args.threads} --repeats {repeats}",
        "torch": torch.__version__,
        "threads": args.threads,
    }
    sine = compare(
        sinusoid_case(),
        {
            "loop": ("loop", False),
            "vmap": ("vmap", False),
            "grouped": ("grouped", False),
            "vmap_first_order": ("vmap", True),
        },
        repeats,
        3 if args.quick else 40,
    )
    omni = compare(
        omniglot_case(tasks=4 if args.quick else 32),
        {
            "loop": ("loop", False),
            "grouped": ("grouped", False),
            "grouped_pytorch_batch_norm": ("grouped", False, "pytorch"),
            "loop_first_order": ("loop", True),
            "grouped_first_order": ("grouped", True),
            "vmap_first_order": ("vmap", True),
        },
        repeats,
        1 if args.quick else 2,
    )
    ratio = lambda case, a, b: case[b]["median_s"] / case[a]["median_s"]  # noqa: E731  (speed-up of a over b)
    result["sinusoid"] = sine
    result["omniglot_5w1s"] = omni
    result["summary"] = {
        "sinusoid_vmap_speedup_over_loop": ratio(sine, "vmap", "loop"),
        "sinusoid_grouped_speedup_over_loop": ratio(sine, "grouped", "loop"),
        "sinusoid_second_over_first_order_time": ratio(sine, "vmap_first_order", "vmap"),
        "omniglot_grouped_speedup_over_loop": ratio(omni, "grouped", "loop"),
        "omniglot_grouped_pytorch_batch_norm_speedup_over_loop": ratio(
            omni, "grouped_pytorch_batch_norm", "loop"
        ),
        "omniglot_closed_form_batch_norm_speedup_grouped": ratio(
            omni, "grouped", "grouped_pytorch_batch_norm"
        ),
        "omniglot_vmap_first_order_speedup_over_loop_first_order": ratio(
            omni, "vmap_first_order", "loop_first_order"
        ),
        "omniglot_second_over_first_order_time_grouped": ratio(omni, "grouped_first_order", "grouped"),
        "omniglot_second_over_first_order_time_loop": ratio(omni, "loop_first_order", "loop"),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    for name, value in result["summary"].items():
        print(f"{name:64s} {value:6.2f}")
    for case in ("sinusoid", "omniglot_5w1s"):
        for name, row in result[case].items():
            print(f"{case:14s} {name:28s} {row['median_s'] * 1000:9.2f} ms/meta-update")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
