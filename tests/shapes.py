"""The classic net's outputs (the random test model and the committed mnist_cnn): each shape without the batch
dimension, in forward order, as its card lists them."""

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
LAYER_NAMES = tuple(LAYER_SHAPES)
OUTPUT_SHAPES = {name: tuple(shape) for name, shape in LAYER_SHAPES.items()}
