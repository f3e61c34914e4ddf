"""ModelRuntime: loads a verified model version, runs named outputs, refuses anything else with one clear line."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from service.errors import ModelLoadError
from service.runtime import ModelRuntime
from tests.service.models import copy_model, flip_byte, off_contract_model, write_card_for


def test_load_runtime_accepts_the_random_model(random_model: tuple[Path, Path]) -> None:
    runtime = ModelRuntime.load(*random_model)
    assert runtime.name == "mnist_cnn" and runtime.version == "1"
    assert runtime.sha256 == hashlib.sha256(random_model[0].read_bytes()).hexdigest()


def test_run_returns_only_asked_outputs_by_name(random_model: tuple[Path, Path]) -> None:
    runtime = ModelRuntime.load(*random_model)
    images = np.random.default_rng(0).random((3, 1, 28, 28), dtype=np.float32)
    values = runtime.run(images, ["probabilities", "conv2"])
    assert set(values) == {"probabilities", "conv2"}
    assert values["conv2"].shape == (3, 64, 11, 11)
    np.testing.assert_allclose(values["probabilities"].sum(axis=1), 1.0, atol=1e-5)


def test_run_gives_every_layer_the_shape_its_card_says(random_model: tuple[Path, Path]) -> None:
    runtime = ModelRuntime.load(*random_model)
    values = runtime.run(np.zeros((2, 1, 28, 28), np.float32), runtime.contract.output_names)
    card = {output["name"]: tuple(output["shape"][1:]) for output in json.loads(random_model[1].read_text())["outputs"]}
    assert {name: value.shape[1:] for name, value in values.items()} == card


def test_run_refuses_wrong_input_shape(random_model: tuple[Path, Path]) -> None:
    with pytest.raises(ValueError, match="float32"):
        ModelRuntime.load(*random_model).run(np.zeros((2, 28, 28), np.float32), ["logits"])


def test_load_runtime_refuses_flipped_byte(random_model: tuple[Path, Path], tmp_path: Path) -> None:
    model, card = copy_model(random_model, tmp_path)
    flip_byte(model)
    with pytest.raises(ModelLoadError, match="sha256"):
        ModelRuntime.load(model, card)


def test_load_runtime_refuses_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="not found"):
        ModelRuntime.load(tmp_path / "absent.onnx", tmp_path / "absent.json")


def test_load_runtime_refuses_missing_card(random_model: tuple[Path, Path], tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="card .* not found"):
        ModelRuntime.load(random_model[0], tmp_path / "absent.json")


def test_load_runtime_refuses_card_that_is_not_json(random_model: tuple[Path, Path], tmp_path: Path) -> None:
    (tmp_path / "card.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match="not readable JSON"):
        ModelRuntime.load(random_model[0], tmp_path / "card.json")


def test_load_runtime_refuses_card_of_another_file(random_model: tuple[Path, Path], tmp_path: Path) -> None:
    card = json.loads(random_model[1].read_text())
    card["sha256"] = hashlib.sha256(b"another model").hexdigest()
    (tmp_path / "card.json").write_text(json.dumps(card))
    with pytest.raises(ModelLoadError, match="sha256"):
        ModelRuntime.load(random_model[0], tmp_path / "card.json")


def test_load_runtime_refuses_corrupt_file_even_with_matching_card(
    random_model: tuple[Path, Path], tmp_path: Path
) -> None:
    model = tmp_path / "garbage.onnx"
    model.write_bytes(b"\x08\x07definitely not protobuf" * 10)
    write_card_for(model, tmp_path / "garbage.json", random_model[1])
    with pytest.raises(ModelLoadError, match="onnxruntime cannot load"):
        ModelRuntime.load(model, tmp_path / "garbage.json")


def test_load_runtime_refuses_graph_off_contract(random_model: tuple[Path, Path], tmp_path: Path) -> None:
    model = off_contract_model(tmp_path / "other.onnx")
    write_card_for(model, tmp_path / "other.json", random_model[1])
    with pytest.raises(ModelLoadError, match="does not match its card") as caught:
        ModelRuntime.load(model, tmp_path / "other.json")
    assert "output 'conv1' is missing" in str(caught.value)
    assert "'probabilities' has shape ['N', 784]" in str(caught.value)
