import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from tests.paths import mnist_data_dir
from tests.shapes import LAYER_SHAPES as SHAPES
from tests.training.nets import modern_with_statistics, random_images
from training.calibration import softmax
from training.data import Split, load_split
from training.export import (
    ExportError,
    ParityError,
    check_parity,
    export_onnx,
    export_to_repository,
    onnx_outputs,
    repository_paths,
    sha256_file,
)
from training.model import KINDS, OUTPUT_NAMES, MnistCNN


def test_export_has_named_outputs_with_dynamic_batch(random_model):
    onnx_path, _ = random_model
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["image"]
    assert [o.name for o in session.get_outputs()] == list(OUTPUT_NAMES)
    for batch in (1, 5):
        values = session.run(None, {"image": np.random.rand(batch, 1, 28, 28).astype(np.float32)})
        for name, value in zip(OUTPUT_NAMES, values, strict=True):
            assert list(value.shape) == [batch, *SHAPES[name]], name


def test_export_passes_checker_with_opset_17_or_newer(random_model):
    model = onnx.load(str(random_model[0]))
    onnx.checker.check_model(model, full_check=True)
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 17


def test_parity_on_random_model(random_model):
    torch.manual_seed(0)
    model = MnistCNN()  # same seed as the fixture: same weights
    figures = check_parity(model, random_model[0], random_images(200))
    assert figures["argmax_mismatches"] == 0
    assert figures["max_abs_diff_probabilities"] <= 1e-5


def test_parity_fails_loudly_for_a_different_model(random_model, tmp_path):
    torch.manual_seed(123)
    with pytest.raises(ParityError):
        check_parity(MnistCNN(), random_model[0], random_images(200))


def test_card_records_sha256_and_contract(random_model):
    onnx_path, card_path = random_model
    card = json.loads(card_path.read_text())
    assert card["sha256"] == sha256_file(onnx_path)
    assert card["input"]["name"] == "image" and card["input"]["shape"] == ["N", 1, 28, 28]
    assert {o["name"]: o["shape"][1:] for o in card["outputs"]} == SHAPES
    assert card["parameters"] == 104_202


def test_export_creates_parent_directory(tmp_path):
    path = export_onnx(MnistCNN(), tmp_path / "deep" / "m.onnx")
    assert path.is_file()


@pytest.fixture(scope="module")
def modern_onnx(tmp_path_factory):
    model = modern_with_statistics()
    return model, export_onnx(model, tmp_path_factory.mktemp("modern") / "model.onnx")


def test_modern_export_matches_pytorch(modern_onnx):
    model, path = modern_onnx
    figures = check_parity(model, path, random_images(64))
    assert figures["argmax_mismatches"] == 0 and figures["max_abs_diff_probabilities"] <= 1e-5


def test_modern_export_matches_pytorch_on_every_feature_map(modern_onnx):
    model, path = modern_onnx
    images = random_images(8, seed=1)
    with torch.no_grad():
        expected = model.features(torch.from_numpy(images))
    for name, value in onnx_outputs(path, images).items():
        np.testing.assert_allclose(value, expected[name].numpy(), rtol=1e-4, atol=1e-4, err_msg=name)


def test_modern_export_folds_batch_norm_into_convolutions(modern_onnx):
    ops = {node.op_type for node in onnx.load(str(modern_onnx[1])).graph.node}
    assert "BatchNormalization" not in ops and "Conv" in ops


def test_modern_export_has_dynamic_batch(modern_onnx):
    session = ort.InferenceSession(str(modern_onnx[1]), providers=["CPUExecutionProvider"])
    for batch in (1, 7):
        probabilities = session.run(["probabilities"], {"image": random_images(batch)})[0]
        assert probabilities.shape == (batch, 10)


def test_exported_probabilities_use_the_temperature(tmp_path):
    model = modern_with_statistics()
    model.temperature = 0.5
    out = onnx_outputs(export_onnx(model, tmp_path / "t.onnx"), random_images(16))
    np.testing.assert_allclose(out["probabilities"], softmax(out["logits"], 0.5), atol=1e-6)


