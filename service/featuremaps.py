"""Feature maps as data (nested floats, or compact uint8 quantisation) and as PNG pictures (numpy + PIL)."""

from __future__ import annotations

import base64
import io
import math
from typing import Any, Literal

import numpy as np
from PIL import Image, ImageDraw

MapFormat = Literal["json", "compact"]

# Viridis at ten evenly spaced stops (matplotlib's values), interpolated to a 256-entry lookup table.
_VIRIDIS_STOPS = np.array(
    [
        (68, 1, 84),
        (72, 40, 120),
        (62, 74, 137),
        (49, 104, 142),
        (38, 130, 142),
        (31, 158, 137),
        (53, 183, 121),
        (109, 205, 89),
        (180, 222, 44),
        (253, 231, 37),
    ],
    dtype=np.float64,
)
_STOP_POSITIONS = np.linspace(0.0, 1.0, len(_VIRIDIS_STOPS))
VIRIDIS = (
    np.stack(
        [np.interp(np.linspace(0.0, 1.0, 256), _STOP_POSITIONS, _VIRIDIS_STOPS[:, c]) for c in range(3)],
        axis=1,
    )
    .round()
    .astype(np.uint8)
)  # (256, 3)

TILE_TARGET = 64  # upscale small maps with nearest neighbour until a tile is about this many pixels
GAP = 2  # pixels between tiles
BACKGROUND = 235  # light grey behind the tiles
FLATTEN_ROW, FLATTEN_ZOOM = 64, 8  # 1152 values shown as 18 rows of 64, each value 8x8 pixels
BAR_WIDTH, BAR_GAP, CHART_HEIGHT, LABEL_HEIGHT = 28, 6, 160, 16


# ---- data --------------------------------------------------------------------------------------------


def quantise(values: np.ndarray) -> tuple[np.ndarray, float, float]:
    """uint8 codes q with values ≈ offset + scale * q; the error is at most scale / 2."""
    low, high = float(values.min()), float(values.max())
    scale = (high - low) / 255.0
    if scale == 0.0:
        return np.zeros(values.shape, np.uint8), 0.0, low
    codes = np.rint((values - low) / scale)
    return np.clip(codes, 0, 255).astype(np.uint8), scale, low


def encode_map(name: str, kind: str, values: np.ndarray, fmt: MapFormat) -> dict[str, Any]:
    """One layer's activations (without the batch dim) as a JSON-ready dict in the asked format."""
    entry: dict[str, Any] = {
        "name": name,
        "kind": kind,
        "shape": list(values.shape),
        "min": float(values.min()),
        "max": float(values.max()),
    }
    if fmt == "json":
        entry["data"] = values.tolist()
    else:
        codes, scale, offset = quantise(values)
        entry["data"] = base64.b64encode(codes.tobytes()).decode("ascii")  # C order of `shape`
        entry["scale"] = scale
        entry["offset"] = offset
    return entry


# ---- pictures ----------------------------------------------------------------------------------------


def _normalise(values: np.ndarray) -> np.ndarray:
    """Scale to [0, 1] over the last two axes, each map on its own min/max (a flat map becomes 0)."""
    low = values.min(axis=(-2, -1), keepdims=True)
    span = values.max(axis=(-2, -1), keepdims=True) - low
    return np.divide(values - low, span, out=np.zeros_like(values, dtype=np.float32), where=span > 0)


def _colour(unit: np.ndarray) -> np.ndarray:
    """Values in [0, 1], any shape (...) -> RGB uint8 (..., 3) through the viridis table."""
    return VIRIDIS[np.clip(np.rint(unit * 255), 0, 255).astype(np.intp)]


def _grid(maps: np.ndarray, factor: int | None = None) -> np.ndarray:
    """(C, H, W) maps in [0, 1] -> one RGB picture of upscaled, coloured tiles in a roughly square grid."""
    channels, height, width = maps.shape
    factor = factor or max(1, math.ceil(TILE_TARGET / max(height, width)))
    tiles = _colour(maps.repeat(factor, axis=1).repeat(factor, axis=2))  # (C, H*f, W*f, 3)
    cols = math.ceil(math.sqrt(channels))
    rows = math.ceil(channels / cols)
    tile_h, tile_w = height * factor, width * factor
    canvas = np.full((rows * (tile_h + GAP) + GAP, cols * (tile_w + GAP) + GAP, 3), BACKGROUND, dtype=np.uint8)
    for index in range(channels):
        top = GAP + (index // cols) * (tile_h + GAP)
        left = GAP + (index % cols) * (tile_w + GAP)
        canvas[top : top + tile_h, left : left + tile_w] = tiles[index]
    return canvas


def _bars(values: np.ndarray) -> np.ndarray:
    """(10,) scores -> an RGB bar chart with a zero baseline and the class digit under each bar."""
    count = len(values)
    width = count * (BAR_WIDTH + BAR_GAP) + BAR_GAP
    image = Image.new("RGB", (width, CHART_HEIGHT + LABEL_HEIGHT + 2 * GAP), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    low, high = min(0.0, float(values.min())), max(0.0, float(values.max()))
    span = (high - low) or 1.0

    def y(value: float) -> int:  # chart pixel row of a value; high values near the top
        return GAP + round((high - value) / span * (CHART_HEIGHT - 1))

    best = int(values.argmax())
    for index, value in enumerate(values.tolist()):
        left = BAR_GAP + index * (BAR_WIDTH + BAR_GAP)
        colour = tuple(int(c) for c in VIRIDIS[200 if index == best else 60])
        top, bottom = sorted((y(value), y(0.0)))
        draw.rectangle((left, top, left + BAR_WIDTH - 1, bottom), fill=colour)
        draw.text((left + BAR_WIDTH // 2 - 3, CHART_HEIGHT + 2 * GAP), str(index), fill=(0, 0, 0))
    draw.line((0, y(0.0), width, y(0.0)), fill=(120, 120, 120))
    return np.asarray(image)


def render_map(values: np.ndarray, *, scores: bool = False) -> np.ndarray:
    """A layer's activations (without the batch dim) -> an RGB picture (H, W, 3) uint8.

    Class scores (one value per digit) as bars; other vectors as a strip; (C, H, W) maps as a grid of C tiles.
    """
    if scores:
        return _bars(values)
    if values.ndim == 1:  # a vector (flatten, pooled features): a strip of rows, normalised as one map
        strip = values.reshape(-1, FLATTEN_ROW) if values.size % FLATTEN_ROW == 0 else values[None, :]
        return _grid(_normalise(strip[None]), factor=FLATTEN_ZOOM)
    return _grid(_normalise(values))


def png_bytes(picture: np.ndarray) -> bytes:
    """Encode an RGB uint8 picture as PNG."""
    buffer = io.BytesIO()
    Image.fromarray(picture).save(buffer, format="PNG", compress_level=3)
    return buffer.getvalue()
