"""Success rates in adaptation curves and files (envs that report success, e.g. Meta-World's).

A hand-made adapter on ``metarl-test/Reach1D-v0`` (a point moved by its action for 10 steps, success within
0.5 of the goal) makes every value known in advance.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor

from metarl.collection import make_collector
from metarl.core.types import EpisodeBatch
from metarl.evaluation import SUCCESS_COLUMN, adaptation_curve, read_adaptation_csv, write_adaptation_files

REPO = Path(__file__).resolve().parents[2]


class ConstantAction:
    """Each task's action is one number, ``params["a"] [N]``; a step of size ``s`` adds ``s`` to it."""

    def initial_params(self, num_tasks: int) -> dict[str, Tensor]:
        return {"a": torch.zeros(num_tasks)}

    def policy_fn(self, params: dict[str, Tensor], generator: torch.Generator) -> Callable[[Tensor], Tensor]:
        return lambda obs: params["a"][:, None, None].expand(*obs.shape[:-1], 1).clone()

    def adapt(self, params: dict[str, Tensor], batch: EpisodeBatch, step_size: float) -> dict[str, Tensor]:
        return {"a": params["a"] + step_size}


def _curve(goals: list[float], step_sizes: list[float]):
    import success_envs

    collector = make_collector("metarl-test/Reach1D-v0", len(goals), 2, mode="sync")
    tasks = [success_envs.Goal1D(g) for g in goals]
    curve = adaptation_curve(
        ConstantAction(), collector, tasks, step_sizes, np.random.default_rng(0), torch.Generator()
    )
    return curve, tasks


def test_adaptation_curve_gives_each_tasks_success_rate_after_each_step() -> None:
    # action 0, then 0.5, then 1 per step: x after t of the 10 steps is 0, t / 2, t. Goal 3 is reached with
    # a = 0.5 (t = 6) and a = 1; goal 7 only with a = 1 (a = 0.5 ends at x = 5); goal 30 never.
    curve, _ = _curve([3.0, 7.0, 30.0], [0.5, 0.5])
    assert curve.successes is not None
    assert curve.successes.tolist() == [[0.0, 1.0, 1.0], [0.0, 0.0, 1.0], [0.0, 0.0, 0.0]]
    # returns: minus the distance summed over the 10 steps; goal 3 with a = 0 stays 3 away
    assert curve.returns[0, 0].item() == pytest.approx(-30.0)
    assert curve.returns[0, 1].item() == pytest.approx(-sum(abs(t / 2 - 3.0) for t in range(1, 11)))


def test_an_env_without_success_gives_no_success_curve() -> None:
    from test_collect import LengthTask

    collector = make_collector("metarl-test/Countdown-v0", 1, 1, mode="sync")
    curve = adaptation_curve(
        ConstantAction(), collector, [LengthTask(3)], [1.0], np.random.default_rng(0), torch.Generator()
    )
    assert curve.successes is None and curve.returns.shape == (1, 2)


