"""Model repositories for the page's tests: the committed models plus one whose layers have names no other has."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

THIRD_MODEL = "renamed_net"  # the name of the model whose layers no other model has


def renamed_outputs(outputs: list[dict]) -> dict[str, str]:
    """A new name for every output: its position and kind (`out1_conv`, ..., `out7_probabilities`)."""
    return {output["name"]: f"out{i}_{output['kind']}" for i, output in enumerate(outputs, start=1)}


def copy_with_renamed_layers(source: Path, target: Path, name: str) -> dict[str, str]:
    """Copy the model version in `source` to `target` as model `name`, every graph output and its card entry
    renamed; returns the renaming."""
    import onnx

    card = json.loads((source / "card.json").read_text())
    renaming = renamed_outputs(card["outputs"])
    model = onnx.load(str(source / "model.onnx"))
    for node in model.graph.node:
        node.input[:] = [renaming.get(value, value) for value in node.input]
        node.output[:] = [renaming.get(value, value) for value in node.output]
    for value in [*model.graph.output, *model.graph.value_info]:
        value.name = renaming.get(value.name, value.name)
    data = model.SerializeToString()
    for entry in [*card["outputs"], *card.get("layers", [])]:
        entry["name"] = renaming.get(entry["name"], entry["name"])
    card |= {"name": name, "sha256": hashlib.sha256(data).hexdigest()}
    target.mkdir(parents=True)
    (target / "model.onnx").write_bytes(data)
    (target / "card.json").write_text(json.dumps(card, indent=2))
    return renaming


def repository_with_a_third_model(committed: Path, root: Path, source_model: str, name: str) -> Path:
    """`root` holding every committed model plus `name`: `source_model`'s newest version with its layers renamed."""
    shutil.copytree(committed, root, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".*"))
    newest = max(
        (folder for folder in (root / source_model).iterdir() if folder.name.isdigit()), key=lambda f: int(f.name)
    )
    copy_with_renamed_layers(newest, root / name / "1", name)
    return root
