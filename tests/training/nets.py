"""Small real models for the training tests: a modern net whose batch norms hold non-trivial statistics."""

from __future__ import annotations

import torch
from torch import nn

from training.modern import ModernCNN


def modern_with_statistics(seed: int = 0) -> ModernCNN:
    """A seeded ModernCNN in eval mode whose batch norms have running statistics and affine parameters far from
    their initial values, so that folding them into the convolutions is really exercised."""
    torch.manual_seed(seed)
    model = ModernCNN()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
    return model.eval()


def random_images(n: int, seed: int = 0):
    import numpy as np

    return np.random.default_rng(seed).random((n, 1, 28, 28), dtype=np.float32)
