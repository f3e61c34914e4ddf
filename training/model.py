"""The classic MNIST convnet (Conv 32, pool, Conv 64, pool, Conv 128, dense 10), layer for layer."""

from __future__ import annotations

import torch
from torch import nn

# MNIST pixel statistics; normalisation lives inside the model so the ONNX graph takes pixels in [0, 1].
MNIST_MEAN = 0.1307
MNIST_STD = 0.3081

# Public names of the feature maps, in graph order. The service and the ONNX file use them too.
LAYER_NAMES = ("conv1", "pool1", "conv2", "pool2", "conv3", "flatten", "logits", "probabilities")
# Output order of the exported ONNX graph.
OUTPUT_NAMES = ("probabilities", "logits", "conv1", "pool1", "conv2", "pool2", "conv3", "flatten")


class MnistCNN(nn.Module):
    """Conv2d(1,32,3) -> pool -> Conv2d(32,64,3) -> pool -> Conv2d(64,128,3) -> flatten -> Linear(1152,10)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, kernel_size=3)
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(32, 64, kernel_size=3)
        self.pool2 = nn.MaxPool2d(2)
        self.conv3 = nn.Conv2d(64, 128, kernel_size=3)
        self.flatten = nn.Flatten()
        self.logits = nn.Linear(128 * 3 * 3, 10)

    def features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every layer's activation by its public name; x is (N, 1, 28, 28) in [0, 1]."""
        x = (x - MNIST_MEAN) / MNIST_STD
        out: dict[str, torch.Tensor] = {}
        out["conv1"] = x = torch.relu(self.conv1(x))  # (N, 32, 26, 26)
        out["pool1"] = x = self.pool1(x)  # (N, 32, 13, 13)
        out["conv2"] = x = torch.relu(self.conv2(x))  # (N, 64, 11, 11)
        out["pool2"] = x = self.pool2(x)  # (N, 64, 5, 5)
        out["conv3"] = x = torch.relu(self.conv3(x))  # (N, 128, 3, 3)
        out["flatten"] = x = self.flatten(x)  # (N, 1152)
        out["logits"] = x = self.logits(x)  # (N, 10)
        out["probabilities"] = torch.softmax(x, dim=1)  # (N, 10)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N, 10); training uses these with cross-entropy."""
        return self.features(x)["logits"]


class AllOutputs(nn.Module):
    """Export wrapper: returns every named output as a tuple in OUTPUT_NAMES order."""

    def __init__(self, model: MnistCNN) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.model.features(image)
        return tuple(out[name] for name in OUTPUT_NAMES)


LAYER_TYPES = {
    "conv1": "Conv2d(1, 32, 3) + ReLU",
    "pool1": "MaxPool2d(2)",
    "conv2": "Conv2d(32, 64, 3) + ReLU",
    "pool2": "MaxPool2d(2)",
    "conv3": "Conv2d(64, 128, 3) + ReLU",
    "flatten": "Flatten",
    "logits": "Linear(1152, 10)",
    "probabilities": "Softmax",
}


def layer_table(model: MnistCNN) -> list[dict]:
    """Name, type, output shape (batch as N) and parameter count of each layer, computed from the model."""
    with torch.no_grad():
        out = model.features(torch.zeros(1, 1, 28, 28))
    modules = dict(model.named_children())
    rows = []
    for name in LAYER_NAMES:
        module = modules.get(name)
        params = sum(p.numel() for p in module.parameters()) if module is not None else 0
        rows.append(
            {
                "name": name,
                "type": LAYER_TYPES[name],
                "output_shape": ["N", *out[name].shape[1:]],
                "parameters": params,
            }
        )
    return rows


def format_layer_table(rows: list[dict]) -> str:
    """The layer table as aligned text, with the total parameter count."""
    lines = [f"{'layer':<14}{'type':<28}{'output shape':<22}{'parameters':>12}"]
    for r in rows:
        shape = "(" + ", ".join(str(d) for d in r["output_shape"]) + ")"
        lines.append(f"{r['name']:<14}{r['type']:<28}{shape:<22}{r['parameters']:>12,}")
    total = sum(r["parameters"] for r in rows)
    lines.append(f"{'total':<64}{total:>12,}")
    return "\n".join(lines)
