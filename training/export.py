"""Export a net to ONNX with every layer's activations as named outputs, check parity, write the model card;
into a model repository laid out like Triton's: <repository>/<name>/<version>/{model.onnx, card.json}."""

from __future__ import annotations

import hashlib
import json
import platform
import re
import shutil
import sys
import tempfile
import warnings
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch

from training.architectures import ARCHITECTURES
from training.data import Split
from training.evaluate import evaluate_onnx, test_images
from training.model import KINDS, AllOutputs, DigitNet, layer_table

OPSET = 17
MODEL_FILE, CARD_FILE = "model.onnx", "card.json"
# Parity tolerance between PyTorch and onnxruntime probabilities.
PARITY_TOLERANCE = 1e-5
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


class ParityError(RuntimeError):
    """The exported ONNX graph disagrees with the PyTorch model."""


class ExportError(RuntimeError):
    """An export that cannot be written as asked: a bad model name or version, or a version already there."""


def export_onnx(model: DigitNet, path: Path, opset: int = OPSET) -> Path:
    """Write model to path as ONNX: input `image` (N, 1, 28, 28), outputs named as in model.output_names.

    The model is exported in eval mode, so each batch norm uses its running statistics and is folded into the
    convolution before it; the graph has no BatchNormalization node left."""
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
            output_names=list(model.output_names),
            dynamic_axes={"image": batch, **{name: batch for name in model.output_names}},
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


def check_parity(model: DigitNet, path: Path, images: np.ndarray) -> dict:
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


def graph_output_names(onnx_path: Path) -> list[str]:
    import onnx

    return [o.name for o in onnx.load(str(onnx_path)).graph.output]


def calibration_entry(model: DigitNet, training: dict, metrics: dict) -> dict:
    """Whether the probabilities are calibrated and how: the fitted temperature and the ECE it gives."""
    fit = training.get("calibration", {})
    return {
        "calibrated": model.temperature != 1.0,
        "temperature": model.temperature,
        "probabilities": "softmax(logits / temperature); the logits output is the dense layer's, unscaled",
        **{k: v for k, v in fit.items() if k != "temperature"},
        "test": metrics.get("calibration", {}),
    }


def build_card(
    model: DigitNet, onnx_path: Path, *, version: str, training: dict, metrics: dict, name: str | None = None
) -> dict:
    """The model card: identity, architecture, contract (every graph output, in forward order, with its kind),
    layer table, calibration, training recipe and metrics. It describes the model fully; the service reads nothing
    else."""
    rows = layer_table(model)
    by_name = {r["name"]: r for r in rows}
    # NOTE: in forward order (the layer table's: input to probabilities), the order a page shows them in;
    # the ONNX graph lists probabilities first. Every graph output is listed.
    in_graph = set(graph_output_names(onnx_path))
    outputs = [
        {"name": r["name"], "dtype": "float32", "shape": r["output_shape"], "kind": r["kind"]}
        for r in rows
        if r["name"] in in_graph
    ]
    assert len(outputs) == len(in_graph), f"graph outputs without a layer row: {in_graph - set(by_name)}"
    return {
        "name": name or ARCHITECTURES[model.arch].model_name,
        "version": str(version),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "architecture": {"name": model.arch, "description": model.description},
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
        "outputs": outputs,
        "kinds": {kind: {"layout": layout, "description": text} for kind, (layout, text) in KINDS.items()},
        "layers": rows,
        "parameters": sum(r["parameters"] for r in rows),
        "calibration": calibration_entry(model, training, metrics),
        "training": training,
        "metrics": metrics,
        "machine": {"platform": platform.platform(), "processor": platform.machine()},
    }


def write_card(card: dict, path: Path) -> Path:
    path = Path(path)
    path.write_text(json.dumps(card, indent=2, ensure_ascii=False) + "\n")
    return path


def repository_paths(repository: Path, name: str, version: str) -> tuple[Path, Path]:
    """<repository>/<name>/<version>/model.onnx and card.json; the version is a positive integer, as in Triton."""
    if not NAME_PATTERN.fullmatch(name):
        raise ExportError(f"model name {name!r}: use letters, digits, '_', '.' or '-' (e.g. mnist_modern)")
    if not (str(version).isdigit() and int(version) > 0):
        raise ExportError(f"version {version!r}: a model repository's versions are positive integers (1, 2, ...)")
    directory = Path(repository) / name / str(int(version))
    return directory / MODEL_FILE, directory / CARD_FILE


def export_model(
    model: DigitNet,
    onnx_path: Path,
    *,
    version: str,
    training: dict | None = None,
    metrics: dict | None = None,
    name: str | None = None,
    card_path: Path | None = None,
) -> tuple[Path, Path]:
    """Export ONNX and write its card (by default beside it: same stem, .json); returns both paths."""
    onnx_path = export_onnx(model, Path(onnx_path))
    card = build_card(model, onnx_path, version=version, training=training or {}, metrics=metrics or {}, name=name)
    return onnx_path, write_card(card, Path(card_path) if card_path else onnx_path.with_suffix(".json"))


def measure(model: DigitNet, onnx_path: Path, test: Split) -> dict:
    """The card's metrics: parity with PyTorch (raises ParityError) and accuracy, per class, confusion, ECE."""
    parity = check_parity(model, onnx_path, test_images(test))
    return {**evaluate_onnx(onnx_path, test), "parity": parity}


def export_to_repository(
    model: DigitNet,
    repository: Path,
    *,
    name: str,
    version: str,
    training: dict | None = None,
    test: Split | None = None,
    force: bool = False,
) -> tuple[Path, Path, dict]:
    """Write <repository>/<name>/<version>/model.onnx and card.json, with metrics measured on test when given.

    The version is built in a hidden folder beside it and renamed into place once its card is written, so a
    reader of the repository never sees a model without its card, nor one that failed parity. An existing
    version is refused unless force. Returns both paths and the card."""
    onnx_path, card_path = repository_paths(repository, name, version)
    final, version = onnx_path.parent, onnx_path.parent.name
    if final.exists() and not force:
        raise ExportError(f"{final} already exists: export a new --version, or pass --force to replace it")
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=final.parent))
    staging.chmod(0o755)  # NOTE: mkdtemp makes it 0700; the service may run as another user
    try:
        staged = export_onnx(model, staging / MODEL_FILE)
        metrics = measure(model, staged, test) if test is not None else {}
        card = build_card(model, staged, version=version, training=training or {}, metrics=metrics, name=name)
        write_card(card, staging / CARD_FILE)
        if final.exists():  # force: set the old version aside, then drop it once the new one is in place
            old = Path(tempfile.mkdtemp(prefix=f".{final.name}-old-", dir=final.parent))
            final.rename(old / final.name)
            staging.rename(final)
            shutil.rmtree(old)
        else:
            staging.rename(final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return onnx_path, card_path, card
