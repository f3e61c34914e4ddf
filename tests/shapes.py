"""The contract both halves meet at: each named output's shape without the batch dimension."""

from __future__ import annotations

LAYER_SHAPES = {
    "conv1": [32, 26, 26],
    "pool1": [32, 13, 13],
    "conv2": [64, 11, 11],
    "pool2": [64, 5, 5],
    "conv3": [128, 3, 3],
    "flatten": [1152],
    "logits": [10],
    "probabilities": [10],
}
