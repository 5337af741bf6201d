"""NaN and inf during training: detected in every quantity, re-collected once, then a one-line stop."""

from __future__ import annotations

import csv
import hashlib
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))  # faulty_envs, imported by env.imports

from conftest import tiny_settings  # noqa: E402

import metarl.agents.maml_trpo  # noqa: E402
from metarl.agents.maml_trpo import MAMLTRPO  # noqa: E402
from metarl.agents.policies import GaussianMLPPolicy  # noqa: E402
from metarl.cli import main  # noqa: E402
from metarl.config import InnerConfig, MetaConfig, TRPOConfig  # noqa: E402
from metarl.core.errors import NonFiniteError  # noqa: E402
from metarl.core.trpo import LineSearchResult  # noqa: E402
from metarl.core.types import EpisodeBatch, MetaBatch  # noqa: E402
from metarl.training.rl import non_finite_quantity  # noqa: E402

TINY = tiny_settings("logging.checkpoint_every=1", "env.imports=[faulty_envs]")


def train(env_id: str, run: Path, *sets: str) -> list[str]:
    config = run.parent / "config.yaml"
    config.write_text(f"env:\n  id: {env_id}\n")
    argv = ["train", str(config), "--run-dir", str(run)]
    for item in [*TINY, *sets]:
        argv += ["--set", item]
    return argv


def make_learner() -> MAMLTRPO:
    torch.manual_seed(0)
    policy = GaussianMLPPolicy(2, 2, (5,), "tanh").double()
    return MAMLTRPO(policy, InnerConfig(step_size=0.3), MetaConfig(), TRPOConfig(max_kl=0.05))


def meta_batch_with(field: str | None = None, value: float = 0.0) -> MetaBatch:
    g = torch.Generator().manual_seed(0)
    n, t, e = 3, 6, 4

    def batch() -> EpisodeBatch:
        obs = torch.randn(n, t, e, 2, generator=g, dtype=torch.float64)
        return EpisodeBatch(
            observations=obs,
            actions=torch.randn(n, t, e, 2, generator=g, dtype=torch.float64),
            rewards=obs.sum(-1),
            mask=torch.ones(n, t, e, dtype=torch.float64),
            lengths=torch.full((n, e), t),
        )

    support, query = batch(), batch()
    if field is not None:
        getattr(query, field)[1, 2, 0] = value
    return MetaBatch(list(range(n)), (support,), query)


def rows(run: Path) -> list[dict[str, str]]:
    with (run / "metrics.csv").open() as handle:
        return list(csv.DictReader(handle))


def test_a_transient_nan_is_collected_again_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    marker = tmp_path / "nan.marker"
    marker.touch()
    monkeypatch.setenv("METARL_TEST_MARKER", str(marker))
    run = tmp_path / "run"
    with pytest.warns(RuntimeWarning, match="iteration 1: observations hold NaN or inf; collecting"):
        assert main(train("metarl-test/NaNOnce-v0", run, "meta.iterations=2")) == 0
    assert not marker.exists()
    assert [r["collector/recollections"] for r in rows(run)] == ["1.0", "0.0"]


def test_a_persistent_nan_stops_with_one_line_and_keeps_the_last_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    switch = tmp_path / "switch"
    monkeypatch.setenv("METARL_TEST_SWITCH", str(switch))
    run = tmp_path / "run"
    assert main(train("metarl-test/NaNIfSwitch-v0", run, "meta.iterations=2")) == 0
    latest = run / "checkpoints" / "latest.pt"
    digest = hashlib.sha256(latest.read_bytes()).hexdigest()
    capsys.readouterr()
    switch.touch()
    with pytest.warns(RuntimeWarning, match="iteration 3: observations"):
        code = main(["train", "--resume", str(run), "--set", "meta.iterations=4"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert err[0].startswith("run directory: ") and len(err) == 2  # the stop itself is one line
    assert err[1].startswith("metarl: stopped: iteration 3: observations hold NaN or inf")
    assert "latest.pt is kept" in err[1]
    assert hashlib.sha256(latest.read_bytes()).hexdigest() == digest
    assert [r["iteration"] for r in rows(run)] == ["1", "2"]


@pytest.mark.parametrize(("field", "quantity"), [("observations", "observations"), ("rewards", "rewards")])
def test_non_finite_episodes_are_named(field: str, quantity: str) -> None:
    batch = meta_batch_with(field, float("inf"))
    assert non_finite_quantity(batch) == quantity


def test_the_learner_refuses_non_finite_advantages_gradients_and_parameters(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    learner = make_learner()
    with pytest.raises(NonFiniteError, match="advantages") as info:
        learner.step(meta_batch_with("rewards", float("nan")))
    assert info.value.quantity == "advantages"
    with torch.no_grad():
        learner.policy.mean.bias[0] = float("nan")
    with pytest.raises(NonFiniteError, match="gradient"):
        learner.step(meta_batch_with())
    learner = make_learner()
    before = {k: v.clone() for k, v in learner.policy.state_dict().items()}

    def exploding_search(evaluate, params, *args):
        return LineSearchResult(params + float("inf"), True, 1, 0.0, 0.0)

    monkeypatch.setattr(metarl.agents.maml_trpo, "backtracking_line_search", exploding_search)
    with pytest.raises(NonFiniteError, match="parameters"):
        learner.step(meta_batch_with())
    for k, v in learner.policy.state_dict().items():
        assert torch.equal(v, before[k]), "a refused update leaves the policy as it was"


def test_a_run_stopped_before_its_first_checkpoint_resumes_from_iteration_0(tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert main(train("metarl-test/Faulty-v0", run, "meta.iterations=2")) == 0
    expected = [{k: v for k, v in r.items() if not k.startswith("time/")} for r in rows(run)]
    for path in (run / "checkpoints").iterdir():
        path.unlink()
    with pytest.warns(UserWarning, match="has no checkpoint yet .* training it from iteration 0"):
        assert main(["train", "--resume", str(run)]) == 0
    assert [{k: v for k, v in r.items() if not k.startswith("time/")} for r in rows(run)] == expected


def test_training_survives_a_worker_killed_mid_collection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "kill.marker"
    monkeypatch.setenv("METARL_TEST_MARKER", str(marker))  # absent: nothing is killed
    reference = tmp_path / "reference"
    assert main(train("metarl-test/KillOnce-v0", reference, "meta.iterations=2")) == 0
    marker.touch()  # now the first worker to step such a task kills itself, once
    run = tmp_path / "run"
    sets = ["meta.iterations=2", "collector.backend=subprocess", "collector.workers=2"]
    with pytest.warns(RuntimeWarning, match=r"worker \d \(tasks \d-\d\) \(pid \d+\) was killed by signal 9"):
        assert main(train("metarl-test/KillOnce-v0", run, *sets)) == 0
    assert not marker.exists()
    ours, theirs = rows(run), rows(reference)
    assert [r["collector/worker_restarts"] for r in ours] == ["1.0", "0.0"]
    for r in (*ours, *theirs):
        r.pop("collector/worker_restarts")
    strip = [{k: v for k, v in r.items() if not k.startswith("time/")} for r in ours]
    assert strip == [{k: v for k, v in r.items() if not k.startswith("time/")} for r in theirs]
