"""What every architecture shares (named layers with kinds, the layer table, the export wrapper) and the classic
MNIST convnet (Conv 32, pool, Conv 64, pool, Conv 128, dense 10), layer for layer."""

from __future__ import annotations

from typing import ClassVar, NamedTuple

import torch
from torch import nn

# MNIST pixel statistics; normalisation lives inside the model so the ONNX graph takes pixels in [0, 1].
MNIST_MEAN = 0.1307
MNIST_STD = 0.3081

# The closed vocabulary of layer kinds a card may name, and how each is laid out: "spatial" outputs are
# (N, C, H, W) feature maps (draw C images of H x W), "vector" outputs are (N, K) (draw K bars).
KINDS = {
    "conv": ("spatial", "a convolution's activations, after its batch norm and ReLU where it has them"),
    "pool": ("spatial", "a max-pooling layer's output"),
    "block": ("spatial", "a residual block's output: ReLU(main path + shortcut)"),
    "flatten": ("vector", "spatial maps flattened into one vector, channel-major"),
    "gap": ("vector", "global average pooling: one mean activation per channel"),
    "dense": ("vector", "a fully connected layer's output (logits: unnormalised class scores, digits 0-9)"),
    "probabilities": ("vector", "softmax over the 10 digits, 0-9; sums to 1"),
}


class Layer(NamedTuple):
    name: str  # public name: the feature map's name in the ONNX graph and the service
    type: str  # what a person reads in the layer table
    kind: str  # one of KINDS


class DigitNet(nn.Module):
    """Pixels (N, 1, 28, 28) in [0, 1], white on black, in; every named layer's activations out."""

    arch: ClassVar[str]
    description: ClassVar[str]
    layers: tuple[Layer, ...]  # in forward order; each name is a key of features()
    output_names: tuple[str, ...]  # the ONNX graph's output order

    def __init__(self) -> None:
        super().__init__()
        # probabilities = softmax(logits / temperature); fitted on validation images after training. A plain
        # float, not a buffer: the state dict (and the ONNX initializers) keep exactly the layers' weights.
        self.temperature = 1.0

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        return (x - MNIST_MEAN) / MNIST_STD

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        if self.temperature != 1.0:  # NOTE: no Div node at T = 1, so an uncalibrated graph is unchanged
            logits = logits / self.temperature
        return torch.softmax(logits, dim=1)

    def features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N, 10); training uses these with cross-entropy."""
        return self.features(x)["logits"]


# The classic net's public names in graph order, and its ONNX output order. The service uses them too.
LAYER_NAMES = ("conv1", "pool1", "conv2", "pool2", "conv3", "flatten", "logits", "probabilities")
OUTPUT_NAMES = ("probabilities", "logits", "conv1", "pool1", "conv2", "pool2", "conv3", "flatten")
CLASSIC_LAYERS = (
    Layer("conv1", "Conv2d(1, 32, 3) + ReLU", "conv"),
    Layer("pool1", "MaxPool2d(2)", "pool"),
    Layer("conv2", "Conv2d(32, 64, 3) + ReLU", "conv"),
    Layer("pool2", "MaxPool2d(2)", "pool"),
    Layer("conv3", "Conv2d(64, 128, 3) + ReLU", "conv"),
    Layer("flatten", "Flatten", "flatten"),
    Layer("logits", "Linear(1152, 10)", "dense"),
    Layer("probabilities", "Softmax", "probabilities"),
)
LAYER_TYPES = {layer.name: layer.type for layer in CLASSIC_LAYERS}


class MnistCNN(DigitNet):
    """Conv2d(1,32,3) -> pool -> Conv2d(32,64,3) -> pool -> Conv2d(64,128,3) -> flatten -> Linear(1152,10)."""

    arch = "classic"
    description = "the classic Keras MNIST convnet: 3 conv layers with max pooling, flatten, one dense layer"
    layers = CLASSIC_LAYERS
    output_names = OUTPUT_NAMES

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
        x = self.normalise(x)
        out: dict[str, torch.Tensor] = {}
        out["conv1"] = x = torch.relu(self.conv1(x))  # (N, 32, 26, 26)
        out["pool1"] = x = self.pool1(x)  # (N, 32, 13, 13)
        out["conv2"] = x = torch.relu(self.conv2(x))  # (N, 64, 11, 11)
        out["pool2"] = x = self.pool2(x)  # (N, 64, 5, 5)
        out["conv3"] = x = torch.relu(self.conv3(x))  # (N, 128, 3, 3)
        out["flatten"] = x = self.flatten(x)  # (N, 1152)
        out["logits"] = x = self.logits(x)  # (N, 10)
        out["probabilities"] = self.probabilities(x)  # (N, 10)
        return out


class AllOutputs(nn.Module):
    """Export wrapper: returns every named output as a tuple in the model's output_names order."""

    def __init__(self, model: DigitNet) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.model.features(image)
        return tuple(out[name] for name in self.model.output_names)


def layer_table(model: DigitNet) -> list[dict]:
    """Name, type, kind, output shape (batch as N) and parameter count of each layer, computed from the model."""
    was_training = model.training
    with torch.no_grad():
        out = model.eval().features(torch.zeros(1, 1, 28, 28))
    model.train(was_training)
    modules = dict(model.named_children())
    rows = []
    for layer in model.layers:
        module = modules.get(layer.name)
        params = sum(p.numel() for p in module.parameters()) if module is not None else 0
        rows.append(
            {
                "name": layer.name,
                "type": layer.type,
                "kind": layer.kind,
                "output_shape": ["N", *out[layer.name].shape[1:]],
                "parameters": params,
            }
        )
    return rows


def format_layer_table(rows: list[dict]) -> str:
    """The layer table as aligned text, with the total parameter count."""
    width = max(28, *(len(r["type"]) + 2 for r in rows))
    lines = [f"{'layer':<14}{'type':<{width}}{'kind':<15}{'output shape':<22}{'parameters':>12}"]
    for r in rows:
        shape = "(" + ", ".join(str(d) for d in r["output_shape"]) + ")"
        lines.append(f"{r['name']:<14}{r['type']:<{width}}{r['kind']:<15}{shape:<22}{r['parameters']:>12,}")
    total = sum(r["parameters"] for r in rows)
    lines.append(f"{'total':<{14 + width + 15 + 22}}{total:>12,}")
    return "\n".join(lines)
