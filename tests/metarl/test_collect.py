"""The vector collector: shapes, dtypes, tasks per sub-env, masks and lengths for ragged episodes, seeding."""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import pytest
import torch

from metarl import envs
from metarl.collection import VectorCollector, make_collector, make_vector_env
from metarl.core.errors import ConfigError
from metarl.envs.navigation import sample_goals


@dataclass(frozen=True)
class LengthTask:
    length: int


class CountdownEnv(gym.Env):
    """Terminates after ``task.length`` steps; reward = step index + 10 * length; obs = [step, length]."""

    def __init__(self) -> None:
        self.observation_space = gym.spaces.Box(-100, 100, (2,), np.float32)
        self.action_space = gym.spaces.Box(-1, 1, (1,), np.float32)
        self.task = LengthTask(1)
        self.t = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.array([0, self.task.length], np.float32), {}

    def step(self, action):
        assert np.all(np.abs(action) <= 1), "the collector clips actions to the action space"
        reward = self.t + 10 * self.task.length
        self.t += 1
        return (
            np.array([self.t, self.task.length], np.float32),
            float(reward),
            self.t >= self.task.length,
            False,
            {},
        )


gym.register("metarl-test/Countdown-v0", entry_point=CountdownEnv, max_episode_steps=6)


def big_actions(obs: torch.Tensor) -> torch.Tensor:
    return torch.full((*obs.shape[:-1], 1), 5.0)


def test_ragged_episodes_give_masks_lengths_and_zero_padding() -> None:
    collector = make_collector("metarl-test/Countdown-v0", num_tasks=3, episodes_per_task=2, mode="sync")
    batch = collector.collect([LengthTask(2), LengthTask(6), LengthTask(4)], big_actions, seed=0)
    assert batch.observations.shape == (3, 6, 2, 2) and batch.observations.dtype == torch.float32
    assert batch.actions.shape == (3, 6, 2, 1)
    assert batch.rewards.shape == batch.mask.shape == (3, 6, 2)
    assert batch.lengths.tolist() == [[2, 2], [6, 6], [4, 4]]
    expected_mask = torch.tensor([[1, 1, 0, 0, 0, 0], [1] * 6, [1, 1, 1, 1, 0, 0]], dtype=torch.float32)
    torch.testing.assert_close(batch.mask[:, :, 0], expected_mask)
    # reward t + 10 * length on real steps, zero on padding; observation t is the one acted in
    torch.testing.assert_close(batch.rewards[0, :, 1], torch.tensor([20.0, 21.0, 0, 0, 0, 0]))
    torch.testing.assert_close(batch.observations[1, :, 0, 0], torch.arange(6, dtype=torch.float32))
    torch.testing.assert_close(batch.episode_returns()[2], torch.tensor([166.0, 166.0]))  # 40 + 41 + 42 + 43
    # unclipped actions are stored on real steps (log-probabilities need the sampled values); padding is 0
    torch.testing.assert_close(batch.actions[..., 0], 5.0 * batch.mask)
    torch.testing.assert_close(batch.observations, batch.observations * batch.mask[..., None])


def test_collector_stops_early_when_every_episode_ended() -> None:
    collector = make_collector("metarl-test/Countdown-v0", num_tasks=1, episodes_per_task=2, mode="sync")
    calls = []
    collector.collect([LengthTask(3)], lambda o: (calls.append(1), big_actions(o))[1], seed=0)
    assert len(calls) == 3


def test_policy_sees_task_major_observations() -> None:
    collector = make_collector("metarl-test/Countdown-v0", num_tasks=2, episodes_per_task=3, mode="sync")
    seen = []
    collector.collect(
        [LengthTask(1), LengthTask(5)], lambda o: (seen.append(o.clone()), big_actions(o))[1], seed=0
    )
    assert seen[0].shape == (2, 3, 2)
    assert torch.all(seen[0][0, :, 1] == 1) and torch.all(seen[0][1, :, 1] == 5)


def test_same_seed_same_batch_on_navigation() -> None:
    tasks = sample_goals(4, np.random.default_rng(0))

    def run(seed: int) -> torch.Tensor:
        collector = make_collector("metarl/Navigation2D-v0", 4, 3)
        g = torch.Generator().manual_seed(seed)
        return collector.collect(tasks, lambda o: torch.randn(o.shape, generator=g) * 0.1, seed=seed).rewards

    torch.testing.assert_close(run(1), run(1), rtol=0, atol=0)
    assert not torch.equal(run(1), run(2))


def test_different_tasks_give_different_rewards() -> None:
    collector = make_collector("metarl/Navigation2D-v0", 2, 2)
    tasks = [envs.GoalTask(0.4, 0.4), envs.GoalTask(-0.4, -0.4)]
    batch = collector.collect(tasks, lambda o: torch.full(o.shape, 0.01), seed=0)
    assert not torch.allclose(batch.rewards[0], batch.rewards[1])


