"""The modern MNIST convnet: a conv stem, residual blocks of depthwise-separable convolutions with batch norm,
global average pooling and one dense layer; fewer parameters than the classic net's 104,202."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from training.model import DigitNet, Layer


@dataclass(frozen=True)
class ModernConfig:
    # NOTE: on CPU a step's time goes to batch norm and ReLU over the big maps, not to the 7 x 7 stage's
    # convolutions: narrow at 28 and 14 px, wide at 7 (16 | 64, 128, 128 took 1.3x as long per step).
    stem_channels: int = 16
    widths: tuple[int, ...] = (32, 128, 128)  # output channels of block1, block2, ...
    strides: tuple[int, ...] = (2, 2, 1)  # 28 -> 14 -> 7 -> 7
    kernel_size: int = 3  # of the depthwise convolutions


class SeparableConv(nn.Module):
    """Depthwise k x k conv (one filter per channel, carries the stride) -> pointwise 1 x 1 conv -> batch norm."""

    def __init__(self, cin: int, cout: int, kernel_size: int, stride: int = 1) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(cin, cin, kernel_size, stride, kernel_size // 2, groups=cin, bias=False)
        self.pointwise = nn.Conv2d(cin, cout, 1, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.pointwise(self.depthwise(x)))


class Shortcut(nn.Module):
    """The identity, made to fit: average-pooled to the block's stride, channels repeated to the block's width.

    Parameter-free (like ResNet's zero-padding option A, but exported as one Tile node instead of a Pad
    whose pads do not constant-fold): a 1x1 projection with batch norm cost a fifth of a CPU training step."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        if cout % cin:
            raise ValueError(f"a block's width must be a multiple of its input's: {cin} -> {cout} channels")
        self.stride, self.repeats = stride, cout // cin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            x = F.avg_pool2d(x, self.stride)  # (N, cin, H / stride, W / stride)
        if self.repeats > 1:
            x = x.repeat(1, self.repeats, 1, 1)  # (N, cout, H', W')
        return x


class ResidualBlock(nn.Module):
    """ReLU(SepConv -> ReLU -> SepConv + shortcut(x))."""

    def __init__(self, cin: int, cout: int, kernel_size: int, stride: int) -> None:
        super().__init__()
        self.conv1 = SeparableConv(cin, cout, kernel_size, stride)
        self.conv2 = SeparableConv(cout, cout, kernel_size)
        self.shortcut = Shortcut(cin, cout, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.conv2(F.relu(self.conv1(x))) + self.shortcut(x))


class ModernCNN(DigitNet):
    """Stem conv -> residual depthwise-separable blocks with BN -> global average pooling -> Linear(C, 10)."""

    arch = "modern"
    description = (
        "a conv stem, 3 residual blocks of depthwise-separable convolutions with batch norm "
        "(28 -> 14 -> 7 px), global average pooling, one dense layer"
    )

    def __init__(self, config: ModernConfig | None = None) -> None:
        super().__init__()
        self.config = c = config or ModernConfig()
        self.stem = nn.Sequential(
            nn.Conv2d(1, c.stem_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(c.stem_channels),
            nn.ReLU(),
        )
        channels, layers = (
            [c.stem_channels, *c.widths],
            [Layer("stem", f"Conv2d(1, {c.stem_channels}, 3) + BN + ReLU", "conv")],
        )
        self.blocks = [f"block{i + 1}" for i in range(len(c.widths))]
        for name, cin, cout, stride in zip(self.blocks, channels[:-1], channels[1:], c.strides, strict=True):
            self.add_module(name, ResidualBlock(cin, cout, c.kernel_size, stride))
            down = f", /{stride}" if stride > 1 else ""
            layers.append(Layer(name, f"2x SepConv{c.kernel_size}({cin}->{cout}{down}) + BN, residual", "block"))
        self.logits = nn.Linear(c.widths[-1], 10)
        self.layers = (
            *layers,
            Layer("gap", "GlobalAvgPool", "gap"),
            Layer("logits", f"Linear({c.widths[-1]}, 10)", "dense"),
            Layer("probabilities", "Softmax", "probabilities"),
        )
        # probabilities and logits first, as the classic net's graph has them; then the layers in forward order.
        self.output_names = ("probabilities", "logits", "stem", *self.blocks, "gap")

    def features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every layer's activation by its public name; x is (N, 1, 28, 28) in [0, 1]."""
        x = self.normalise(x)
        out: dict[str, torch.Tensor] = {}
        out["stem"] = x = self.stem(x)  # (N, 16, 28, 28)
        for name in self.blocks:  # block1 (N, 32, 14, 14), block2 (N, 128, 7, 7), block3 (N, 128, 7, 7)
            out[name] = x = getattr(self, name)(x)
        out["gap"] = x = x.mean(dim=(2, 3))  # (N, 128)
        out["logits"] = x = self.logits(x)  # (N, 10)
        out["probabilities"] = self.probabilities(x)  # (N, 10)
        return out
