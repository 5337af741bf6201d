"""Worker backends: the same batch as the local collector, and faults (killed, hung, raising workers)."""

from __future__ import annotations

import importlib.util
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))  # workers import the test env module by the same name

from faulty_envs import FaultTask  # noqa: E402

from metarl.agents.policies import GaussianMLPPolicy, TaskPolicy, task_noise_seeds  # noqa: E402
from metarl.collection import CollectorSpec, collector_from_config  # noqa: E402
from metarl.collection.processes import SubprocessCollector  # noqa: E402
from metarl.config import CollectorConfig  # noqa: E402
from metarl.core.errors import CollectorError  # noqa: E402
from metarl.core.functional import expand_params  # noqa: E402

HAS_RAY = importlib.util.find_spec("ray") is not None
needs_ray = pytest.mark.skipif(not HAS_RAY, reason="ray is not installed (pip install 'metarl[ray]')")
FIELDS = ("observations", "actions", "rewards", "mask", "lengths")
N, E = 4, 3


def task_policy(obs_dim: int, act_dim: int, num_tasks: int = N, seed: int = 0) -> TaskPolicy:
    torch.manual_seed(seed)
    module = GaussianMLPPolicy(obs_dim, act_dim, (16,))
    params = expand_params({k: v.detach() for k, v in module.named_parameters()}, num_tasks)
    return TaskPolicy(module, params, task_noise_seeds(seed, num_tasks))


def assert_same_batch(a, b) -> None:
    for name in FIELDS:
        assert torch.equal(getattr(a, name), getattr(b, name)), name


def remote(backend: str, spec: CollectorSpec, **options):
    """The ``backend`` collector as ``collector_from_config`` builds it from these collector settings."""
    config = CollectorConfig(backend=backend, workers=2, **options)
    collector = collector_from_config(config, spec.env_id, spec.imports, N, spec.episodes_per_task)
    assert type(collector).__name__ == {"subprocess": "SubprocessCollector", "ray": "RayCollector"}[backend]
    return collector


def local_batch(spec: CollectorSpec, tasks, seed: int = 11):
    collector = spec.build(N)
    batch = collector.collect(tasks, task_policy(collector.obs_dim, collector.act_dim), seed=seed)
    collector.close()
    return batch


NAV = CollectorSpec("metarl/Navigation2D-v0", E, imports=("metarl.envs",))
FAULTY = CollectorSpec("metarl-test/Faulty-v0", E, imports=("faulty_envs",))


def nav_tasks():
    from metarl import envs  # noqa: F401
    from metarl.core.tasks import make_task_distribution

    return make_task_distribution("metarl/Navigation2D-v0").sample_tasks(N, np.random.default_rng(3))


def test_subprocess_returns_the_local_batch() -> None:
    tasks = nav_tasks()
    expected = local_batch(NAV, tasks)
    collector = remote("subprocess", NAV)
    try:
        for _ in range(2):  # the second call reuses the running workers
            batch = collector.collect(tasks, task_policy(2, 2), seed=11)
            assert_same_batch(batch, expected)
        assert collector.pop_stats()["collector/worker_restarts"] == 0
    finally:
        collector.close()


@pytest.mark.parametrize("backend", ["subprocess", pytest.param("ray", marks=needs_ray)])
def test_worker_backends_return_the_local_successes_of_an_env_that_reports_them(backend: str) -> None:
    from success_envs import Goal1D

    spec = CollectorSpec("metarl-test/Reach1D-v0", E, imports=("success_envs",))
    tasks = [Goal1D(g) for g in (0.3, -0.2, 4.0, 0.1)]
    expected = local_batch(spec, tasks)
    assert expected.successes is not None and 0 < expected.success_rate() < 1
    collector = remote(backend, spec)
    try:
        batch = collector.collect(tasks, task_policy(1, 1), seed=11)
        assert_same_batch(batch, expected)
        assert torch.equal(batch.successes, expected.successes)
    finally:
        collector.close()


def test_forkserver_and_any_number_of_workers_give_the_same_batch() -> None:
    tasks = nav_tasks()
    expected = local_batch(NAV, tasks)
    collector = SubprocessCollector(NAV, N, workers=3, start_method="forkserver")
    try:
        assert [hi - lo for lo, hi in collector.slices] == [2, 1, 1]
        assert_same_batch(collector.collect(tasks, task_policy(2, 2), seed=11), expected)
    finally:
        collector.close()