def test_bad_sizes_and_modes_are_rejected() -> None:
    env = make_vector_env("metarl/Navigation2D-v0", 4)
    with pytest.raises(ConfigError, match="need 3 x 2"):
        VectorCollector(env, 3, 2, 100)
    with pytest.raises(ConfigError, match="must be >= 1"):
        VectorCollector(env, 0, 2, 100)
    with pytest.raises(ConfigError, match="collector.vectorization: 'threads' is not one of"):
        make_vector_env("metarl/Navigation2D-v0", 4, "threads")
    with pytest.raises(ConfigError, match="did you mean 'metarl/Navigation2D-v0'"):
        make_vector_env("metarl/Navigation2d-v0", 4)
    with pytest.raises(ValueError, match="expected 4 tasks, got 1"):
        VectorCollector(env, 4, 1, 100).set_tasks([envs.GoalTask(0, 0)])


@pytest.mark.parametrize(("rescale", "expected"), [(True, 0.05), (False, 0.1)])
def test_actions_are_rescaled_to_the_bounds_then_clipped(rescale: bool, expected: float) -> None:
    collector = make_collector("metarl/Navigation2D-v0", 1, 2, rescale_actions=rescale)
    batch = collector.collect([envs.GoalTask(0.5, 0.5)], lambda o: torch.full(o.shape, 0.5), seed=0)
    torch.testing.assert_close(batch.observations[0, 1], torch.full((2, 2), expected))
    assert torch.all(batch.actions[batch.mask.bool()] == 0.5)  # the policy's own output is stored


