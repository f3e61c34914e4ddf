"""An attribution map as a picture: a diverging colour map over the 28x28 input the model saw, with a legend."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

ZOOM = 10  # each input pixel as a 10x10 square: 280 x 280
LEGEND_HEIGHT, LEGEND_BAR, MARGIN = 44, 12, 8
# Blue (against the target), white (nothing), red (for it): ColorBrewer's RdBu ends, through white.
NEGATIVE, NEUTRAL, POSITIVE = np.array((33, 102, 172.0)), np.array((247, 247, 247.0)), np.array((178, 24, 43.0))


def diverging(unit: np.ndarray) -> np.ndarray:
    """Values in [-1, 1] (any shape) -> RGB floats (..., 3): blue through white to red."""
    unit = np.clip(unit, -1.0, 1.0)[..., None]
    towards = np.where(unit < 0, NEGATIVE, POSITIVE)
    return NEUTRAL + np.abs(unit) * (towards - NEUTRAL)


def overlay(image: np.ndarray, attribution: np.ndarray) -> tuple[np.ndarray, float]:
    """(28, 28) input in [0, 1] and attribution -> RGB uint8 (280, 280, 3), and the scale (largest |value|).

    The input shows through as grey ink; colour strength grows with |attribution| on one symmetric scale.
    """
    scale = float(np.abs(attribution).max()) or 1.0
    unit = attribution / scale
    colour = diverging(unit)
    ink = image[..., None] * 255.0
    strength = np.abs(unit)[..., None] ** 0.75  # NOTE: weak evidence stays visible, zero stays the input
    grey = 255.0 - 0.55 * ink  # dark ink on white, so the map's colours read as on paper
    rgb = (1 - strength) * np.repeat(grey, 3, axis=-1) + strength * colour * (1 - 0.35 * ink / 255.0)
    picture = np.clip(rgb, 0, 255).astype(np.uint8).repeat(ZOOM, axis=0).repeat(ZOOM, axis=1)
    return picture, scale


def legend(width: int, scale: float, title: str) -> np.ndarray:
    """A strip under the picture: the colour bar from -scale to +scale, and what is shown."""
    strip = Image.new("RGB", (width, LEGEND_HEIGHT), (255, 255, 255))
    bar = diverging(np.linspace(-1.0, 1.0, width - 2 * MARGIN))  # (W, 3)
    bar_pixels = np.repeat(bar[None], LEGEND_BAR, axis=0).astype(np.uint8)
    strip.paste(Image.fromarray(bar_pixels), (MARGIN, MARGIN // 2))
    draw = ImageDraw.Draw(strip)
    label_y = MARGIN // 2 + LEGEND_BAR + 2
    draw.text((MARGIN, label_y), f"-{scale:.3g}", fill=(0, 0, 0))
    draw.text((width // 2 - 3, label_y), "0", fill=(0, 0, 0))
    high = f"+{scale:.3g}"
    draw.text((width - MARGIN - 6 * len(high), label_y), high, fill=(0, 0, 0))
    draw.text((MARGIN, label_y + 13), title[: width // 6], fill=(60, 60, 60))
    return np.asarray(strip)


def render_explanation(image: np.ndarray, attribution: np.ndarray, title: str) -> np.ndarray:
    """The heatmap over the input with its legend below: RGB uint8 (280 + legend, 280, 3)."""
    picture, scale = overlay(image, attribution)
    return np.concatenate([picture, legend(picture.shape[1], scale, title)])
