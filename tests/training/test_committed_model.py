"""The models committed in models/ (models/<name>/<version>/model.onnx + card.json): each card matches its file,
describes its graph and meets the accuracy bar."""

import json

import onnxruntime as ort
import pytest

from tests.paths import REPO_ROOT, mnist_data_dir
from training.data import load_split
from training.evaluate import evaluate_onnx
from training.export import sha256_file
from training.model import KINDS

CLASSIC_PARAMETERS = 104_202
REPOSITORY = REPO_ROOT / "models"
# (ONNX file, card, architecture) of each committed model.
COMMITTED = {
    "mnist_cnn/1": (REPOSITORY / "mnist_cnn/1/model.onnx", REPOSITORY / "mnist_cnn/1/card.json", "classic"),
    "mnist_modern/1": (REPOSITORY / "mnist_modern/1/model.onnx", REPOSITORY / "mnist_modern/1/card.json", "modern"),
}
REPOSITORY_MODELS = list(COMMITTED)


def card_of(key: str) -> dict:
    return json.loads(COMMITTED[key][1].read_text())


@pytest.fixture(scope="module")
def test_split():
    return load_split("test", mnist_data_dir())


@pytest.mark.parametrize("key", list(COMMITTED))
def test_committed_card_sha256_matches_committed_onnx(key):
    model, card, _ = COMMITTED[key]
    assert json.loads(card.read_text())["sha256"] == sha256_file(model)


@pytest.mark.parametrize("key", list(COMMITTED))
def test_committed_model_test_accuracy_at_least_99_5_percent(key, test_split):
    metrics = evaluate_onnx(COMMITTED[key][0], test_split)
    assert metrics["test_accuracy"] >= 0.995
    assert abs(metrics["test_accuracy"] - card_of(key)["metrics"]["test_accuracy"]) < 1e-9


@pytest.mark.parametrize("key", list(COMMITTED))
def test_committed_card_records_recipe_and_parity(key):
    card = card_of(key)
    assert card["training"]["wall_time_s"] > 0 and card["training"]["config"]["seed"] is not None
    assert card["metrics"]["parity"]["argmax_mismatches"] == 0
    assert card["metrics"]["parity"]["max_abs_diff_probabilities"] <= 1e-5
    assert len(card["metrics"]["confusion_matrix"]) == 10


@pytest.mark.parametrize("key", REPOSITORY_MODELS)
def test_committed_repository_card_names_its_folder_and_architecture(key):
    card, (_, _, arch) = card_of(key), COMMITTED[key]
    name, version = key.split("/")
    assert (card["name"], card["version"], card["file"]) == (name, version, "model.onnx")
    assert card["architecture"]["name"] == arch
    assert sorted(p.name for p in (REPOSITORY / key).iterdir()) == ["card.json", "model.onnx"]


@pytest.mark.parametrize("key", REPOSITORY_MODELS)
def test_committed_repository_card_lists_every_graph_output_in_forward_order_with_kinds(key):
    session = ort.InferenceSession(str(COMMITTED[key][0]), providers=["CPUExecutionProvider"])
    graph = {o.name: o for o in session.get_outputs()}
    card = card_of(key)
    outputs = card["outputs"]
    assert sorted(o["name"] for o in outputs) == sorted(graph)
    assert [o["name"] for o in outputs] == [row["name"] for row in card["layers"] if row["name"] in graph]
    for entry in outputs:
        assert entry["kind"] in KINDS and entry["shape"][1:] == graph[entry["name"]].shape[1:], entry


@pytest.mark.parametrize("key", REPOSITORY_MODELS)
def test_committed_repository_model_trained_within_20_minutes_on_all_test_images(key):
    card = card_of(key)
    assert card["training"]["wall_time_s"] <= 20 * 60
    assert card["training"]["config"]["limit"] is None and card["training"]["config"]["max_steps"] is None
    assert card["metrics"]["test_images"] == card["metrics"]["parity"]["images"] == 10_000


@pytest.mark.parametrize("key", REPOSITORY_MODELS)
def test_committed_repository_card_says_how_probabilities_are_calibrated(key):
    calibration = card_of(key)["calibration"]
    assert calibration["calibrated"] == (calibration["temperature"] != 1.0)
    assert calibration["test"]["ece"] <= calibration["test"]["at_temperature_1"]["ece"]


def test_committed_models_have_at_most_the_classic_parameter_count():
    assert card_of("mnist_cnn/1")["parameters"] == CLASSIC_PARAMETERS
    assert card_of("mnist_modern/1")["parameters"] <= CLASSIC_PARAMETERS
