"""The oracle baseline: a policy that sees its task, trained with PPO or TRPO, evaluated unadapted.

With TRPO (the paper's oracle), :class:`TaskFeatureCollector` gives the learner episodes whose observations
carry the task, and MAML's training loop trains it. With PPO, SB3's PPO trains on envs that append the task
to the observation and draw a new task at every reset (the caller builds them, e.g. with
``envs.wrappers.TaskInObservation``), with observations normalised by ``VecNormalize``; the trained actor is
then turned into this package's :class:`GaussianMLPPolicy` (the normalisation folded into its first layer).
Either way the oracle is evaluated by the same collector and the same evaluation code as MAML, on the same
tasks.
"""

from __future__ import annotations

import csv
import dataclasses
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor, nn

from metarl.collection import Collector, PolicyFn
from metarl.core.functional import Params
from metarl.core.types import EpisodeBatch, Task

from .policies import ACTIVATIONS, GaussianMLPPolicy


def fold_normalization(policy: GaussianMLPPolicy, mean: np.ndarray, var: np.ndarray, eps: float) -> None:
    """Make ``policy(obs)`` equal its old output on ``(obs - mean) / sqrt(var + eps)`` (in place).

    The first linear layer absorbs the affine map: ``W' = W / std``, ``b' = b - W' mean``.
    """
    first = cast(nn.Linear, policy.body[0])
    std = torch.as_tensor(np.sqrt(var + eps), dtype=first.weight.dtype)
    shift = torch.as_tensor(mean, dtype=first.weight.dtype)
    with torch.no_grad():
        first.weight.div_(std)
        first.bias.sub_(first.weight @ shift)


def policy_from_ppo(model: Any, obs_mean: np.ndarray, obs_var: np.ndarray, eps: float) -> GaussianMLPPolicy:
    """Copy an SB3 PPO ``MlpPolicy`` actor (Gaussian, unsquashed) into a :class:`GaussianMLPPolicy`.

    Args:
        model: a trained ``stable_baselines3.PPO`` whose ``policy_kwargs`` match the copy: ``net_arch`` with a
            ``pi`` list, an activation from :data:`~agents.policies.ACTIVATIONS`, a state-independent log-std.
        obs_mean: ``VecNormalize``'s observation mean ``[D]`` the model was trained with.
        obs_var: its observation variance ``[D]``.
        eps: its epsilon.
    """
    sb3 = model.policy
    linears = [m for m in sb3.mlp_extractor.policy_net if isinstance(m, nn.Linear)]
    hidden = tuple(m.out_features for m in linears)
    activation = next(
        name
        for name, cls in ACTIVATIONS.items()
        if any(isinstance(m, cls) for m in sb3.mlp_extractor.policy_net)
    )
    policy = GaussianMLPPolicy(linears[0].in_features, sb3.action_net.out_features, hidden, activation)
    ours = [m for m in policy.body if isinstance(m, nn.Linear)]
    with torch.no_grad():
        for dst, src in zip(ours, linears, strict=True):
            dst.weight.copy_(src.weight)
            dst.bias.copy_(src.bias)
        policy.mean.weight.copy_(sb3.action_net.weight)
        policy.mean.bias.copy_(sb3.action_net.bias)
        policy.log_std.copy_(sb3.log_std)
    fold_normalization(policy, obs_mean, obs_var, eps)
    return policy


class _ProgressCallback:
    """SB3 callback factory: a tqdm bar with timesteps and mean episode return, and a CSV row per rollout."""

    @staticmethod
    def make(total: int, csv_path: Path, enabled: bool):
        from stable_baselines3.common.callbacks import BaseCallback
        from tqdm import tqdm

        class Callback(BaseCallback):
            def _on_training_start(self) -> None:
                self.bar = tqdm(total=total, desc="oracle PPO", unit="step", disable=not enabled)
                self.start = time.perf_counter()
                self.handle = csv_path.open("w", newline="")
                self.writer = csv.writer(self.handle)
                self.writer.writerow(["timesteps", "episode_return_mean", "episodes", "time_s"])

            def _on_step(self) -> bool:
                self.bar.update(self.training_env.num_envs)
                return True

            def _on_rollout_end(self) -> None:
                assert self.model.ep_info_buffer is not None, "SB3 makes the buffer before the first rollout"
                returns = [info["r"] for info in self.model.ep_info_buffer]
                mean = float(np.mean(returns)) if returns else float("nan")
                self.bar.set_postfix(ret=f"{mean:.1f}")
                self.writer.writerow(
                    [self.num_timesteps, mean, len(returns), round(time.perf_counter() - self.start, 2)]
                )
                self.handle.flush()

            def _on_training_end(self) -> None:
                self.bar.close()
                self.handle.close()

        return Callback()


