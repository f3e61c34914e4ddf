"""The data plane: image bytes in, plain dicts (or PNG bytes) out. No HTTP types in here.

Every model run goes through `InferenceEngine.infer`, the one async seam; it hands the run to the
micro-batcher (service/batching.py), so concurrent requests share onnxruntime runs.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio.lowlevel
import anyio.to_thread
import numpy as np

from service.batching import MicroBatcher
from service.contract import IMAGE_SHAPE, INPUT_LAYER, Contract
from service.errors import BadRequest, NotFound, ServiceError
from service.featuremaps import MapFormat, encode_map, png_bytes, render_map
from service.preprocess import prepare_digit_with_ink
from service.runtime import ModelRuntime
from service.trust import InkStats, reasons

if TYPE_CHECKING:
    from service.uploads import Upload

# Small PNGs are decoded and preprocessed on the event loop: a 28x28 digit takes ~0.08 ms and a 64x64 one
# ~0.2 ms, less than the hop to a worker thread and back (which also contends for the GIL). Per image.
INLINE_MAX_PIXELS = 64 * 64
INLINE_MAX_BYTES = 16 * 1024
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class InferenceEngine:
    """Runs the model off the event loop, batching concurrent calls: `await engine.infer(images, outputs)`.

    `async with engine:` (the app's lifespan) starts and drains the micro-batcher.
    """

    def __init__(
        self,
        runtime: ModelRuntime,
        *,
        max_batch_size: int = 64,
        max_batch_delay_ms: float = 0.0,
        on_batch: Callable[[int], None] | None = None,
        on_queued: Callable[[float], None] | None = None,
        on_request: Callable[[], None] | None = None,
        alone: Callable[[], bool] | None = None,
    ) -> None:
        self.runtime = runtime
        self._on_request = on_request
        self.batcher = MicroBatcher(
            runtime.run,
            max_batch_size=max_batch_size,
            max_delay=max_batch_delay_ms / 1000.0,
            on_batch=on_batch,
            on_queued=on_queued,
            alone=alone,
        )

    async def __aenter__(self) -> InferenceEngine:
        await self.batcher.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.batcher.stop()

    async def infer(self, images: np.ndarray, outputs: Sequence[str]) -> dict[str, np.ndarray]:
        """images (N, 1, 28, 28) float32 -> the named outputs, each (N, ...), from a (shared) onnxruntime run."""
        # Checked here, per caller, so one bad request can never fail the batch it would have joined.
        if images.dtype != np.float32 or images.shape[1:] != IMAGE_SHAPE or not len(images):
            raise ValueError(f"images must be float32 (N, 1, 28, 28), N >= 1, got {images.dtype} {images.shape}")
        names = self.runtime.contract.output_names
        if not outputs or any(name not in names for name in outputs):
            raise ValueError(f"outputs must be names from {', '.join(names)}, got {list(outputs)}")
        if self._on_request is not None:
            self._on_request()
        return await self.batcher.infer(images, tuple(outputs))


def parse_layers(text: str | None, contract: Contract) -> tuple[str, ...]:
    """A comma-separated layer list (None or empty: all) -> the model's names in graph order; BadRequest if unknown.

    `input` may be named too (as in /feature-maps/input.png); it is in every answer, so it adds nothing here.
    """
    names = contract.output_names
    if text is None or not text.strip():
        return names
    asked = {name.strip() for name in text.split(",") if name.strip()}
    unknown = sorted(asked - {INPUT_LAYER, *names})
    if unknown:
        choices = ", ".join((INPUT_LAYER, *names))
        raise BadRequest(f"unknown layer {_quoted(unknown[0])} in query 'layers': choose from {choices}")
    return tuple(name for name in names if name in asked)


def check_png_layer(layer: str, contract: Contract) -> str:
    """The layer name of a picture request; NotFound (404) unless it is one of the model's (or `input`)."""
    if layer != INPUT_LAYER and contract.output(layer) is None:
        choices = ", ".join((INPUT_LAYER, *contract.output_names))
        raise NotFound(f"unknown layer {_quoted(layer)}: choose one of {choices}")
    return layer


def _small_png_pixels(data: bytes) -> int:
    # The pixels of a small PNG, read from its IHDR chunk (width, height at bytes 16-24) without decoding
    # anything; anything else counts as too many.
    if len(data) > INLINE_MAX_BYTES or not data.startswith(_PNG_SIGNATURE) or data[12:16] != b"IHDR":
        return INLINE_MAX_PIXELS + 1
    width, height = struct.unpack(">II", data[16:24])
    return width * height


def _quoted(name: str) -> str:
    return repr(name if len(name) <= 40 else name[:40] + "...")


def ms(seconds: float) -> float:
    """Seconds -> milliseconds, to the microsecond, as every answer's timings_ms gives them."""
    return round(seconds * 1000.0, 3)


@dataclass(frozen=True, slots=True)
class Prepared:
    """Uploads made ready for the model: the digits, the seconds each took and each one's ink before scaling."""

    images: np.ndarray  # (N, 1, 28, 28) float32
    seconds: list[float]
    inks: list[InkStats]


class Predictor:
    """Predictions, feature maps and layer pictures for uploaded images, via one InferenceEngine."""

    def __init__(self, engine: InferenceEngine, *, max_pixels: int) -> None:
        self.engine = engine
        self.max_pixels = max_pixels
        card = engine.runtime.card
        self.model = {"name": card["name"], "version": card["version"], "sha256": card["sha256"]}

    def _prepare_one(self, prepared: Prepared, index: int, upload: Upload, name_files: bool) -> None:
        # prepared.images[index, 0] = the digit (28, 28); its seconds and ink appended.
        start = time.perf_counter()
        try:
            prepared.images[index, 0], ink = prepare_digit_with_ink(upload.data, max_pixels=self.max_pixels)
        except ServiceError as err:
            if not name_files:
                raise
            raise type(err)(f"{upload.label(index)}: {err}") from err
        prepared.seconds.append(time.perf_counter() - start)
        prepared.inks.append(ink)

    def _prepare_all(self, uploads: Sequence[Upload], name_files: bool) -> Prepared:
        prepared = Prepared(np.empty((len(uploads), *IMAGE_SHAPE), np.float32), [], [])  # (N, 1, 28, 28)
        for index, upload in enumerate(uploads):
            self._prepare_one(prepared, index, upload, name_files)
        return prepared

    async def prepare(self, uploads: Sequence[Upload], *, name_files: bool = False) -> Prepared:
        """Decode and preprocess (off the event loop unless cheap): the images, seconds and ink of each.

        With name_files, an error names the file (index and file name) that caused it.
        """
        if any(_small_png_pixels(upload.data) > INLINE_MAX_PIXELS for upload in uploads):
            return await anyio.to_thread.run_sync(self._prepare_all, uploads, name_files)
        # All small PNGs: on the loop, one image at a time, letting other requests in between images.
        # NOTE: a worker thread would not run them in parallel anyway (this is GIL-bound Python), and
        # dozens of busy threads contending for the GIL cut /predict/batch throughput below a single image's.
        prepared = Prepared(np.empty((len(uploads), *IMAGE_SHAPE), np.float32), [], [])  # (N, 1, 28, 28)
        for index, upload in enumerate(uploads):
            if index:
                await anyio.lowlevel.checkpoint()
            self._prepare_one(prepared, index, upload, name_files)
        return prepared

    def _predictions(
        self, probabilities: np.ndarray, timings: list[dict[str, float]], inks: list[InkStats]
    ) -> list[dict[str, Any]]:
        digits = probabilities.argmax(axis=1)
        answers = []
        for row, digit, timing, ink in zip(probabilities, digits, timings, inks, strict=True):
            why = reasons(ink, row)  # service/trust.py: the ink's shape before scaling, the confidence
            answers.append(
                {
                    "digit": int(digit),
                    "confidence": float(row[digit]),
                    "probabilities": row.tolist(),
                    "unsure": bool(why),
                    "unsure_reasons": why,
                    "model": self.model,
                    "timings_ms": timing,
                }
            )
        return answers

    async def predict(self, uploads: Sequence[Upload], *, name_files: bool = False) -> list[dict[str, Any]]:
        """One prediction per upload, in order, from a single model run over all of them.

        In a batch, each item's `inference` and `total` timings are the whole batch's.
        """
        start = time.perf_counter()
        prepared = await self.prepare(uploads, name_files=name_files)
        infer_start = time.perf_counter()
        answer = self.engine.runtime.contract.probabilities
        probabilities = (await self.engine.infer(prepared.images, (answer,)))[answer]  # (N, 10)
        end = time.perf_counter()
        timings = [
            {
                "decode_preprocess": ms(seconds),
                "inference": ms(end - infer_start),
                "total": ms(end - start),
            }
            for seconds in prepared.seconds
        ]
        return self._predictions(probabilities, timings, prepared.inks)

    async def feature_maps(self, upload: Upload, layers: Sequence[str], fmt: MapFormat) -> dict[str, Any]:
        """The prediction for one image, the input the model saw and the asked layers' activations."""
        start = time.perf_counter()
        prepared = await self.prepare([upload])
        images = prepared.images
        infer_start = time.perf_counter()
        contract = self.engine.runtime.contract
        values = await self.engine.infer(images, tuple(dict.fromkeys((contract.probabilities, *layers))))
        end = time.perf_counter()
        timing = {
            "decode_preprocess": ms(prepared.seconds[0]),
            "inference": ms(end - infer_start),
            "total": ms(end - start),
        }
        result = self._predictions(values[contract.probabilities], [timing], prepared.inks)[0]
        result["input"] = encode_map(INPUT_LAYER, "input", images[0], fmt)  # (1, 28, 28)
        kinds = {spec.name: spec.kind for spec in contract.outputs}
        result["layers"] = [encode_map(name, kinds[name], values[name][0], fmt) for name in layers]
        return result

    async def layer_png(self, upload: Upload, layer: str) -> bytes:
        """A PNG picture of one layer's activations for one image (channels as a grid, scores as bars)."""
        images = (await self.prepare([upload])).images  # (1, 1, 28, 28)
        spec = self.engine.runtime.contract.output(layer)
        if spec is not None:
            images = (await self.engine.infer(images, (layer,)))[layer]
        values = images[0]
        scores = spec is not None and spec.is_scores
        return await anyio.to_thread.run_sync(lambda: png_bytes(render_map(values, scores=scores)))
