"""Where a model looks: attribution maps over the 28x28 input, computed with numpy and onnxruntime only.

- occlusion: the input with a patch blanked at every position, all copies in one batched run; a pixel's
  attribution is the mean drop in the target's log-probability (of the probabilities served, calibration
  included) over the patches that cover it.
- gradcam: Grad-CAM from the last convolutional layer. Where that layer is followed only by flatten or
  global average pooling and a dense layer, the gradient of a logit with respect to the layer is constant:
  the dense weights (divided by H*W after pooling). So no autograd is needed: the weights are read from the
  ONNX initializers at load (service/onnx_graph.py). The class map is kept signed (Grad-CAM's final ReLU is
  left out: positive is evidence for the target, negative against), placed on the input by each cell's
  receptive field centre (found by walking the graph's convolutions and pools back to the input), and
  multiplied by the input, as gradient x input is: a blank pixel is the baseline and cannot be evidence.
  NOTE: without that product the coarse map (3x3 cells on the classic net) spreads over the paper around
  the digit and ranks it first; the deletion test (docs/explain.md) then scored it worse than random ink.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio.to_thread
import numpy as np

from service.contract import IMAGE_SHAPE, INPUT_LAYER, Contract
from service.errors import BadRequest
from service.featuremaps import encode_map, png_bytes
from service.heatmap import render_explanation
from service.inference import ms
from service.onnx_graph import Graph, Node

if TYPE_CHECKING:
    from service.inference import Predictor
    from service.uploads import Upload

METHODS = ("occlusion", "gradcam")
SIDE = IMAGE_SHAPE[-1]  # 28
DEFAULT_PATCH, DEFAULT_STRIDE = 7, 3  # 8 x 8 = 64 occluded copies and the input: one run of 65 images
MAX_COPIES = SIDE * SIDE
MAP_KINDS, POOLED_KINDS = ("conv", "block"), ("flatten", "gap")
SPATIAL_OPS = ("Conv", "MaxPool", "AveragePool")


@dataclass(frozen=True, slots=True)
class GradCam:
    """What Grad-CAM needs of one model: the layer, each class's channel weights and where its cells sit."""

    layer: str  # the last convolutional layer, (C, H, W) per image
    weights: np.ndarray  # (classes, C): the mean gradient of each logit over each channel
    rows: np.ndarray  # (28, H) bilinear weights from the layer's cells to the input's rows
    cols: np.ndarray  # (28, W)

    def attribution(self, activations: np.ndarray, image: np.ndarray, target: int) -> np.ndarray:
        """(C, H, W) activations of the layer and the (28, 28) input -> the target's map, (28, 28)."""
        cam = np.tensordot(self.weights[target], activations.astype(np.float64), axes=1)  # (H, W)
        return (self.rows @ cam @ self.cols.T) * image


def plan_gradcam(contract: Contract, graph: Graph) -> GradCam | str:
    """Grad-CAM for this model, or why it has none (a sentence for /models and for the 400)."""
    outputs = list(contract.outputs)
    kinds = [spec.kind for spec in outputs]
    if "dense" not in kinds:
        return "gradcam needs a dense layer at the end of the model"
    dense = outputs[len(kinds) - 1 - kinds[::-1].index("dense")]
    node = graph.producer(dense.name)
    if node is None or node.op_type != "Gemm" or node.inputs[1] not in graph.initializers:
        return f"gradcam needs its dense layer '{dense.name}' to be one Gemm with stored weights"
    alpha = node.attributes.get("alpha", 1.0)
    if not isinstance(alpha, float | int):
        return f"gradcam cannot read the dense layer '{dense.name}'"
    weights = graph.initializers[node.inputs[1]].astype(np.float64) * float(alpha)
    weights = weights if node.attributes.get("transB", 0) else weights.T  # (classes, features)
    pooled_node = graph.producer(node.inputs[0])
    pooled = contract.output(node.inputs[0])
    if pooled is None or pooled.kind not in POOLED_KINDS or pooled_node is None:
        return f"gradcam needs the dense layer '{dense.name}' to follow a flatten or global-average-pool layer"
    layer = contract.output(pooled_node.inputs[0])
    if layer is None or layer.kind not in MAP_KINDS or len(layer.shape) != 3:
        return f"gradcam needs '{pooled.name}' to pool a convolutional layer's (C, H, W) maps"
    channels, height, width = layer.shape
    if pooled.kind == "flatten" and _is_flatten(pooled_node):
        gradient = weights.reshape(-1, channels, height, width).mean(axis=(2, 3))  # (classes, C)
    elif pooled.kind == "gap" and _is_global_mean(pooled_node):
        gradient = weights / (height * width)  # each cell's share of the mean
    else:
        return f"gradcam cannot read how '{pooled.name}' pools '{layer.name}'"
    (row_scale, row_offset), (col_scale, col_offset) = _geometry(graph, layer.name, contract.input.name)
    rows = _bilinear(height, row_scale, row_offset)
    cols = _bilinear(width, col_scale, col_offset)
    return GradCam(layer.name, gradient, rows, cols)