def faulty_tasks(tmp_path: Path, fault: str) -> list[FaultTask]:
    marker = tmp_path / f"{fault}.marker"
    marker.touch()
    return [FaultTask(0.1 * n, fault if n == 0 else "", str(marker) if n == 0 else "") for n in range(N)]


@pytest.mark.slow  # over 20 s here; CI runs the slow tests after the default run
@pytest.mark.parametrize("backend", ["subprocess", pytest.param("ray", marks=needs_ray)])
def test_a_killed_or_hung_worker_is_replaced_and_its_episodes_collected_again(
    backend: str, tmp_path: Path
) -> None:
    collector = remote(backend, FAULTY, timeout_s=12.0, max_restarts=2)
    try:
        healthy = [FaultTask(0.1 * n) for n in range(N)]
        collector.collect(healthy, task_policy(2, 1), seed=11)  # start-up outside the faults' deadlines
        for fault in ("kill", "hang"):  # SIGKILL during collection; no answer within timeout_s
            tasks = faulty_tasks(tmp_path, fault)
            expected = local_batch(FAULTY, [FaultTask(t.goal) for t in tasks])
            with pytest.warns(
                RuntimeWarning, match=r"worker 0 \(tasks 0-1\) .*started a new worker"
            ) as record:
                batch = collector.collect(tasks, task_policy(2, 1), seed=11)
            assert ("timeout_s" in str(record[0].message)) == (fault == "hang")
            assert_same_batch(batch, expected)
            assert collector.pop_stats()["collector/worker_restarts"] == 1
            assert not Path(tasks[0].marker).exists(), "the fault fired"
    finally:
        collector.close()


def test_a_starting_worker_gets_startup_timeout_s_on_top_of_timeout_s() -> None:
    """Spawning a worker (importing torch, building envs) takes seconds: 0.3 s alone cannot cover it."""
    tasks = nav_tasks()
    collector = remote("subprocess", NAV, timeout_s=0.3, startup_timeout_s=120.0, max_restarts=0)
    try:
        assert_same_batch(collector.collect(tasks, task_policy(2, 2), seed=11), local_batch(NAV, tasks))
        assert collector.pop_stats()["collector/worker_restarts"] == 0
    finally:
        collector.close()
    collector = remote("subprocess", NAV, timeout_s=0.3, startup_timeout_s=0.0, max_restarts=0)
    with pytest.raises(
        CollectorError, match=r"within collector.timeout_s=0.3 s \(\+ collector.startup_timeout_s=0"
    ):
        collector.collect(tasks, task_policy(2, 2), seed=11)


@pytest.mark.parametrize("backend", ["subprocess", pytest.param("ray", marks=needs_ray)])
def test_repeated_failures_stop_with_one_clear_error(backend: str, tmp_path: Path) -> None:
    tasks = [FaultTask(0.1 * n, "kill-always" if n == 3 else "") for n in range(N)]
    collector = remote(backend, FAULTY, max_restarts=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.raises(
            CollectorError, match=r"worker 1 \(tasks 2-3\).*more than collector.max_restarts=1"
        ):
            collector.collect(tasks, task_policy(2, 1), seed=11)
    collector.close()


def test_an_exception_in_a_worker_is_reported_not_retried() -> None:
    tasks = [FaultTask(0.1 * n, "raise" if n == 1 else "") for n in range(N)]
    collector = remote("subprocess", FAULTY)
    with pytest.raises(CollectorError, match="worker 0 .*ValueError: the faulty env raised on purpose"):
        collector.collect(tasks, task_policy(2, 1), seed=11)
    collector.close()


def test_a_policy_without_select_is_refused() -> None:
    collector = remote("subprocess", NAV)
    with pytest.raises(TypeError, match="select"):
        collector.collect(nav_tasks(), lambda obs: obs, seed=0)
    collector.close()


@needs_ray
def test_ray_returns_the_local_batch() -> None:
    tasks = nav_tasks()
    expected = local_batch(NAV, tasks)
    collector = remote("ray", NAV)
    try:
        assert_same_batch(collector.collect(tasks, task_policy(2, 2), seed=11), expected)
        assert len(set(collector.actor_pids())) == 2
    finally:
        collector.close()