def train_oracle_ppo(
    make_env: Callable[[], gym.Env],
    *,
    timesteps: int,
    num_envs: int,
    hidden_sizes: tuple[int, ...],
    activation: str,
    gamma: float,
    seed: int,
    out_dir: Path,
    ppo_kwargs: dict[str, Any],
    progress: bool = True,
) -> GaussianMLPPolicy:
    """Train PPO on ``num_envs`` copies of ``make_env()``; return the actor as a :class:`GaussianMLPPolicy`.

    Writes ``out_dir/oracle_ppo.zip`` (the SB3 model), ``out_dir/vecnormalize.pkl`` and
    ``out_dir/metrics.csv`` (a row per PPO rollout: timesteps, mean episode return, episodes, seconds).

    Args:
        make_env: builds one env whose observation includes the task (and that draws tasks at reset).
        timesteps: total env steps.
        num_envs: envs stepped together (``DummyVecEnv``).
        hidden_sizes: actor and critic hidden layers.
        activation: their nonlinearity, a key of :data:`~agents.policies.ACTIVATIONS`.
        gamma: discount.
        seed: seeds PPO and the envs.
        out_dir: where the files go.
        ppo_kwargs: further ``stable_baselines3.PPO`` arguments (``n_steps``, ``batch_size``, ...).
        progress: show a progress bar.
    """
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    venv = make_vec_env(make_env, n_envs=num_envs, seed=seed)
    venv = VecNormalize(venv, norm_obs=True, norm_reward=True, clip_obs=1e6, gamma=gamma)
    model = PPO(
        "MlpPolicy",
        venv,
        gamma=gamma,
        seed=seed,
        device="cpu",
        verbose=0,
        policy_kwargs={
            "net_arch": {"pi": list(hidden_sizes), "vf": list(hidden_sizes)},
            "activation_fn": ACTIVATIONS[activation],
        },
        **ppo_kwargs,
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    model.learn(timesteps, callback=_ProgressCallback.make(timesteps, out_dir / "metrics.csv", progress))
    model.save(out_dir / "oracle_ppo.zip")
    venv.save(str(out_dir / "vecnormalize.pkl"))
    obs_rms = cast(Any, venv.obs_rms)  # SB3 types it as one RunningMeanStd or a dict of them (dict spaces)
    return policy_from_ppo(model, obs_rms.mean, obs_rms.var, venv.epsilon)


class WithTaskFeatures:
    """A collector policy that appends each task's features to its observations before acting.

    ``[N, E, D] -> policy([N, E, D + K])``; picklable and sliceable (``select``) when ``policy`` is, so the
    worker backends can sample it.

    Args:
        policy: acts on task-augmented observations ``[N, E, D + K]``.
        features: ``[N, K]``, the features of the ``N`` tasks in order (:func:`envs.wrappers.task_features`).
    """

    def __init__(self, policy: PolicyFn, features: Tensor) -> None:
        """See the class docstring."""
        self.policy = policy
        self.features = features

    def __call__(self, observations: Tensor) -> Tensor:
        """``[N, E, D] -> [N, E, act_dim]``."""
        n, e, _ = observations.shape
        features = self.features.to(observations.dtype)[:, None, :].expand(n, e, -1)
        return self.policy(torch.cat([observations, features], dim=-1))

    def select(self, start: int, stop: int) -> WithTaskFeatures:
        """The policy of tasks ``start..stop-1``."""
        select = getattr(self.policy, "select", None)
        if select is None:
            raise TypeError(f"{type(self.policy).__name__} cannot be cut into task slices (no select)")
        return WithTaskFeatures(select(start, stop), self.features[start:stop])


class TaskFeatureCollector:
    """A collector whose episodes carry each task's features in their observations (the TRPO oracle's).

    Wraps any :class:`~metarl.collection.Collector`: the policy it is given acts on ``[observation, task
    features]`` and the batch's observations are ``[N, T, E, D + K]`` (features on real steps, zero on
    padding), so a learner trains the task-told policy with the same losses as MAML's.

    Args:
        collector: collects the env's own observations ``[.., D]``.
        features: ``task -> [K]`` float32, e.g. :func:`envs.wrappers.task_features`.
        num_features: ``K``.
    """

    def __init__(
        self, collector: Collector, features: Callable[[Task], np.ndarray], num_features: int
    ) -> None:
        """See the class docstring."""
        self.collector = collector
        self.features = features
        self.num_tasks = collector.num_tasks
        self.episodes_per_task = collector.episodes_per_task
        self.horizon = collector.horizon
        self.obs_dim = collector.obs_dim + num_features
        self.act_dim = collector.act_dim

    def collect(self, tasks: Sequence[Task], policy: PolicyFn, seed: int) -> EpisodeBatch:
        """As the wrapped collector's, with the task's features appended to every real observation."""
        features = torch.as_tensor(np.stack([self.features(task) for task in tasks]))
        batch = self.collector.collect(tasks, WithTaskFeatures(policy, features), seed)
        n, t, e, _ = batch.observations.shape
        shown = features.to(batch.observations.dtype)[:, None, None, :].expand(n, t, e, -1)
        observations = torch.cat([batch.observations, shown * batch.mask[..., None]], dim=-1)
        return dataclasses.replace(batch, observations=observations)

    def pop_stats(self) -> dict[str, float]:
        """The wrapped collector's counters."""
        return self.collector.pop_stats()

    def close(self) -> None:
        """Close the wrapped collector."""
        self.collector.close()


class OracleAdapter:
    """Evaluate a task-conditioned policy through the adaptation-curve interface, without adapting it.

    Args:
        learner: anything with ``initial_params`` and ``policy_fn`` over a policy whose input is
            ``[observation, task features]`` (e.g. ``MAMLTRPO`` holding the oracle policy).
        features: ``[N, K]`` the features of the ``N`` tasks being evaluated, in order.
    """

    def __init__(self, learner: Any, features: Tensor) -> None:
        """See the class docstring."""
        self.learner = learner
        self.features = features

    def initial_params(self, num_tasks: int) -> Params:
        """The oracle's parameters with a task axis."""
        return self.learner.initial_params(num_tasks)

    def policy_fn(self, params: Params, generator: torch.Generator, deterministic: bool = False) -> PolicyFn:
        """Append each task's features to its observations ``[N, E, D] -> [N, E, D + K]``, then act."""
        return WithTaskFeatures(self.learner.policy_fn(params, generator, deterministic), self.features)

    def adapt(self, params: Params, batch: EpisodeBatch, step_size: float) -> Params:
        """The oracle is not adapted: the parameters come back unchanged."""
        return params
