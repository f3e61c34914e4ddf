import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from tests.conftest import LAYER_SHAPES as SHAPES
from training.export import ParityError, check_parity, export_onnx, sha256_file
from training.model import OUTPUT_NAMES, MnistCNN


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
    images = np.random.default_rng(0).random((200, 1, 28, 28), dtype=np.float32)
    figures = check_parity(model, random_model[0], images)
    assert figures["argmax_mismatches"] == 0
    assert figures["max_abs_diff_probabilities"] <= 1e-5


def test_parity_fails_loudly_for_a_different_model(random_model, tmp_path):
    torch.manual_seed(123)
    other = MnistCNN()
    images = np.random.default_rng(0).random((200, 1, 28, 28), dtype=np.float32)
    with pytest.raises(ParityError):
        check_parity(other, random_model[0], images)


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
