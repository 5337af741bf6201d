"""Linear feature baseline: features, exact least-squares recovery, masking and per-task independence."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from metarl.agents.baselines import (
    LinearFeatureBaseline,
    compact_steps,
    fit_linear_baseline,
    linear_baseline_features,
)
from metarl.core.returns import masked_mean

REPO = Path(__file__).resolve().parents[2]
N, T, E, D = 2, 30, 4, 3


def _observations(seed: int, shape: tuple[int, ...] = (N, T, E, D)) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return 2 * torch.rand(shape, generator=gen, dtype=torch.float64) - 1


def _ragged_mask(lengths: list[int]) -> torch.Tensor:
    """``[N, T, E]`` with episode ``e`` of every task lasting ``lengths[e]`` steps."""
    mask = (torch.arange(T)[:, None] < torch.tensor(lengths)[None, :]).double()
    return mask.expand(N, T, E).clone()


def test_feature_shape():
    assert linear_baseline_features(_observations(0)).shape == (N, T, E, 2 * D + 4)


def test_features_are_obs_obs_squared_time_polynomial_and_one():
    obs = _observations(0)
    features = linear_baseline_features(obs)
    torch.testing.assert_close(features[..., :D], obs)
    torch.testing.assert_close(features[..., D : 2 * D], obs.pow(2))
    t = (torch.arange(T, dtype=torch.float64) / 100.0).view(1, T, 1).expand(N, T, E)
    torch.testing.assert_close(features[..., 2 * D], t)
    torch.testing.assert_close(features[..., 2 * D + 1], t.pow(2))
    torch.testing.assert_close(features[..., 2 * D + 2], t.pow(3))
    assert torch.equal(features[..., 2 * D + 3], torch.ones(N, T, E, dtype=torch.float64))


def test_observations_are_clipped_to_ten():
    obs = torch.tensor([-50.0, 3.0, 50.0]).view(1, 1, 3)
    features = linear_baseline_features(obs)
    torch.testing.assert_close(features[0, 0, :3], torch.tensor([-10.0, 3.0, 10.0]))
    torch.testing.assert_close(features[0, 0, 3:6], torch.tensor([100.0, 9.0, 100.0]))


def test_fit_recovers_exact_weights_of_linear_targets():
    features = linear_baseline_features(_observations(0))
    true_weights = torch.randn(N, 2 * D + 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    targets = torch.einsum("ntef,nf->nte", features, true_weights)
    weights = fit_linear_baseline(features, targets, torch.ones(N, T, E, dtype=torch.float64), reg=1e-10)
    assert weights.shape == (N, 2 * D + 4)
    assert weights.dtype == torch.float64
    # The t, t^2, t^3, 1 columns are nearly collinear for t < 0.3, so the ridge bias shows at about 3e-6.
    torch.testing.assert_close(weights, true_weights, atol=5e-5, rtol=0)


def test_padding_rows_do_not_change_the_fit():
    obs = _observations(0)
    mask = _ragged_mask([30, 20, 12, 5])
    targets = torch.randn(N, T, E, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    garbage_obs = torch.where(mask[..., None].bool(), obs, torch.full_like(obs, 7.0))
    garbage_targets = torch.where(mask.bool(), targets, torch.full_like(targets, 1e6))
    clean = fit_linear_baseline(linear_baseline_features(obs), targets * mask, mask, reg=1e-8)
    dirty = fit_linear_baseline(linear_baseline_features(garbage_obs), garbage_targets, mask, reg=1e-8)
    torch.testing.assert_close(dirty, clean)
    # Same as ridge regression on the real rows only.
    features = linear_baseline_features(obs)
    for n in range(N):
        x, y = features[n][mask[n].bool()], targets[n][mask[n].bool()]
        expected = torch.linalg.solve(x.T @ x + 1e-8 * torch.eye(x.shape[1], dtype=x.dtype), x.T @ y)
        torch.testing.assert_close(dirty[n], expected)


def test_fit_predict_is_zero_on_padding_with_target_shape_and_dtype():
    mask = _ragged_mask([30, 20, 12, 5]).float()
    targets = torch.randn(N, T, E, generator=torch.Generator().manual_seed(1))
    values = LinearFeatureBaseline().fit_predict(_observations(0).float(), targets, mask)
    assert values.shape == (N, T, E)
    assert values.dtype == torch.float32
    assert (values[mask == 0] == 0).all()
    assert (values[mask == 1] != 0).any()


def test_fit_predict_reproduces_linear_targets():
    obs = _observations(0)
    true_weights = torch.randn(N, 2 * D + 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    targets = torch.einsum("ntef,nf->nte", linear_baseline_features(obs), true_weights)
    values = LinearFeatureBaseline(reg=1e-10).fit_predict(
        obs, targets, torch.ones(N, T, E, dtype=torch.float64)
    )
    torch.testing.assert_close(values, targets, atol=1e-6, rtol=0)


def test_fit_predict_tasks_are_fitted_independently():
    obs = _observations(0)
    mask = _ragged_mask([30, 20, 12, 5])
    targets = torch.randn(N, T, E, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    baseline = LinearFeatureBaseline()
    before = baseline.fit_predict(obs, targets, mask)
    obs2, targets2 = obs.clone(), targets.clone()
    obs2[1] = _observations(5, (T, E, D))
    targets2[1] = 100 * torch.randn(T, E, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    after = baseline.fit_predict(obs2, targets2, mask)
    torch.testing.assert_close(after[0], before[0])
    assert not torch.allclose(after[1], before[1])


@pytest.mark.parametrize("reg", [0.0, -1e-5])
def test_non_positive_reg_raises(reg):
    with pytest.raises(ValueError, match=rf"baseline reg: must be > 0, got {reg}"):
        LinearFeatureBaseline(reg=reg)


def test_fit_equals_the_normal_equations_solution_in_float64():
    gen = torch.Generator().manual_seed(3)
    features = torch.randn(3, 50, 4, 9, generator=gen, dtype=torch.float64)
    targets = torch.randn(3, 50, 4, generator=gen, dtype=torch.float64)
    weights = fit_linear_baseline(features, targets, torch.ones(3, 50, 4), reg=0.1)
    x, y = features.flatten(1, 2), targets.flatten(1, 2)
    expected = torch.linalg.solve(x.mT @ x + 0.1 * torch.eye(9, dtype=x.dtype), (x.mT @ y[..., None])[..., 0])
    torch.testing.assert_close(weights, expected, rtol=1e-10, atol=1e-12)


def test_ant_sized_fit_with_two_threads_finishes():
    """Regression: batched LU (``torch.linalg.solve``) with 2 MKL threads hung on 40 Ant-sized systems."""
    code = (
        "import torch; torch.set_num_threads(2); torch.manual_seed(0)\n"
        "from agents.baselines import fit_linear_baseline\n"
        "f = torch.randn(40, 200, 20, 214); f[..., 150:] = 0\n"
        "w = fit_linear_baseline(f, torch.randn(40, 200, 20), torch.ones(40, 200, 20))\n"
        "assert torch.isfinite(w).all(); print('ok')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO, check=False
    )
    assert done.stdout.strip() == "ok" and "DLASWP" not in done.stderr, done.stderr[-500:]


def test_compact_steps_puts_each_task_s_real_steps_first_in_order_on_one_axis():
    mask = torch.zeros(2, 3, 2)
    mask[0, :2, 0] = 1  # task 0: 2 + 1 real steps
    mask[0, :1, 1] = 1
    mask[1, :3, 1] = 1  # task 1: 3 real steps in its second episode only
    obs = torch.arange(2 * 3 * 2, dtype=torch.float32).view(2, 3, 2, 1) * mask[..., None]
    adv = obs[..., 0] * 10
    obs_c, adv_c, mask_c = (compact_steps((obs, obs, adv, mask))[i] for i in (0, 2, 3))
    assert obs_c.shape == (2, 3, 1, 1) and mask_c.shape == (2, 3, 1)
    # flattened (t, e) order: task 0 keeps (0,0), (0,1), (1,0); task 1 keeps (0,1), (1,1), (2,1)
    assert obs_c[..., 0, 0].tolist() == [[0.0, 1.0, 2.0], [7.0, 9.0, 11.0]]
    assert adv_c[..., 0].tolist() == [[0.0, 10.0, 20.0], [70.0, 90.0, 110.0]]
    assert mask_c.sum(dim=(1, 2)).tolist() == [3.0, 3.0]


def test_compact_steps_pads_the_shorter_tasks_and_keeps_their_masked_means():
    mask = _ragged_mask([30, 5, 0, 12])
    mask[1, 20:] = 0  # task 1 shorter still
    x = _observations(3, (N, T, E)) * mask
    data = (x[..., None], x[..., None], x, mask)
    compact = compact_steps(data)
    assert compact[3].shape == (N, 47, 1)  # the longer task's 30 + 5 + 12 real steps
    assert compact[3][1].sum() == 20 + 5 + 12
    torch.testing.assert_close(masked_mean(compact[2], compact[3]), masked_mean(x, mask))


def test_compact_steps_returns_a_full_batch_as_it_is():
    data = (_observations(0), _observations(1), torch.ones(N, T, E), torch.ones(N, T, E))
    assert compact_steps(data) is data


def test_the_fit_on_real_steps_only_equals_the_fit_on_the_padded_batch():
    mask = _ragged_mask([30, 7, 0, 19])
    obs = _observations(4) * mask[..., None]
    targets = _observations(5, (N, T, E)) * mask
    features = linear_baseline_features(obs)
    x = (features * mask[..., None]).flatten(1, 2)
    y = (targets * mask).flatten(1, 2)
    gram = x.transpose(1, 2) @ x + 1e-5 * torch.eye(x.shape[-1], dtype=x.dtype)
    expected = torch.linalg.solve(gram, (x.transpose(1, 2) @ y[..., None]))[..., 0]
    torch.testing.assert_close(fit_linear_baseline(features, targets, mask, 1e-5), expected)


def test_fit_predict_on_real_steps_equals_the_padded_computation():
    mask = _ragged_mask([30, 3, 0, 17])
    mask[0, 9:, 0] = 0  # the tasks differ in their number of real steps
    obs = _observations(6) * mask[..., None]
    targets = _observations(7, (N, T, E)) * mask
    features = linear_baseline_features(obs)
    weights = fit_linear_baseline(features, targets, mask, 1e-5)
    expected = torch.einsum("ntef,nf->nte", features, weights) * mask
    torch.testing.assert_close(LinearFeatureBaseline(1e-5).fit_predict(obs, targets, mask), expected)
