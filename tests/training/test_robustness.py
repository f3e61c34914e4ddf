"""The robustness table: seeded corruptions of the test images, and accuracy of ONNX models under each."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from training.robustness import CORRUPTIONS, corrupted_sets, markdown, robustness


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    rng = np.random.default_rng(0)
    digits = np.zeros((6, 1, 28, 28), np.float32)
    digits[:, :, 6:22, 12:16] = rng.uniform(0.5, 1.0, (6, 1, 16, 4))  # a bar, like a 1
    return digits


def test_corrupted_sets_keep_the_input_contract_and_are_seeded(images: np.ndarray) -> None:
    first, second = corrupted_sets(images), corrupted_sets(images)
    assert list(first) == [c.name for c in CORRUPTIONS] and len(first) >= 12
    for name, corrupted in first.items():
        assert corrupted.shape == images.shape and corrupted.dtype == np.float32, name
        assert corrupted.min() >= 0 and corrupted.max() <= 1, name
        np.testing.assert_array_equal(corrupted, second[name])  # the same for every model, run after run
    np.testing.assert_array_equal(first["clean"], images)
    np.testing.assert_allclose(first["inverted"], 1 - images)
    for name in ("rotate 30", "thick strokes", "noise", "low contrast"):
        assert not np.allclose(first[name], images), name


def test_robustness_gives_each_model_an_accuracy_per_corruption(
    random_model: tuple[Path, Path], images: np.ndarray
) -> None:
    labels = np.ones(len(images), np.int64)
    table = robustness([random_model[0]], images, labels)
    assert set(table) == {c.name for c in CORRUPTIONS}
    assert all(0.0 <= row[str(random_model[0])] <= 1.0 for row in table.values())
    name = json.loads(random_model[1].read_text())["name"]
    text = markdown(table, {str(random_model[0]): name})
    assert text.splitlines()[0] == f"| corruption | what it does | {name} |"
    assert "| **mean of the corruptions** |" in text.splitlines()[-1]