def _is_flatten(node: Node) -> bool:
    return node.op_type == "Flatten" and node.attributes.get("axis", 1) == 1


def _is_global_mean(node: Node) -> bool:
    if node.op_type == "GlobalAveragePool":
        return True
    axes = node.attributes.get("axes")
    return node.op_type == "ReduceMean" and axes in ((2, 3), (-2, -1)) and node.attributes.get("keepdims") == 0


def _geometry(graph: Graph, layer: str, image: str) -> tuple[tuple[float, float], tuple[float, float]]:
    """Per axis (scale, offset): cell i of the layer is centred on input pixel scale * i + offset.

    Walks from the layer to the input along each node's first non-weight input; convolutions and pools
    map an output index o to the input index stride * o - pad + dilation * (kernel - 1) / 2.
    """
    axes = [[1.0, 0.0], [1.0, 0.0]]
    name = layer
    while name != image:
        node = graph.producer(name)
        if node is None:
            break
        if node.op_type in SPATIAL_OPS:
            for axis in (0, 1):
                kernel = _attribute(node, "kernel_shape", axis, _kernel(graph, node, axis))
                stride = _attribute(node, "strides", axis, 1)
                pad = _attribute(node, "pads", axis, 0)
                dilation = _attribute(node, "dilations", axis, 1)
                scale, offset = axes[axis]
                # x_in = stride * x_out + shift, and x_out = scale * i + offset
                shift = dilation * (kernel - 1) / 2 - pad
                axes[axis] = [stride * scale, stride * offset + shift]
        name = next((item for item in node.inputs if item not in graph.initializers), image)
    return (axes[0][0], axes[0][1]), (axes[1][0], axes[1][1])


def _attribute(node: Node, key: str, axis: int, default: int) -> int:
    value = node.attributes.get(key)
    return int(value[axis]) if isinstance(value, tuple) and len(value) > axis else default


def _kernel(graph: Graph, node: Node, axis: int) -> int:
    weight = graph.initializers.get(node.inputs[1]) if len(node.inputs) > 1 else None
    return int(weight.shape[2 + axis]) if weight is not None and weight.ndim == 4 else 1


def _bilinear(cells: int, scale: float, offset: float) -> np.ndarray:
    """(28, cells) weights: each input pixel interpolated between the two cells whose centres flank it."""
    position = np.clip((np.arange(SIDE) - offset) / scale, 0, cells - 1)  # in cell units
    low = np.floor(position).astype(int)
    high = np.minimum(low + 1, cells - 1)
    frac = position - low
    weights = np.zeros((SIDE, cells))
    weights[np.arange(SIDE), low] += 1 - frac
    weights[np.arange(SIDE), high] += frac
    return weights


# ---- occlusion ---------------------------------------------------------------------------------------


def check_occlusion(patch: int, stride: int) -> int:
    """The number of patch positions per axis; BadRequest for a patch or stride outside 1-28."""
    for name, value in (("patch", patch), ("stride", stride)):
        if not 1 <= value <= SIDE:
            raise BadRequest(f"{name} must be 1 to {SIDE} pixels, got {value}")
    return (SIDE - patch) // stride + 1


