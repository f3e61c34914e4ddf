"""Evaluate an exported ONNX model on the MNIST test set with onnxruntime (no torch needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from training.calibration import calibration_figures, softmax
from training.data import Split


def test_images(split: Split) -> np.ndarray:
    """(N, 28, 28) uint8 -> (N, 1, 28, 28) float32 in [0, 1], the model's input contract."""
    return (split.images.astype(np.float32) / 255.0)[:, None]


def classification_metrics(predicted: np.ndarray, labels: np.ndarray) -> dict:
    """Accuracy, per-class accuracy (recall) and the confusion matrix (rows: true, columns: predicted)."""
    confusion = np.zeros((10, 10), dtype=np.int64)
    np.add.at(confusion, (labels, predicted), 1)
    per_class = confusion.diagonal() / np.maximum(confusion.sum(axis=1), 1)
    return {
        "test_images": int(len(labels)),
        "test_accuracy": float((predicted == labels).mean()),
        "test_errors": int((predicted != labels).sum()),
        "per_class_accuracy": [round(float(a), 6) for a in per_class],
        "confusion_matrix": confusion.tolist(),
    }


def evaluate_onnx(path: Path, split: Split) -> dict:
    """Accuracy, per-class accuracy, confusion matrix and calibration (ECE) of the ONNX file's probabilities."""
    from training.export import onnx_outputs

    outputs = onnx_outputs(path, test_images(split))
    probabilities = outputs["probabilities"]
    metrics = classification_metrics(probabilities.argmax(axis=1), split.labels)
    metrics["calibration"] = calibration_figures(probabilities, split.labels)
    if "logits" in outputs:  # what the probabilities would be without the fitted temperature
        metrics["calibration"]["at_temperature_1"] = calibration_figures(softmax(outputs["logits"]), split.labels)
    return metrics


def format_metrics(metrics: dict) -> str:
    lines = [
        f"test accuracy {metrics['test_accuracy'] * 100:.2f}% "
        f"({metrics['test_errors']} errors in {metrics['test_images']} images)",
        "per-class accuracy: " + "  ".join(f"{d}: {a * 100:.2f}%" for d, a in enumerate(metrics["per_class_accuracy"])),
        "confusion matrix (rows: true digit, columns: predicted):",
        "      " + "".join(f"{d:>6}" for d in range(10)),
    ]
    for d, row in enumerate(metrics["confusion_matrix"]):
        lines.append(f"{d:>6}" + "".join(f"{v:>6}" for v in row))
    if calibration := metrics.get("calibration"):
        lines.append(
            f"calibration: ECE {calibration['ece']:.4f}, mean confidence {calibration['mean_confidence']:.4f}"
            + (f" (at T = 1: ECE {t1['ece']:.4f})" if (t1 := calibration.get("at_temperature_1")) else "")
        )
    return "\n".join(lines)
