"""The model committed in models/: its card matches the file and it meets the accuracy bar."""

import json

from tests.conftest import REPO_ROOT, mnist_data_dir
from training.data import load_split
from training.evaluate import evaluate_onnx
from training.export import sha256_file

MODEL = REPO_ROOT / "models" / "mnist_cnn.onnx"
CARD = REPO_ROOT / "models" / "mnist_cnn.json"


def test_committed_card_sha256_matches_committed_onnx():
    assert json.loads(CARD.read_text())["sha256"] == sha256_file(MODEL)


def test_committed_model_test_accuracy_at_least_99_5_percent():
    metrics = evaluate_onnx(MODEL, load_split("test", mnist_data_dir()))
    assert metrics["test_accuracy"] >= 0.995
    assert abs(metrics["test_accuracy"] - json.loads(CARD.read_text())["metrics"]["test_accuracy"]) < 1e-9


def test_committed_card_records_recipe_and_parity():
    card = json.loads(CARD.read_text())
    assert card["training"]["wall_time_s"] > 0 and card["training"]["config"]["seed"] is not None
    assert card["metrics"]["parity"]["argmax_mismatches"] == 0
    assert card["metrics"]["parity"]["max_abs_diff_probabilities"] <= 1e-5
    assert len(card["metrics"]["confusion_matrix"]) == 10
