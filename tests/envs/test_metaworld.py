"""Meta-World's ML1, ML10 and ML45 as task distributions (with the extra), and the error without it."""

from __future__ import annotations

import importlib.util
import json
import pickle

import gymnasium as gym
import numpy as np
import pytest

from metarl import envs  # noqa: F401  (registers the ids)
from metarl.cli import main
from metarl.envs.metaworld import ENV_NAMES, HORIZON, MetaWorldTask, balanced_draw

HAS_METAWORLD = importlib.util.find_spec("metaworld") is not None


def test_every_benchmark_id_is_registered_with_meta_worlds_episode_length() -> None:
    ids = [f"metarl/ML1-{name}" for name in ENV_NAMES] + ["metarl/ML10-v3", "metarl/ML45-v3"]
    assert len(set(ids)) == 52
    for env_id in ids:
        assert gym.spec(env_id).max_episode_steps == HORIZON == 500


@pytest.mark.skipif(HAS_METAWORLD, reason="metaworld is installed: the missing-extra error cannot happen")
def test_a_meta_world_id_without_the_extra_is_a_one_line_error_naming_the_install_command(
    tmp_path, capsys
) -> None:
    args = ["train", "experiments/navigation2d-quick.yaml", "--run-dir", str(tmp_path / "r")]
    assert main([*args, "--set", "env.id=metarl/ML1-reach-v3"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "env.id: 'metarl/ML1-reach-v3'" in err[0] and 'pip install -e ".[metaworld]"' in err[0]
    assert not (tmp_path / "r").exists(), "nothing is written for a config that cannot run"


@pytest.mark.skipif(HAS_METAWORLD, reason="metaworld is installed: the missing-extra error cannot happen")
def test_benchmarking_a_meta_world_id_without_the_extra_is_one_line(tmp_path, capsys) -> None:
    out = tmp_path / "b.json"
    assert main(["benchmark", "--env", "metarl/ML10-v3", "--quick", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and 'pip install -e ".[metaworld]"' in err[0], err
    assert not out.exists()


def test_the_benchmark_names_meta_worlds_environments_as_meta_world_does() -> None:
    from metarl.app.benchmark_metaworld import _benchmark_name, is_metaworld_id

    assert _benchmark_name("metarl/ML1-pick-place-v3") == "pick-place-v3"
    assert _benchmark_name("metarl/ML10-v3") == "ML10" and _benchmark_name("metarl/ML45-v3") == "ML45"
    assert is_metaworld_id("metarl/ML1-reach-v3") and not is_metaworld_id("metarl/AntDir-v1")


def test_an_unknown_meta_world_name_suggests_the_closest(tmp_path, capsys) -> None:
    args = ["train", "experiments/navigation2d-quick.yaml", "--run-dir", str(tmp_path / "r")]
    assert main([*args, "--set", "env.id=metarl/ML1-rech-v3"]) == 2
    assert "did you mean 'metarl/ML1-reach-v3'" in capsys.readouterr().err


@pytest.mark.metaworld
@pytest.mark.skipif(not HAS_METAWORLD, reason='metaworld is not installed (pip install -e ".[metaworld]")')
class TestWithMetaWorld:
    def test_the_names_are_meta_worlds_v3_environments(self) -> None:
        import metaworld

        assert set(ENV_NAMES) == set(metaworld.ALL_V3_ENVIRONMENTS)

    def test_ml1_train_and_test_goals_are_disjoint_and_drawn_from_the_generator_alone(self) -> None:
        env = gym.make("metarl/ML1-reach-v3").unwrapped
        train = env.sample_tasks(30, np.random.default_rng(0))
        test = env.sample_test_tasks(30, np.random.default_rng(0))
        assert {t.split for t in train} == {"train"} and {t.split for t in test} == {"test"}
        assert {t.env_name for t in train + test} == {"reach-v3"}
        assert not {t.data for t in train} & {t.data for t in test}, "no test goal is a training goal"
        assert train == env.sample_tasks(30, np.random.default_rng(0))
        assert pickle.loads(pickle.dumps(train[0])) == train[0]

    def test_evaluation_takes_every_test_goal_once_and_ml10s_test_environments_evenly(self) -> None:
        ml1 = gym.make("metarl/ML1-reach-v3").unwrapped.sample_test_tasks(50, np.random.default_rng(3))
        assert len({t.index for t in ml1}) == 50, "ML1's 50 test goals, each once"
        ml10 = gym.make("metarl/ML10-v3").unwrapped.sample_test_tasks(50, np.random.default_rng(3))
        counts = {name: sum(t.env_name == name for t in ml10) for name in {t.env_name for t in ml10}}
        assert sorted(counts.values()) == [10] * 5 and len({(t.env_name, t.index) for t in ml10}) == 50

    def test_meta_train_evaluation_takes_training_goals_evenly(self) -> None:
        env = gym.make("metarl/ML10-v3").unwrapped
        train = env.sample_evaluation_tasks(20, np.random.default_rng(3), "train")
        assert {t.split for t in train} == {"train"}
        assert sorted(sum(t.env_name == n for t in train) for n in {t.env_name for t in train}) == [2] * 10
        with pytest.raises(ValueError, match="'validation' is not train or test"):
            env.sample_evaluation_tasks(2, np.random.default_rng(0), "validation")

    def test_stepping_a_task_equals_meta_worlds_own_environment(self) -> None:
        import metaworld

        env = gym.make("metarl/ML1-push-v3")
        task = env.unwrapped.sample_tasks(1, np.random.default_rng(1))[0]
        env.unwrapped.task = task
        theirs = metaworld.ML1("push-v3", seed=0)
        own = theirs.train_classes["push-v3"]()
        own.set_task(theirs.train_tasks[task.index])
        obs, _ = env.reset(seed=5)
        expected, _ = own.reset(seed=5)
        np.testing.assert_allclose(obs, expected)
        rng = np.random.default_rng(2)
        for _ in range(20):
            action = rng.uniform(-1, 1, 4).astype(np.float32)
            obs, reward, _, _, info = env.step(action)
            expected, expected_reward, _, _, expected_info = own.step(action)
            np.testing.assert_allclose(obs, expected)
            assert reward == pytest.approx(expected_reward) and info["success"] == expected_info["success"]

    def test_an_episode_ends_at_500_steps(self) -> None:
        env = gym.make("metarl/ML1-reach-v3")
        env.unwrapped.task = env.unwrapped.sample_tasks(1, np.random.default_rng(0))[0]
        env.reset(seed=0)
        for t in range(HORIZON):
            _, _, terminated, truncated, _ = env.step(env.action_space.sample())
            assert not terminated and truncated == (t == HORIZON - 1)

    def test_ml10_draws_from_ten_training_and_five_test_environments_and_switches_between_them(self) -> None:
        env = gym.make("metarl/ML10-v3")
        train = env.unwrapped.sample_tasks(200, np.random.default_rng(0))
        test = env.unwrapped.sample_test_tasks(100, np.random.default_rng(0))
        assert len({t.env_name for t in train}) == 10 and len({t.env_name for t in test}) == 5
        assert not {t.env_name for t in train} & {t.env_name for t in test}
        for task in (train[0], test[0], train[1]):
            env.unwrapped.task = task
            obs, _ = env.reset(seed=0)
            assert obs.shape == (39,)
            env.step(env.action_space.sample())

    def test_the_collector_records_meta_world_successes(self) -> None:
        import torch

        from metarl.collection import make_collector

        collector = make_collector("metarl/ML1-reach-v3", 2, 2, mode="sync", horizon=50)
        tasks = gym.make("metarl/ML1-reach-v3").unwrapped.sample_tasks(2, np.random.default_rng(0))
        batch = collector.collect(tasks, lambda o: torch.zeros(*o.shape[:-1], 4), seed=0)
        assert batch.observations.shape == (2, 50, 2, 39) and batch.successes is not None
        assert batch.successes.shape == (2, 2)
        collector.close()

    def test_the_benchmark_times_our_collector_and_meta_worlds_vector_envs_in_one_run(self, tmp_path) -> None:
        out = tmp_path / "bench.json"
        assert main(["benchmark", "--env", "metarl/ML1-reach-v3", "--quick", "--out", str(out)]) == 0
        rows = json.loads(out.read_text())["rows"]
        assert set(rows) == {
            "metarl-sync",
            "metarl-async",
            "metarl-sync-own-code",
            "metaworld-sync",
            "metaworld-async",
        }
        for name, row in rows.items():
            assert "error" not in row, (name, row)
            assert row["steps_per_s"] > 0 and row["num_envs"] == 4

    def test_render_names_a_goal_by_its_index_in_the_split_as_adaptation_csv_does(self) -> None:
        from metarl.core.errors import ConfigError
        from metarl.viz.render import parse_task

        env = gym.make("metarl/ML1-reach-v3")
        task = parse_task(["goal=3"], env)
        assert (task.env_name, task.split, task.index) == ("reach-v3", "test", 3)
        assert env.unwrapped.task == task
        assert parse_task(["goal=3,split=train"], env).split == "train"
        for spec, message in (
            (["goal=50"], "outside 0..49"),
            (["goal=x"], "not an integer"),
            (["split=test"], "missing goal"),
            (["goal=1,color=red"], "unknown field 'color'"),
            (["env=push-v3,goal=1"], "one of 'reach-v3', not 'push-v3'"),
        ):
            with pytest.raises(ConfigError, match=message):
                parse_task(spec, env)
        ml10 = gym.make("metarl/ML10-v3")
        name = ml10.unwrapped.sample_test_tasks(1, np.random.default_rng(0))[0]
        with pytest.raises(ConfigError, match="missing env"):
            parse_task([f"goal={name.index}"], ml10)
        assert parse_task([f"env={name.env_name},goal={name.index}"], ml10) == name

    def test_the_quick_config_trains_and_evaluates_by_meta_worlds_protocol(self, tmp_path) -> None:
        from pathlib import Path

        from metarl.evaluation import SUCCESS_COLUMN, read_adaptation_csv

        config = Path(__file__).resolve().parents[2] / "experiments" / "metaworld-ml1-quick.yaml"
        settings = ["meta.iterations=1", "meta.batch_size=2"]
        settings += ["evaluation.tasks=2"]
        argv = ["train", str(config), "--run-dir", str(tmp_path / "run")]
        assert main([*argv, *(a for item in settings for a in ("--set", item))]) == 0
        summary = json.loads((tmp_path / "run" / "adaptation.json").read_text())
        assert summary["query_episodes"] == 1 and summary["query_action"] == "mean"
        assert summary["split"] == "test" and set(summary["success"]) == {"maml"}
        rates, tasks = read_adaptation_csv(tmp_path / "run", SUCCESS_COLUMN)
        assert rates["maml"].shape == (2, 2) and set(rates["maml"].flatten().tolist()) <= {0.0, 1.0}
        assert {t["split"] for t in tasks} == {"test"}

    def test_a_task_of_another_environment_is_refused_by_ml1(self) -> None:
        env = gym.make("metarl/ML1-reach-v3").unwrapped
        with pytest.raises(ValueError, match="ML1 of 'reach-v3'"):
            env.task = MetaWorldTask("push-v3", "train", 0, b"")


def test_a_balanced_draw_alternates_environments_and_repeats_a_goal_only_after_all() -> None:
    tasks = [
        MetaWorldTask(name, "test", i, b"") for name, count in (("a", 3), ("b", 2)) for i in range(count)
    ]
    drawn = balanced_draw(tasks, 7, np.random.default_rng(0))
    assert [t.env_name for t in drawn[:5]] == ["a", "b", "a", "b", "a"]
    assert {(t.env_name, t.index) for t in drawn[:5]} == {(t.env_name, t.index) for t in tasks}
    assert drawn[5:] == drawn[:2]
    assert drawn == balanced_draw(tasks, 7, np.random.default_rng(0))
    assert drawn != balanced_draw(tasks, 7, np.random.default_rng(1))


def test_evaluation_draws_the_asked_split_where_a_distribution_has_splits() -> None:
    from metarl.core.tasks import sample_evaluation_tasks

    class WithSplits:
        def sample_tasks(self, n, rng):
            return [("new", float(x)) for x in rng.uniform(size=n)]

        def sample_evaluation_tasks(self, n, rng, split):
            return [(split, float(x)) for x in rng.uniform(size=n)]

    class WithoutSplits(WithSplits):
        sample_evaluation_tasks = None

    rng = np.random.default_rng
    assert {s for s, _ in sample_evaluation_tasks(WithSplits(), 5, rng(0))} == {"test"}
    assert {s for s, _ in sample_evaluation_tasks(WithSplits(), 5, rng(0), "train")} == {"train"}
    for split in ("test", "train"):
        assert {s for s, _ in sample_evaluation_tasks(WithoutSplits(), 5, rng(0), split)} == {"new"}