@pytest.fixture(scope="module")
def repository(tmp_path_factory):
    """A modern net exported into a fresh repository, measured on 50 real test images."""
    root = tmp_path_factory.mktemp("repository")
    test = load_split("test", mnist_data_dir())
    tiny = Split(test.images[:50], test.labels[:50])
    training = {"calibration": {"temperature": 0.8, "method": "temperature scaling"}}
    model = modern_with_statistics()
    model.temperature = 0.8
    onnx_path, card_path, _ = export_to_repository(
        model, root, name="mnist_modern", version="3", training=training, test=tiny
    )
    return root, onnx_path, card_path


def test_export_to_repository_writes_exactly_model_and_card(repository):
    root, onnx_path, card_path = repository
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*"))
    assert files == ["mnist_modern", "mnist_modern/3", "mnist_modern/3/card.json", "mnist_modern/3/model.onnx"]
    assert (onnx_path, card_path) == (root / "mnist_modern/3/model.onnx", root / "mnist_modern/3/card.json")


def test_repository_card_lists_every_graph_output_in_forward_order_with_kinds(repository):
    _, onnx_path, card_path = repository
    card = json.loads(card_path.read_text())
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    graph = {o.name: o for o in session.get_outputs()}
    assert sorted(o["name"] for o in card["outputs"]) == sorted(graph)
    assert [o["name"] for o in card["outputs"]] == [row["name"] for row in card["layers"]]
    for entry in card["outputs"]:
        assert entry["shape"][1:] == graph[entry["name"]].shape[1:] and entry["kind"] in KINDS, entry
    assert [o["kind"] for o in card["outputs"]] == ["conv", "block", "block", "block", "gap", "dense", "probabilities"]
    assert set(card["kinds"]) == set(KINDS) and card["kinds"]["block"]["layout"] == "spatial"


def test_repository_card_describes_the_model(repository):
    _, onnx_path, card_path = repository
    card = json.loads(card_path.read_text())
    assert (card["name"], card["version"], card["file"]) == ("mnist_modern", "3", "model.onnx")
    assert card["architecture"]["name"] == "modern" and card["architecture"]["description"]
    assert card["sha256"] == sha256_file(onnx_path)
    assert card["parameters"] <= 104_202 and card["opset"] >= 17 and "onnxruntime" in card["libraries"]
    assert card["calibration"]["calibrated"] and card["calibration"]["temperature"] == 0.8


def test_repository_card_records_metrics_on_the_test_images(repository):
    card = json.loads(repository[2].read_text())
    metrics = card["metrics"]
    assert metrics["test_images"] == 50 and len(metrics["confusion_matrix"]) == 10
    assert metrics["parity"]["images"] == 50 and metrics["parity"]["argmax_mismatches"] == 0
    assert 0 <= metrics["calibration"]["ece"] <= 1 and "at_temperature_1" in metrics["calibration"]


def test_export_to_repository_refuses_an_existing_version(repository):
    root, _, _ = repository
    with pytest.raises(ExportError, match="already exists"):
        export_to_repository(MnistCNN(), root, name="mnist_modern", version="3")


def test_export_to_repository_force_replaces_the_version(tmp_path):
    export_to_repository(modern_with_statistics(), tmp_path, name="m", version="1")
    onnx_path, card_path, card = export_to_repository(MnistCNN(), tmp_path, name="m", version="1", force=True)
    assert json.loads(card_path.read_text())["architecture"]["name"] == "classic"
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["1"]


@pytest.mark.parametrize(("name", "version"), [("mnist", "v1"), ("mnist", "0"), ("a/b", "1"), ("", "1")])
def test_repository_paths_refuse_what_a_repository_cannot_hold(tmp_path, name, version):
    with pytest.raises(ExportError):
        repository_paths(tmp_path, name, version)
