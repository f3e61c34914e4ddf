"""Export the convnet to ONNX with every layer's activations as named outputs, check parity, write the card."""

from __future__ import annotations

import hashlib
import json
import platform
import sys
import warnings
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch

from training.model import OUTPUT_NAMES, AllOutputs, MnistCNN, layer_table

OPSET = 17
MODEL_NAME = "mnist_cnn"
# Parity tolerance between PyTorch and onnxruntime probabilities.
PARITY_TOLERANCE = 1e-5


class ParityError(RuntimeError):
    """The exported ONNX graph disagrees with the PyTorch model."""


def export_onnx(model: MnistCNN, path: Path, opset: int = OPSET) -> Path:
    """Write model to path as ONNX: input `image` (N, 1, 28, 28), outputs named as in OUTPUT_NAMES."""
    import onnx

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.cpu().eval()
    dummy = torch.zeros(2, 1, 28, 28)
    batch = {0: "N"}
    with warnings.catch_warnings():
        # NOTE: the TorchScript exporter is deprecated in favour of dynamo, but it gives a plain,
        # small graph with exactly our names and a dynamic batch axis; silence its warning only.
        warnings.simplefilter("ignore", category=DeprecationWarning)
        torch.onnx.export(
            AllOutputs(model),
            (dummy,),
            str(path),
            input_names=["image"],
            output_names=list(OUTPUT_NAMES),
            dynamic_axes={"image": batch, **{name: batch for name in OUTPUT_NAMES}},
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False,
        )
    onnx_model = onnx.load(str(path))
    onnx.checker.check_model(onnx_model, full_check=True)
    return path


def onnx_outputs(path: Path, images: np.ndarray, batch_size: int = 1000) -> dict[str, np.ndarray]:
    """Run the ONNX file with onnxruntime over images (N, 1, 28, 28) float32; every output by name."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    chunks: dict[str, list[np.ndarray]] = {name: [] for name in names}
    for start in range(0, len(images), batch_size):
        values = session.run(names, {"image": images[start : start + batch_size]})
        for name, value in zip(names, values, strict=True):
            chunks[name].append(value)
    return {name: np.concatenate(parts) for name, parts in chunks.items()}


def check_parity(model: MnistCNN, path: Path, images: np.ndarray) -> dict:
    """Compare PyTorch and onnxruntime on images; raise ParityError unless argmax agrees everywhere
    and probabilities differ by at most PARITY_TOLERANCE."""
    model = model.cpu().eval()
    with torch.no_grad():
        torch_probs = torch.cat(
            [
                model.features(torch.from_numpy(images[i : i + 1000]))["probabilities"]
                for i in range(0, len(images), 1000)
            ]
        ).numpy()
    onnx_probs = onnx_outputs(path, images)["probabilities"]
    max_diff = float(np.abs(torch_probs - onnx_probs).max())
    mismatches = int((torch_probs.argmax(1) != onnx_probs.argmax(1)).sum())
    figures = {
        "images": len(images),
        "argmax_mismatches": mismatches,
        "max_abs_diff_probabilities": max_diff,
        "tolerance": PARITY_TOLERANCE,
    }
    if mismatches or max_diff > PARITY_TOLERANCE:
        raise ParityError(f"ONNX export disagrees with PyTorch: {figures}")
    return figures


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def library_versions() -> dict[str, str]:
    import onnx
    import onnxruntime

    return {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
        "numpy": np.__version__,
    }


def build_card(model: MnistCNN, onnx_path: Path, *, version: str, training: dict, metrics: dict) -> dict:
    """The model card: identity, contract, layer table, training recipe and metrics."""
    rows = layer_table(model)
    shapes = {r["name"]: r["output_shape"] for r in rows}
    return {
        "name": MODEL_NAME,
        "version": version,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "file": Path(onnx_path).name,
        "sha256": sha256_file(onnx_path),
        "opset": OPSET,
        "libraries": library_versions(),
        "input": {
            "name": "image",
            "dtype": "float32",
            "shape": ["N", 1, 28, 28],
            "range": [0.0, 1.0],
            "convention": "white digit on black, 28x28, pixels scaled to [0, 1] (normalisation is in the graph)",
        },
        "outputs": [{"name": name, "dtype": "float32", "shape": shapes[name]} for name in OUTPUT_NAMES],
        "layers": rows,
        "parameters": sum(r["parameters"] for r in rows),
        "training": training,
        "metrics": metrics,
        "machine": {"platform": platform.platform(), "processor": platform.machine()},
    }


def write_card(card: dict, path: Path) -> Path:
    path = Path(path)
    path.write_text(json.dumps(card, indent=2) + "\n")
    return path


def export_model(
    model: MnistCNN,
    onnx_path: Path,
    *,
    version: str,
    training: dict | None = None,
    metrics: dict | None = None,
) -> tuple[Path, Path]:
    """Export ONNX and write its card beside it (same stem, .json); returns both paths."""
    onnx_path = export_onnx(model, Path(onnx_path))
    card = build_card(model, onnx_path, version=version, training=training or {}, metrics=metrics or {})
    return onnx_path, write_card(card, onnx_path.with_suffix(".json"))
