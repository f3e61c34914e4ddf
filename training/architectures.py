"""The architecture registry: what `--arch` may name, and where each one's checkpoint and model go by default."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from training.model import DigitNet, MnistCNN
from training.modern import ModernCNN


@dataclass(frozen=True)
class Architecture:
    model: type[DigitNet]
    model_name: str  # the default name in the model repository, models/<model_name>/<version>/
    epochs: int  # the default recipe's length
    lr: float  # peak of the one-cycle schedule
    weight_decay: float

    @property
    def checkpoint(self) -> Path:
        return Path("artifacts") / f"{self.model_name}.pt"


ARCHITECTURES = {
    "classic": Architecture(MnistCNN, "mnist_cnn", epochs=20, lr=3e-3, weight_decay=1e-4),
    "modern": Architecture(ModernCNN, "mnist_modern", epochs=12, lr=4e-3, weight_decay=1e-2),
}


def build_model(arch: str) -> DigitNet:
    """A freshly initialised model of the named architecture."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}: choose one of {', '.join(ARCHITECTURES)}")
    return ARCHITECTURES[arch].model()