def occluded(image: np.ndarray, patch: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """(1, 28, 28) image -> (P, 1, 28, 28) copies with one patch set to 0 (background) each, and (P, 28, 28)
    boolean masks of where each patch lies."""
    steps = check_occlusion(patch, stride)
    starts = [(row * stride, col * stride) for row in range(steps) for col in range(steps)]
    masks = np.zeros((len(starts), SIDE, SIDE), bool)
    for index, (top, left) in enumerate(starts):
        masks[index, top : top + patch, left : left + patch] = True
    copies = np.where(masks[:, None], np.float32(0.0), image[None])  # (P, 1, 28, 28)
    return copies.astype(np.float32, copy=False), masks


def occlusion_map(base: float, scores: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """The mean drop from base of the target's score (P,) over the patches (P, 28, 28) covering each pixel."""
    coverage = masks.sum(axis=0)  # (28, 28)
    drops = np.tensordot(base - scores, masks.astype(np.float64), axes=1)  # (28, 28)
    return np.divide(drops, coverage, out=np.zeros((SIDE, SIDE)), where=coverage > 0)


def check_target(target: str | None, classes: int) -> int | None:
    """The class asked for (None: the predicted one); BadRequest unless it is a class 0 to classes - 1."""
    if target is None:
        return None
    if not (target.isascii() and target.isdigit()) or int(target) >= classes:
        raise BadRequest(f"target must be a class from 0 to {classes - 1}, got {target[:20]!r}")
    return int(target)


# ---- the data plane ----------------------------------------------------------------------------------


class Explainer:
    """Attribution maps for uploaded images, through the model version's predictor and micro-batcher."""

    def __init__(self, predictor: Predictor, gradcam: GradCam | str) -> None:
        self.predictor = predictor
        self.probabilities = predictor.engine.runtime.contract.probabilities
        self.gradcam = gradcam if isinstance(gradcam, GradCam) else None
        self.unsupported = {} if self.gradcam else {"gradcam": str(gradcam)}  # method -> why not

    @property
    def methods(self) -> list[str]:
        """The methods this model supports."""
        return [method for method in METHODS if method not in self.unsupported]

    def check(self, method: str, target: str | None, patch: int, stride: int) -> int | None:
        """Check the parameters before the body is read; the target class, None for the predicted one."""
        if method not in METHODS:
            raise BadRequest(f"unknown method {method[:20]!r}: choose {' or '.join(METHODS)}")
        if method in self.unsupported:
            raise BadRequest(f"this model has no {method}: {self.unsupported[method]}; use occlusion")
        if method == "occlusion":
            check_occlusion(patch, stride)
        classes = self.predictor.engine.runtime.contract.output(self.probabilities)
        return check_target(target, classes.shape[0] if classes else 10)

    async def attribute(self, upload: Upload, method: str, target: int | None, patch: int, stride: int) -> Explanation:
        """The attribution of the target class (default: the predicted one) for one uploaded image."""
        start = time.perf_counter()
        prepared = await self.predictor.prepare([upload])
        image = prepared.images  # (1, 1, 28, 28)
        infer_start = time.perf_counter()
        if method == "occlusion":
            copies, masks = occluded(image[0], patch, stride)
            every = await self.predictor.engine.infer(np.concatenate([image, copies]), (self.probabilities,))
            probabilities = every[self.probabilities][0]  # (P + 1, classes): the input first
            target = int(probabilities.argmax()) if target is None else target
            scores = log_probabilities(every[self.probabilities][:, target])
            attribution = occlusion_map(float(scores[0]), scores[1:], masks)
            parameters: dict[str, Any] = {"patch": patch, "stride": stride, "copies": len(copies)}
        else:
            assert self.gradcam is not None
            values = await self.predictor.engine.infer(image, (self.probabilities, self.gradcam.layer))
            probabilities = values[self.probabilities][0]
            target = int(probabilities.argmax()) if target is None else target
            attribution = self.gradcam.attribution(values[self.gradcam.layer][0], image[0, 0], target)
            parameters = {"layer": self.gradcam.layer}
        timings = {"decode_preprocess": ms(prepared.seconds[0]), "inference": ms(time.perf_counter() - infer_start)}
        timings["total"] = ms(time.perf_counter() - start)
        return Explanation(image[0, 0], attribution, probabilities, target, method, parameters, timings)

    async def explain(self, upload: Upload, method: str, target: int | None, patch: int, stride: int) -> dict[str, Any]:
        """`POST /explain`: the prediction, the input the model saw and the target's attribution, as JSON types."""
        found = await self.attribute(upload, method, target, patch, stride)
        digit = int(found.probabilities.argmax())
        return {
            "digit": digit,
            "confidence": float(found.probabilities[digit]),
            "target": found.target,
            "target_probability": float(found.probabilities[found.target]),
            "method": found.method,
            "parameters": found.parameters,
            "attribution": {"shape": [SIDE, SIDE], "data": found.attribution.astype(np.float32).tolist()},
            "input": encode_map(INPUT_LAYER, "input", found.image[None], "json"),
            "model": self.predictor.model,
            "timings_ms": found.timings,
        }

    async def picture(self, upload: Upload, method: str, target: int | None, patch: int, stride: int) -> bytes:
        """`POST /explain.png`: the attribution as a heatmap over the input, with its legend."""
        found = await self.attribute(upload, method, target, patch, stride)
        name = self.predictor.model["name"]
        title = f"{found.method} for {found.target} (p {found.probabilities[found.target]:.2f}), {name}"
        return await anyio.to_thread.run_sync(
            lambda: png_bytes(render_explanation(found.image, found.attribution, title))
        )


@dataclass(frozen=True, slots=True)
class Explanation:
    """One attribution: the input the model saw (28, 28), the map (28, 28), and what it explains."""

    image: np.ndarray
    attribution: np.ndarray  # positive: evidence for the target
    probabilities: np.ndarray  # (classes,)
    target: int
    method: str
    parameters: dict[str, Any]
    timings: dict[str, float]


def log_probabilities(probabilities: np.ndarray) -> np.ndarray:
    """Probabilities -> their logs in float64, floored at 1e-30 (a float32 probability can underflow to 0)."""
    return np.log(np.maximum(probabilities.astype(np.float64), 1e-30))
