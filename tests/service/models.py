"""Copies and broken variants of the test model: a repository of one copy, a flipped byte, a foreign card, a graph
off its card."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path


def copy_model(random_model: tuple[Path, Path], directory: Path) -> tuple[Path, Path]:
    model, card = (Path(shutil.copy(path, directory)) for path in random_model)
    return model, card


def copy_repository(random_model: tuple[Path, Path], root: Path, name: str = "mnist_cnn", version: str = "1") -> Path:
    """A model repository at root holding a copy of the random model as name/version; returns that version folder.

    The card is rewritten to the folder's name and version (the service checks that they agree).
    """
    folder = root / name / version
    folder.mkdir(parents=True)
    shutil.copy(random_model[0], folder / "model.onnx")
    card = json.loads(random_model[1].read_text())
    (folder / "card.json").write_text(json.dumps({**card, "name": name, "version": version}))
    return folder


def flip_byte(path: Path, offset: int = 1000) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def write_card_for(model_path: Path, card_path: Path, template: Path) -> None:
    """A card like template's, but with model_path's sha256."""
    card = json.loads(template.read_text())
    card["sha256"] = hashlib.sha256(model_path.read_bytes()).hexdigest()
    card_path.write_text(json.dumps(card))


def off_contract_model(path: Path) -> Path:
    """A valid ONNX graph with the right input but one wrong output: image (N,1,28,28) -> flat (N,784)."""
    import onnx
    from onnx import TensorProto, helper

    image = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 1, 28, 28])
    output = helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 784])
    graph = helper.make_graph(
        [helper.make_node("Flatten", ["image"], ["probabilities"], axis=1)], "not_mnist", [image], [output]
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def restamped(folder: Path, text: str) -> None:
    """The version folder's model.onnx with new bytes (its doc_string set to text), its card's sha256 to match."""
    import onnx

    model = onnx.load(str(folder / "model.onnx"))
    model.doc_string = text
    onnx.save(model, str(folder / "model.onnx"))
    write_card_for(folder / "model.onnx", folder / "card.json", folder / "card.json")
