"""Few-shot task distributions: the paper's sinusoids; Omniglot and MiniImagenet on generated folders."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from metarl.core.errors import ConfigError
from metarl.envs.fewshot import SinusoidTasks, make_fewshot_tasks
from metarl.envs.fewshot.miniimagenet import load_miniimagenet
from metarl.envs.fewshot.omniglot import load_omniglot


def test_sinusoid_shapes_ranges_and_targets() -> None:
    batch = SinusoidTasks().sample(200, np.random.default_rng(0), shots=5, query_shots=7)
    assert batch.support_inputs.shape == (200, 5, 1) and batch.query_targets.shape == (200, 7, 1)
    assert batch.support_inputs.dtype == np.float32
    x = np.concatenate([batch.support_inputs, batch.query_inputs], axis=1)
    assert x.min() >= -5 and x.max() <= 5
    amplitudes = np.array([t.amplitude for t in batch.tasks])
    phases = np.array([t.phase for t in batch.tasks])
    assert 0.1 <= amplitudes.min() and amplitudes.max() <= 5.0
    assert 0 <= phases.min() and phases.max() <= np.pi
    expected = amplitudes[:, None, None] * np.sin(batch.query_inputs - phases[:, None, None])
    np.testing.assert_allclose(batch.query_targets, expected, atol=1e-5)


def test_sinusoid_same_rng_same_tasks() -> None:
    a = SinusoidTasks().sample(3, np.random.default_rng(4))
    b = SinusoidTasks().sample(3, np.random.default_rng(4))
    c = SinusoidTasks().sample(3, np.random.default_rng(5))
    assert a.tasks == b.tasks and a.tasks != c.tasks
    np.testing.assert_array_equal(a.query_inputs, b.query_inputs)


def test_omniglot_splits_shapes_and_labels(omniglot_root: Path) -> None:
    tasks = load_omniglot(omniglot_root, ways=5, train_classes=8)
    assert len(tasks.splits["train"].names) == 8 and len(tasks.splits["test"].names) == 6
    assert tasks.splits["train"].names[0] == "Alpha/character01"  # background first, sorted
    assert tasks.splits["test"].names[0] == "Gamma/character01"
    assert tasks.input_shape == (1, 28, 28) and tasks.num_outputs == 5
    batch = tasks.sample(3, np.random.default_rng(0), split="train", shots=2, query_shots=3)
    assert batch.support_inputs.shape == (3, 10, 1, 28, 28) and batch.query_inputs.shape == (3, 15, 1, 28, 28)
    assert batch.support_inputs.dtype == np.float32 and 0 <= batch.support_inputs.min() <= 1
    for labels, per_class in ((batch.support_targets, 2), (batch.query_targets, 3)):
        assert labels.dtype == np.int64
        for row in labels:
            assert Counter(row.tolist()) == dict.fromkeys(range(5), per_class)


def test_labels_are_permuted_between_tasks(omniglot_root: Path) -> None:
    """The same class gets different labels in different tasks: labels follow the random pick order."""
    tasks = load_omniglot(omniglot_root, ways=5, train_classes=8)
    batch = tasks.sample(200, np.random.default_rng(1), split="train", shots=1, query_shots=1)
    label_of_class: dict[str, set[int]] = {}
    for task in batch.tasks:
        for label, cls in enumerate(task.classes.split()):
            label_of_class.setdefault(cls, set()).add(label)
    assert all(len(labels) > 1 for labels in label_of_class.values())
    assert len(label_of_class) == 32  # 8 characters x 4 rotations all appear


def test_rotations_are_new_classes(omniglot_root: Path) -> None:
    tasks = load_omniglot(omniglot_root, ways=5, train_classes=8)
    rng = np.random.default_rng(0)
    for _ in range(20):
        batch = tasks.sample(1, rng, split="train", shots=1, query_shots=1)
        for label, cls in enumerate(batch.tasks[0].classes.split()):
            char, quarter_turns = divmod(int(cls), 4)
            data = tasks.splits["train"]
            originals = data.images[data.offsets[char] : data.offsets[char + 1]].astype(np.float32) / 255
            image = np.rot90(batch.support_inputs[0, label, 0], -quarter_turns)
            assert any(np.array_equal(image, o) for o in originals)


def test_sampling_is_seeded(omniglot_root: Path) -> None:
    tasks = load_omniglot(omniglot_root, ways=5, train_classes=8)
    a, b = (tasks.sample(2, np.random.default_rng(7), split="test", shots=1, query_shots=2) for _ in range(2))
    c = tasks.sample(2, np.random.default_rng(8), split="test", shots=1, query_shots=2)
    np.testing.assert_array_equal(a.query_inputs, b.query_inputs)
    assert a.tasks == b.tasks and a.tasks != c.tasks


def test_miniimagenet_splits_and_shapes(miniimagenet_root: Path) -> None:
    tasks = load_miniimagenet(miniimagenet_root, ways=5)
    assert set(tasks.splits) == {"train", "val", "test"} and tasks.input_shape == (3, 84, 84)
    batch = tasks.sample(2, np.random.default_rng(0), split="val", shots=5, query_shots=15)
    assert batch.support_inputs.shape == (2, 25, 3, 84, 84) and batch.query_targets.shape == (2, 75)
    tasks.check("test", 5, 15)


def test_decoded_cache_round_trip(miniimagenet_root: Path, tmp_path: Path) -> None:
    first = load_miniimagenet(miniimagenet_root, ways=5, cache_dir=str(tmp_path))
    assert len(list(tmp_path.glob("miniimagenet-*.npz"))) == 3
    second = load_miniimagenet(miniimagenet_root, ways=5, cache_dir=str(tmp_path))
    np.testing.assert_array_equal(first.splits["test"].images, second.splits["test"].images)
    assert first.splits["test"].names == second.splits["test"].names


# ---- one-line errors naming what was expected and what was found ----------------------------------------
def _one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert "\n" not in message
    return message


def test_missing_root_and_dataset_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="data.root: omniglot needs the folder") as exc:
        make_fewshot_tasks("omniglot", "")
    _one_line(exc)
    with pytest.raises(ConfigError, match="does not exist .*images_background and images_evaluation"):
        make_fewshot_tasks("omniglot", str(tmp_path / "nowhere"))
    with pytest.raises(ConfigError, match="unknown 'omniglott' \\(did you mean 'omniglot'\\?\\)"):
        make_fewshot_tasks("omniglott", str(tmp_path))


def test_omniglot_wrong_layout(tmp_path: Path, omniglot_writer) -> None:
    omniglot_writer(tmp_path, {"images_background/Alpha": ("character", 2)})
    with pytest.raises(ConfigError, match="missing images_evaluation; found: images_background/") as exc:
        load_omniglot(tmp_path, ways=5, train_classes=1)
    _one_line(exc)


def test_omniglot_images_directly_in_alphabet(tmp_path: Path, omniglot_writer) -> None:
    omniglot_writer(tmp_path, {"images_background/Alpha": ("character", 2), "images_evaluation": ("Beta", 1)})
    with pytest.raises(
        ConfigError, match="expected <character>/\\*.png folders in alphabet .*Beta01.*found: 0000"
    ):
        load_omniglot(tmp_path, ways=5, train_classes=1)


def test_omniglot_too_few_characters(omniglot_root: Path) -> None:
    with pytest.raises(ConfigError, match="more than data.train_classes=1200 characters .* found 14") as exc:
        load_omniglot(omniglot_root, ways=5)
    _one_line(exc)


def test_too_few_classes_or_images_for_the_task(omniglot_root: Path) -> None:
    tasks = load_omniglot(omniglot_root, ways=30, train_classes=8)
    with pytest.raises(ConfigError, match="test split has 24 classes, a 30-way task needs 30"):
        tasks.check("test", 1, 1)
    tasks = load_omniglot(omniglot_root, ways=5, train_classes=8)
    with pytest.raises(
        ConfigError, match="has 10 images; 5-way 5-shot with 15 query images needs 20 per class"
    ):
        tasks.check("train", 5, 15)


def test_miniimagenet_missing_files(tmp_path: Path, miniimagenet_writer) -> None:
    root = miniimagenet_writer(tmp_path / "m", {"train": 2, "val": 2, "test": 2}, 2)
    (root / "val.csv").unlink()
    with pytest.raises(ConfigError, match="missing val.csv; found: images, test.csv, train.csv"):
        load_miniimagenet(root, ways=2)
    root = miniimagenet_writer(tmp_path / "n", {"train": 2, "val": 2, "test": 2}, 2)
    next((root / "images").glob("ntest*.jpg")).unlink()
    with pytest.raises(ConfigError, match="test.csv lists 4 images but 1 are not in") as exc:
        load_miniimagenet(root, ways=2)
    _one_line(exc)


def test_miniimagenet_bad_csv_header(tmp_path: Path, miniimagenet_writer) -> None:
    root = miniimagenet_writer(tmp_path, {"train": 2, "val": 2, "test": 2}, 2)
    with (root / "train.csv").open("w", newline="") as handle:
        csv.writer(handle).writerows([["image", "class"], ["a.jpg", "x"]])
    with pytest.raises(ConfigError, match="header 'filename,label' .* found 'image,class'"):
        load_miniimagenet(root, ways=2)
