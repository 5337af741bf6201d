"""A Ray node lost in the middle of training, on a two-node cluster started on this machine.

The head and a second node (2 CPUs each) are separate raylets (``ray.cluster_utils.Cluster``); ``metarl
train`` joins them with ``collector.address``, its two actors spread one per node. The second node is killed
(no graceful shutdown) after two iterations: the actor that lived there is replaced on the head, the iteration
completes with a warning naming the worker, and the run's metrics equal a run on the local backend (every
backend returns the same episodes).
"""

from __future__ import annotations

import importlib.util
import re
import time
from pathlib import Path

import pytest
from conftest import metric_rows, rows_written, start_metarl, tiny_settings, train_command  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
CONFIG = str(REPO / "experiments" / "navigation2d-quick.yaml")
SETTINGS = tiny_settings("meta.iterations=5", "meta.episodes_per_task=20", "collector.workers=2")

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("ray") is None, reason="ray is not installed (pip install 'metarl[ray]')"
)


def train_args(run: Path, *changes: str) -> list[str]:
    return train_command(CONFIG, run, tiny_settings(*SETTINGS, *changes))


@pytest.mark.slow  # over 20 s here; CI runs the slow tests after the default run
def test_a_lost_node_s_actor_is_replaced_on_the_other_and_the_run_equals_a_local_one(tmp_path: Path) -> None:
    from ray.cluster_utils import Cluster

    # a node is declared dead after 3 missed health checks half a second apart (Ray's default: 5 of 3 s)
    health = {"health_check_period_ms": 500, "health_check_failure_threshold": 3}
    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 2, "include_dashboard": False, "_system_config": health},
    )
    try:
        second = cluster.add_node(num_cpus=2)
        cluster.wait_for_nodes()
        run = tmp_path / "run"
        process = start_metarl(
            train_args(run, "collector.backend=ray", f"collector.address={cluster.address}"), tmp_path
        )
        deadline = time.monotonic() + 240
        while rows_written(run) < 2:
            assert process.poll() is None, process.stderr.read()
            assert time.monotonic() < deadline, "no 2 iterations within 240 s"
            time.sleep(0.02)
        cluster.remove_node(second, allow_graceful=False)
        assert process.wait(timeout=300) == 0, process.stderr.read()
        stderr = process.stderr.read()
    finally:
        cluster.shutdown()
    warnings = re.findall(r"RuntimeWarning: collector \(ray\): worker (\d) .* died during collection", stderr)
    assert len(warnings) == 1, stderr  # one actor lived on the lost node; its replacement on the head
    assert "Traceback" not in stderr

    local = tmp_path / "local"
    reference = start_metarl(train_args(local, "collector.backend=local"), tmp_path)
    assert reference.wait(timeout=240) == 0, reference.stderr.read()
    ours = metric_rows(run)
    assert [row.pop("collector/worker_restarts", "0") for row in ours] != ["0"] * 5
    theirs = metric_rows(local)
    for row in theirs:
        row.pop("collector/worker_restarts", None)
    assert ours == theirs
