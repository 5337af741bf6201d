"""Seeds -> generators: reproducible, and training and evaluation streams never coincide."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from metarl.core.seeding import evaluation_generators, training_generators


def _draws(generators: tuple[np.random.Generator, torch.Generator]) -> tuple[np.ndarray, torch.Tensor]:
    rng, gen = generators
    return rng.random(8), torch.randn(8, generator=gen)


@pytest.mark.parametrize("make", [training_generators, evaluation_generators], ids=["training", "evaluation"])
@pytest.mark.parametrize("seed", [0, 1, 12345])
def test_same_seed_gives_same_draws(make, seed):
    np_a, torch_a = _draws(make(seed))
    np_b, torch_b = _draws(make(seed))
    np.testing.assert_array_equal(np_a, np_b)
    assert torch.equal(torch_a, torch_b)


@pytest.mark.parametrize("make", [training_generators, evaluation_generators], ids=["training", "evaluation"])
def test_different_seeds_give_different_draws(make):
    np_a, torch_a = _draws(make(0))
    np_b, torch_b = _draws(make(1))
    assert not np.array_equal(np_a, np_b)
    assert not torch.equal(torch_a, torch_b)


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_training_and_evaluation_streams_differ_for_same_seed(seed):
    np_train, torch_train = _draws(training_generators(seed))
    np_eval, torch_eval = _draws(evaluation_generators(seed))
    assert not np.array_equal(np_train, np_eval)
    assert not torch.equal(torch_train, torch_eval)


def test_streams_do_not_use_the_plain_seed():
    np_train, torch_train = _draws(training_generators(0))
    assert not np.array_equal(np_train, np.random.default_rng(0).random(8))
    assert not torch.equal(torch_train, torch.randn(8, generator=torch.Generator().manual_seed(0)))


@pytest.mark.parametrize("make", [training_generators, evaluation_generators], ids=["training", "evaluation"])
def test_torch_generator_is_seeded_deterministically(make):
    _, gen_a = make(5)
    _, gen_b = make(5)
    assert gen_a.initial_seed() == gen_b.initial_seed()
    assert 0 <= gen_a.initial_seed() < 2**63
    assert torch.equal(gen_a.get_state(), gen_b.get_state())


def test_generators_ignore_global_rng_state():
    np.random.seed(0)
    torch.manual_seed(0)
    first = _draws(training_generators(3))
    np.random.seed(1)
    torch.manual_seed(1)
    np.random.random(10)
    torch.randn(10)
    second = _draws(training_generators(3))
    np.testing.assert_array_equal(first[0], second[0])
    assert torch.equal(first[1], second[1])
