"""metarl.evaluation: the summary and paired statistics every adaptation table quotes, checked by hand."""

from __future__ import annotations

import math

import pytest
import torch

from metarl.evaluation import paired_difference, summarize


def test_summarize_gives_mean_and_sample_standard_error_per_step() -> None:
    curve = torch.tensor([[1.0, 4.0], [3.0, 4.0], [5.0, 10.0]])
    rows = summarize(curve)
    assert [r["step"] for r in rows] == [0, 1]
    assert rows[0]["mean"] == pytest.approx(3.0)
    assert rows[0]["stderr"] == pytest.approx(2.0 / math.sqrt(3))  # sample std of 1, 3, 5 is 2
    assert rows[1]["mean"] == pytest.approx(6.0)
    assert rows[1]["stderr"] == pytest.approx(math.sqrt(12.0) / math.sqrt(3))
    assert rows[0]["ci95_high"] - rows[0]["mean"] == pytest.approx(1.96 * rows[0]["stderr"])


def test_paired_difference_is_the_mean_and_standard_error_of_per_task_differences() -> None:
    a = torch.tensor([3.0, 1.0, 7.0, 2.0])
    b = torch.tensor([1.0, 2.0, 4.0, 2.0])  # differences 2, -1, 3, 0
    d = paired_difference(a, b)
    assert d["mean"] == pytest.approx(1.0)
    assert d["stderr"] == pytest.approx(math.sqrt(10.0 / 3.0) / 2.0)  # sample variance 10/3, n = 4
    assert d["ahead"] == 2 and d["n"] == 4  # a tie is not ahead


def test_pairing_cancels_task_difficulty_that_separate_means_keep() -> None:
    difficulty = torch.linspace(-100.0, 100.0, 40)
    noise = torch.tensor([0.5, -0.5] * 20)
    a, b = difficulty + 1.0 + noise, difficulty
    d = paired_difference(a, b)
    assert d["mean"] == pytest.approx(1.0)
    assert d["ahead"] == 40
    separate = math.hypot(summarize(a[:, None])[0]["stderr"], summarize(b[:, None])[0]["stderr"])
    assert d["stderr"] < separate / 50


@pytest.mark.parametrize("shapes", [((3,), (4,)), ((1,), (1,)), ((2, 2), (2, 2))])
def test_paired_difference_refuses_unpaired_shapes(shapes) -> None:
    with pytest.raises(ValueError, match="paired_difference needs"):
        paired_difference(torch.zeros(shapes[0]), torch.zeros(shapes[1]))