def test_adaptation_files_hold_success_beside_return_and_read_back(tmp_path) -> None:
    curve, tasks = _curve([3.0, 7.0, 30.0], [0.5, 0.5])
    other = torch.full_like(curve.returns, -50.0)
    summary = write_adaptation_files(
        tmp_path,
        {"maml": curve.returns, "no-success": other},
        tasks,
        {"env_id": "metarl-test/Reach1D-v0"},
        successes={"maml": curve.successes},
    )
    assert [r["mean"] for r in summary["success"]["maml"]] == pytest.approx([0.0, 1 / 3, 2 / 3])
    assert "no-success" not in summary["success"]
    assert json.loads((tmp_path / "adaptation.json").read_text())["success"] == summary["success"]
    with (tmp_path / "adaptation.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert rows[0][SUCCESS_COLUMN] == "0.000000"
    assert {r[SUCCESS_COLUMN] for r in rows if r["method"] == "no-success"} == {""}
    returns, _ = read_adaptation_csv(tmp_path)
    rates, _ = read_adaptation_csv(tmp_path, SUCCESS_COLUMN)
    assert set(returns) == {"maml", "no-success"} and set(rates) == {"maml"}
    torch.testing.assert_close(rates["maml"], curve.successes)
    torch.testing.assert_close(returns["maml"], curve.returns)
    assert (tmp_path / "adaptation.png").stat().st_size > 0


def test_files_without_success_have_no_success_column(tmp_path) -> None:
    curve, tasks = _curve([3.0, 6.0], [1.0])
    summary = write_adaptation_files(tmp_path, {"maml": curve.returns}, tasks, {"env_id": "x"})
    assert "success" not in summary
    header = (tmp_path / "adaptation.csv").read_text().splitlines()[0]
    assert SUCCESS_COLUMN not in header
    assert read_adaptation_csv(tmp_path, SUCCESS_COLUMN)[0] == {}


def test_evaluate_writes_success_for_maml_the_random_baseline_and_compared_runs(
    tmp_path, capsys: pytest.CaptureFixture[str]
) -> None:
    from conftest import tiny_settings

    from metarl.cli import main

    envs_file = Path(__file__).with_name("success_envs.py")
    settings = tiny_settings(
        "env.id=metarl-test/Reach1D-v0",
        f"env.imports=[{envs_file}]",
        "meta.batch_size=3",
        "meta.iterations=1",
    )
    runs = [tmp_path / "a", tmp_path / "b"]
    for seed, run in enumerate(runs):
        argv = ["train", str(REPO / "experiments/navigation2d-quick.yaml"), "--run-dir", str(run)]
        assert main([*argv, *(a for s in settings for a in ("--set", s)), "--seed", str(seed)]) == 0
    args = ["--tasks", "4", "--steps", "1", "--episodes", "3"]
    capsys.readouterr()
    assert main(["evaluate", str(runs[0]), *args, "--baselines", "random"]) == 0
    assert "success rate (maml, 4 new tasks" in capsys.readouterr().out
    summary = json.loads((runs[0] / "adaptation.json").read_text())
    assert set(summary["success"]) == {"maml", "random"}
    rates, _ = read_adaptation_csv(runs[0], SUCCESS_COLUMN)
    for method in ("maml", "random"):  # each a fraction of 3 episodes, the mean over the 4 tasks
        thirds = rates[method] * 3
        torch.testing.assert_close(thirds, thirds.round(), atol=1e-5, rtol=0)
        means = [r["mean"] for r in summary["success"][method]]
        torch.testing.assert_close(torch.tensor(means), rates[method].double().mean(dim=0).float())
    assert summary["split"] == "test"
    assert main(["evaluate", str(runs[0]), *args, "--split", "train", "--out", str(tmp_path / "train")]) == 0
    assert json.loads((tmp_path / "train" / "adaptation.json").read_text())["split"] == "train"
    assert main(["evaluate", str(runs[1]), *args, "--compare", str(runs[0])]) == 0
    merged = json.loads((runs[1] / "adaptation.json").read_text())
    assert set(merged["success"]) == {"maml", "random"}  # maml its own, random from the compared run
    compared = [r["mean"] for r in merged["success"]["random"]]  # read back from its CSV's 6 decimals
    assert compared == pytest.approx([r["mean"] for r in summary["success"]["random"]], abs=1e-6)


def test_meta_world_tasks_are_written_as_environment_split_and_goal_and_compared_by_them(tmp_path) -> None:
    from metarl.envs.metaworld import MetaWorldTask
    from metarl.evaluation import same_tasks

    tasks = [MetaWorldTask("reach-v3", "test", i, b"\x80pickled") for i in (4, 17)]
    write_adaptation_files(tmp_path, {"maml": torch.zeros(2, 2)}, tasks, {"env_id": "metarl/ML1-reach-v3"})
    header = (tmp_path / "adaptation.csv").read_text().splitlines()[0]
    assert header == "method,task_index,task_env,task_split,task_goal,step,mean_return"  # no pickled data
    _, fields = read_adaptation_csv(tmp_path)
    assert fields == [
        {"env": "reach-v3", "split": "test", "goal": 4.0},
        {"env": "reach-v3", "split": "test", "goal": 17.0},
    ]
    assert same_tasks(fields, tasks)
    assert not same_tasks(fields, [tasks[0], MetaWorldTask("reach-v3", "test", 18, b"")])
    assert not same_tasks(fields, [MetaWorldTask("push-v3", "test", 4, b""), tasks[1]])


def test_evaluate_batch_unit_option_equals_a_checkpoint_whose_config_says_so(tmp_path) -> None:
    from conftest import tiny_settings

    from metarl.cli import main
    from metarl.training.checkpoints import load_checkpoint

    settings = tiny_settings("meta.batch_size=3", "meta.iterations=1", "collector.batch_unit=steps")
    run = tmp_path / "run"
    argv = ["train", str(REPO / "experiments/navigation2d-quick.yaml"), "--run-dir", str(run)]
    assert main([*argv, *(a for s in settings for a in ("--set", s))]) == 0
    # the same checkpoint with its config edited by hand to count episodes
    state = load_checkpoint(run / "checkpoints" / "latest.pt")
    state["config"]["collector"]["batch_unit"] = "episodes"
    edited = tmp_path / "edited" / "policy.pt"
    edited.parent.mkdir()
    torch.save(state, edited)
    args = ["--tasks", "3", "--steps", "1", "--episodes", "2"]
    assert main(["evaluate", str(run), *args, "--batch-unit", "episodes", "--out", str(tmp_path / "a")]) == 0
    assert main(["evaluate", str(edited), *args, "--out", str(tmp_path / "b")]) == 0
    a, b = (json.loads((tmp_path / d / "adaptation.json").read_text()) for d in ("a", "b"))
    assert a["batch_unit"] == b["batch_unit"] == "episodes"
    assert (tmp_path / "a" / "adaptation.csv").read_text() == (tmp_path / "b" / "adaptation.csv").read_text()
    assert main(["evaluate", str(run), *args, "--out", str(tmp_path / "c")]) == 0  # the run's own: steps
    assert json.loads((tmp_path / "c" / "adaptation.json").read_text())["batch_unit"] == "steps"


class NoisyConstantAction(ConstantAction):
    """As :class:`ConstantAction`, with unit Gaussian noise unless ``deterministic`` (the mean action)."""

    def policy_fn(self, params, generator, deterministic: bool = False):
        seed = int(torch.randint(0, 2**62, (1,), generator=generator))

        def act(obs: Tensor) -> Tensor:
            mean = params["a"][:, None, None].expand(*obs.shape[:-1], 1)
            if deterministic:
                return mean.clone()
            return mean + torch.randn(mean.shape, generator=torch.Generator().manual_seed(seed))

        return act


def test_query_episodes_measure_each_step_with_the_mean_action_and_support_only_adapts() -> None:
    import success_envs

    goals = [3.0, 7.0, 30.0]
    tasks = [success_envs.Goal1D(g) for g in goals]
    support = make_collector("metarl-test/Reach1D-v0", len(goals), 2, mode="sync")
    query = make_collector("metarl-test/Reach1D-v0", len(goals), 3, mode="sync")
    args = (NoisyConstantAction(), support, tasks, [0.5, 0.5], np.random.default_rng(0), torch.Generator())
    curve = adaptation_curve(*args, query=query, query_action="mean")
    # mean actions 0, 0.5, 1: the noise-free values of ConstantAction, whatever the support episodes did
    assert curve.successes is not None
    assert curve.successes.tolist() == [[0.0, 1.0, 1.0], [0.0, 0.0, 1.0], [0.0, 0.0, 0.0]]
    assert curve.returns[0, 0].item() == pytest.approx(-30.0)
    assert curve.returns[0, 1].item() == pytest.approx(-sum(abs(t / 2 - 3.0) for t in range(1, 11)))
    # the support episodes are not measured: sampled query episodes differ from the mean action's
    args = (NoisyConstantAction(), support, tasks, [0.5, 0.5], np.random.default_rng(0), torch.Generator())
    sampled = adaptation_curve(*args, query=query, query_action="sample")
    assert not torch.equal(sampled.returns, curve.returns)
    # without query episodes, the curve is the support episodes' mean (the MAML paper's protocol), as before
    plain = adaptation_curve(
        NoisyConstantAction(), support, tasks, [0.5, 0.5], np.random.default_rng(0), torch.Generator()
    )
    again = adaptation_curve(
        NoisyConstantAction(), support, tasks, [0.5, 0.5], np.random.default_rng(0), torch.Generator()
    )
    assert torch.equal(plain.returns, again.returns) and not torch.equal(plain.returns, curve.returns)


def test_task_policy_mean_action_is_the_policy_mean_and_keeps_the_generator_stream() -> None:
    from metarl.agents.policies import GaussianMLPPolicy, task_batched_forward, task_policy

    policy = GaussianMLPPolicy(3, 2, hidden_sizes=(8,))
    params = {k: v.detach()[None].expand(4, *v.shape).clone() for k, v in policy.named_parameters()}
    obs = torch.randn(4, 5, 3)
    gens = [torch.Generator().manual_seed(7) for _ in range(2)]
    mean_policy = task_policy(policy, params, gens[0], deterministic=True)
    sampling = task_policy(policy, params, gens[1])
    mean, _ = task_batched_forward(policy, params, obs)
    torch.testing.assert_close(mean_policy(obs), mean, rtol=0, atol=0)
    torch.testing.assert_close(mean_policy.select(1, 3)(obs[1:3]), mean[1:3], rtol=0, atol=0)
    assert not torch.equal(sampling(obs), mean)
    assert torch.equal(gens[0].get_state(), gens[1].get_state())  # one draw each: what follows is the same


def test_mean_query_action_without_query_episodes_is_refused_with_the_fix() -> None:
    from metarl.config import load_config
    from metarl.core.errors import ConfigError

    with pytest.raises(
        ConfigError, match=r"evaluation.query_action: 'mean' with evaluation.query_episodes 0"
    ):
        load_config(REPO / "experiments/navigation2d-quick.yaml", ["evaluation.query_action=mean"])


def test_evaluate_query_options_reach_the_files(tmp_path) -> None:
    from conftest import tiny_settings

    from metarl.cli import main

    envs_file = Path(__file__).with_name("success_envs.py")
    settings = tiny_settings(
        "env.id=metarl-test/Reach1D-v0",
        f"env.imports=[{envs_file}]",
        "meta.batch_size=3",
        "meta.iterations=1",
    )
    run = tmp_path / "run"
    argv = ["train", str(REPO / "experiments/navigation2d-quick.yaml"), "--run-dir", str(run)]
    assert main([*argv, *(a for s in settings for a in ("--set", s))]) == 0
    args = [
        "--tasks",
        "3",
        "--steps",
        "1",
        "--episodes",
        "2",
        "--query-episodes",
        "3",
        "--query-action",
        "mean",
    ]
    assert main(["evaluate", str(run), *args, "--out", str(tmp_path / "q")]) == 0
    summary = json.loads((tmp_path / "q" / "adaptation.json").read_text())
    assert summary["query_episodes"] == 3 and summary["query_action"] == "mean"
    rates, _ = read_adaptation_csv(tmp_path / "q", SUCCESS_COLUMN)
    thirds = rates["maml"] * 3  # each a fraction of the 3 query episodes
    torch.testing.assert_close(thirds, thirds.round(), atol=1e-5, rtol=0)
