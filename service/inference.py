"""The data plane: image bytes in, plain dicts (or PNG bytes) out. No HTTP types in here.

Every model run goes through `InferenceEngine.infer`, the one async seam: micro-batching can wrap it
later without touching the routes or the Predictor.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import anyio.to_thread
import numpy as np

from service.errors import BadRequest, NotFound, ServiceError
from service.featuremaps import MapFormat, encode_map, png_bytes, render_map
from service.preprocess import prepare_digit
from service.runtime import LAYER_NAMES, ModelRuntime

if TYPE_CHECKING:
    from service.uploads import Upload

INPUT_LAYER = "input"  # the preprocessed 28x28 image, shown like a layer
PNG_LAYERS = (INPUT_LAYER, *LAYER_NAMES)


class InferenceEngine:
    """Runs the model off the event loop: `await engine.infer(images, outputs)`."""

    def __init__(self, runtime: ModelRuntime, *, on_batch: Callable[[int], None] | None = None) -> None:
        self.runtime = runtime
        self._on_batch = on_batch

    async def infer(self, images: np.ndarray, outputs: Sequence[str]) -> dict[str, np.ndarray]:
        """images (N, 1, 28, 28) float32 -> the named outputs, each (N, ...), from one onnxruntime run."""
        if self._on_batch is not None:
            self._on_batch(len(images))
        return await anyio.to_thread.run_sync(self.runtime.run, images, tuple(outputs))


def parse_layers(text: str | None) -> tuple[str, ...]:
    """A comma-separated layer list (None or empty: all) -> names in graph order; BadRequest if unknown."""
    if text is None or not text.strip():
        return LAYER_NAMES
    asked = {name.strip() for name in text.split(",") if name.strip()}
    unknown = sorted(asked - set(LAYER_NAMES))
    if unknown:
        raise BadRequest(f"unknown layer {_quoted(unknown[0])} in query 'layers': choose from {', '.join(LAYER_NAMES)}")
    return tuple(name for name in LAYER_NAMES if name in asked)


def check_png_layer(layer: str) -> str:
    """The layer name of a picture request; NotFound (404) unless it is one we can draw."""
    if layer not in PNG_LAYERS:
        raise NotFound(f"unknown layer {_quoted(layer)}: choose one of {', '.join(PNG_LAYERS)}")
    return layer


def _quoted(name: str) -> str:
    return repr(name if len(name) <= 40 else name[:40] + "...")


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, 3)


class Predictor:
    """Predictions, feature maps and layer pictures for uploaded images, via one InferenceEngine."""

    def __init__(self, engine: InferenceEngine, *, max_pixels: int) -> None:
        self.engine = engine
        self.max_pixels = max_pixels
        card = engine.runtime.card
        self.model = {"name": card["name"], "version": card["version"], "sha256": card["sha256"]}

    def _prepare_all(self, uploads: Sequence[Upload], name_files: bool) -> tuple[np.ndarray, list[float]]:
        images = np.empty((len(uploads), 1, 28, 28), np.float32)  # (N, 1, 28, 28)
        seconds = []
        for index, upload in enumerate(uploads):
            start = time.perf_counter()
            try:
                images[index, 0] = prepare_digit(upload.data, max_pixels=self.max_pixels)
            except ServiceError as err:
                if not name_files:
                    raise
                raise type(err)(f"{upload.label(index)}: {err}") from err
            seconds.append(time.perf_counter() - start)
        return images, seconds

    async def prepare(self, uploads: Sequence[Upload], *, name_files: bool = False) -> tuple[np.ndarray, list[float]]:
        """Decode and preprocess off the event loop -> (images (N, 1, 28, 28), seconds per image).

        With name_files, an error names the file (index and file name) that caused it.
        """
        return await anyio.to_thread.run_sync(self._prepare_all, uploads, name_files)

    def _predictions(self, probabilities: np.ndarray, timings: list[dict[str, float]]) -> list[dict[str, Any]]:
        digits = probabilities.argmax(axis=1)
        return [
            {
                "digit": int(digit),
                "confidence": float(row[digit]),
                "probabilities": row.tolist(),
                "model": self.model,
                "timings_ms": timing,
            }
            for row, digit, timing in zip(probabilities, digits, timings, strict=True)
        ]

    async def predict(self, uploads: Sequence[Upload], *, name_files: bool = False) -> list[dict[str, Any]]:
        """One prediction per upload, in order, from a single model run over all of them.

        In a batch, each item's `inference` and `total` timings are the whole batch's.
        """
        start = time.perf_counter()
        images, decode = await self.prepare(uploads, name_files=name_files)
        infer_start = time.perf_counter()
        probabilities = (await self.engine.infer(images, ("probabilities",)))["probabilities"]  # (N, 10)
        end = time.perf_counter()
        timings = [
            {
                "decode_preprocess": _ms(seconds),
                "inference": _ms(end - infer_start),
                "total": _ms(end - start),
            }
            for seconds in decode
        ]
        return self._predictions(probabilities, timings)

    async def feature_maps(self, upload: Upload, layers: Sequence[str], fmt: MapFormat) -> dict[str, Any]:
        """The prediction for one image, the input the model saw and the asked layers' activations."""
        start = time.perf_counter()
        images, decode = await self.prepare([upload])
        infer_start = time.perf_counter()
        values = await self.engine.infer(images, tuple(dict.fromkeys(("probabilities", *layers))))
        end = time.perf_counter()
        timing = {
            "decode_preprocess": _ms(decode[0]),
            "inference": _ms(end - infer_start),
            "total": _ms(end - start),
        }
        result = self._predictions(values["probabilities"], [timing])[0]
        result["input"] = encode_map(INPUT_LAYER, images[0], fmt)  # (1, 28, 28)
        result["layers"] = [encode_map(name, values[name][0], fmt) for name in layers]
        return result

    async def layer_png(self, upload: Upload, layer: str) -> bytes:
        """A PNG picture of one layer's activations for one image (channels as a grid, scores as bars)."""
        images, _ = await self.prepare([upload])  # (1, 1, 28, 28)
        if layer != INPUT_LAYER:
            images = (await self.engine.infer(images, (layer,)))[layer]
        values = images[0]
        return await anyio.to_thread.run_sync(lambda: png_bytes(render_map(layer, values)))