def test_fast_mujoco_env_runs_without_autoreset_and_gives_the_sync_env_batch() -> None:
    env = make_vector_env("metarl/AntVel-v0", 6)
    assert env.metadata["autoreset_mode"] == gym.vector.AutoresetMode.DISABLED
    env.close()
    tasks = [envs.VelocityTask(0.5), envs.VelocityTask(2.5)]
    batches = []
    for mode in ("auto", "sync"):
        collector = make_collector("metarl/AntVel-v0", 2, 3, mode, horizon=120)
        g = torch.Generator().manual_seed(0)
        batches.append(
            collector.collect(tasks, lambda o, g=g: 2 * torch.randn(*o.shape[:-1], 8, generator=g), 4)
        )
        collector.close()
    fast, sync = batches
    assert (sync.lengths < 120).any(), "some ants fall: episodes of unequal length"
    torch.testing.assert_close(fast.lengths, sync.lengths)
    torch.testing.assert_close(fast.mask, sync.mask)
    torch.testing.assert_close(fast.rewards, sync.rewards, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(fast.observations, sync.observations, rtol=1e-5, atol=1e-4)


def test_disabled_autoreset_is_refused_unless_finished_sub_envs_stay_frozen() -> None:
    env = gym.make_vec(
        "metarl/Navigation2D-v0", 2, vectorization_mode="sync",
        vector_kwargs={"autoreset_mode": gym.vector.AutoresetMode.DISABLED},
    )  # fmt: skip
    with pytest.raises(ConfigError, match="got DISABLED"):
        VectorCollector(env, 1, 2, 100)
    env.close()


def test_step_budget_adds_episodes_by_the_sequential_rule_until_each_task_has_e_times_t_steps() -> None:
    # horizon 6, E = 2: a budget of 12 steps per task. Episodes of length L: the sequential rule "start
    # another while short" gives ceil(12 / L) episodes: 2, 6, 3 and 12.
    collector = make_collector("metarl-test/Countdown-v0", 4, 2, mode="sync", batch_unit="steps")
    lengths = (6, 2, 4, 1)
    batch = collector.collect([LengthTask(k) for k in lengths], big_actions, seed=0)
    assert batch.lengths.shape == (4, 12) and batch.rewards.shape == (4, 6, 12)
    expected = [[k] * -(-12 // k) + [0] * (12 - -(-12 // k)) for k in lengths]
    assert batch.lengths.tolist() == expected
    assert (batch.lengths.sum(dim=1) == 12).all()
    torch.testing.assert_close(batch.mask.sum(dim=1), batch.lengths.to(torch.float32))
    # every real episode is a whole one (rewards t + 10 L from t = 0); empty ones are zeros throughout
    torch.testing.assert_close(batch.rewards[1, :2, 5], torch.tensor([20.0, 21.0]))
    assert not batch.rewards[0, :, 2:].any() and not batch.observations[0, :, 2:].any()
    assert collector.pop_stats() == {
        "collector/unstable_resets": 0.0, "collector/worker_restarts": 0.0,
        "collector/extra_episodes": 0.0 + 4 + 1 + 10, "collector/budget_short": 0.0,
    }  # fmt: skip


def test_step_budget_is_the_episode_batch_when_no_episode_ends_early() -> None:
    tasks = [LengthTask(6), LengthTask(6)]
    collectors = [
        make_collector("metarl-test/Countdown-v0", 2, 3, mode="sync", batch_unit=unit)
        for unit in ("episodes", "steps")
    ]
    batches = [collector.collect(tasks, big_actions, seed=0) for collector in collectors]
    for name in ("observations", "actions", "rewards", "mask", "lengths"):
        assert torch.equal(getattr(batches[0], name), getattr(batches[1], name))


def test_mean_returns_leave_out_empty_episodes() -> None:
    collector = make_collector("metarl-test/Countdown-v0", 2, 2, mode="sync", batch_unit="steps")
    batch = collector.collect([LengthTask(6), LengthTask(3)], big_actions, seed=0)
    assert batch.lengths.tolist() == [[6, 6, 0, 0], [3, 3, 3, 3]]
    # length 6: 60 + ... + 65 = 375; length 3: 30 + 31 + 32 = 93
    torch.testing.assert_close(batch.mean_returns(), torch.tensor([375.0, 93.0]))
    assert batch.mean_episode_return() == pytest.approx((2 * 375 + 4 * 93) / 6)


def test_fast_mujoco_env_resets_only_the_needed_sub_envs_and_gives_the_sync_env_step_budget_batch() -> None:
    tasks = [envs.VelocityTask(0.5), envs.VelocityTask(2.5)]
    batches, extra = [], []
    for mode in ("auto", "sync"):
        collector = make_collector("metarl/AntVel-v1", 2, 3, mode, horizon=60, batch_unit="steps")
        g = torch.Generator().manual_seed(0)
        batches.append(
            collector.collect(tasks, lambda o, g=g: 3 * torch.randn(*o.shape[:-1], 8, generator=g), 4)
        )
        extra.append(collector.pop_stats()["collector/extra_episodes"])
        collector.close()
    fast, sync = batches
    assert extra[0] == extra[1] > 0, "some ants fall: extra episodes are run"
    assert (fast.lengths.sum(dim=1) >= 3 * 60).all()
    torch.testing.assert_close(fast.lengths, sync.lengths)
    torch.testing.assert_close(fast.mask, sync.mask)
    torch.testing.assert_close(fast.rewards, sync.rewards, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(fast.observations, sync.observations, rtol=1e-5, atol=1e-4)


def test_unknown_batch_unit_is_refused_with_the_field_and_the_choices() -> None:
    with pytest.raises(ConfigError, match=r"batch_unit: 'samples' is not one of \['episodes', 'steps'\]"):
        make_collector("metarl-test/Countdown-v0", 1, 1, mode="sync", batch_unit="samples")


def test_episodes_of_an_env_that_reports_success_record_whether_any_step_succeeded() -> None:
    import success_envs

    collector = make_collector("metarl-test/Reach1D-v0", 3, 2, mode="sync")
    assert collector.reports_success
    # one unit per step: goals 3.2 and -2.9 are reached at steps 3 (+1) and 3 (-1); 9.7 is never within 0.5
    tasks = [success_envs.Goal1D(3.2), success_envs.Goal1D(-2.9), success_envs.Goal1D(9.7 + 1)]

    def toward_goal(obs: torch.Tensor) -> torch.Tensor:
        direction = torch.tensor([1.0, -1.0, 0.1])[:, None, None]
        return direction.expand(*obs.shape[:-1], 1)

    batch = collector.collect(tasks, toward_goal, seed=0)
    assert batch.successes is not None and batch.successes.tolist() == [[1.0, 1.0], [1.0, 1.0], [0.0, 0.0]]
    assert batch.success_rate() == pytest.approx(2 / 3)
    torch.testing.assert_close(batch.task_success_rates(), torch.tensor([1.0, 1.0, 0.0]))
    assert (
        make_collector("metarl-test/Countdown-v0", 1, 1, mode="sync")
        .collect([LengthTask(2)], big_actions, 0)
        .successes
        is None
    ), "an env that does not report success gives no successes"


def test_step_budget_keeps_each_episodes_success_with_it() -> None:
    import success_envs

    collector = make_collector("metarl-test/Reach1D-v0", 2, 2, mode="sync", batch_unit="steps")
    batch = collector.collect(
        [success_envs.Goal1D(2.0), success_envs.Goal1D(-8.0)], lambda o: torch.ones(*o.shape), 0
    )
    assert batch.lengths.tolist() == [[10, 10], [10, 10]]  # no episode ends early: no extra episodes
    assert batch.successes.tolist() == [[1.0, 1.0], [0.0, 0.0]]
