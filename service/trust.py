"""Whether an answer can be trusted: the ink's shape before it was scaled to 20 px, and the model's confidence.

The MNIST recipe blows any ink up to a 20 px box, so a click on the canvas (a dot) becomes a filled disc and a
dash a fat bar, which the model then names with confidence. measure_ink reads the ink where preprocessing finds
it, before that blow-up; reasons() turns those measurements and the probabilities into the reasons a person
reads. Every threshold was chosen from measurements (bench/trust.py, docs/trust.md): the MNIST test digits,
drawn digits and a set of non-digits (dots, dashes, blobs, scribbles, letters, shapes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# --- the reasons, as a client shows them ------------------------------------------------------------------

TOO_LITTLE_INK = "too little ink"
BLOB = "a blob, not a digit"
LINE = "a line, not a digit"
SCRIBBLE = "a scribble, not a digit"
LOW_CONFIDENCE = "low confidence ({:.2f})"  # formatted with the answer's confidence

# Inks larger than this on their long side are measured on a copy shrunk by a whole factor (block means), near
# MNIST's scale where the thresholds were measured: it averages a photo's noise away, so ragged edges and
# pinholes in a faint stroke do not pass for loops and length, and a 3000 px crop costs 30 ms, not 230. A
# digit's stroke is at least 3.5% of its box (MNIST's thinnest), 3 blocks or more across.
MEASURE_MAX_SIDE = 96

# --- thresholds: each set past what the 10,000 MNIST test digits reach (docs/trust.md has the counts) ----

# A click of the page's 26 px brush on its 320 px pad is a box 0.08 of the image; MNIST's is 20/28 = 0.71,
# photographed MNIST digits and small pad drawings >= 0.35. MNIST's sparsest digit inks 19 pixels.
MIN_BOX_SHARE = 0.1
MIN_AREA = 12
# Mean stroke width / the box's long side: a disc 0.39, a filled square 0.5; 4 MNIST digits of 10,000 and
# no drawn digit reach 0.25 (digits drawn small with the fat brush reach 0.21).
MAX_THICKNESS = 0.25
# Elongated ink lying within 35 degrees of horizontal: a dash. A "1" is as elongated, but upright or leaning:
# 3 MNIST digits are this elongated and this flat.
LINE_ELONGATION = 2.5
LINE_TILT = 55.0  # degrees from vertical
# Five loops or more, or strokes over 4.5 times the box's long side (an "8" is 3-4): 3 MNIST digits.
MAX_LOOPS = 5
MAX_LENGTH = 4.5
# Below this top probability an answer is flagged. Where the card says the probabilities are calibrated
# (temperature-scaled), an answer under 0.5 is more likely wrong than right; an under-confident model (label
# smoothing, temperature 1) is right more often than its confidence says, so there it flags a little more.
MIN_CONFIDENCE = 0.5


@dataclass(frozen=True, slots=True)
class InkStats:
    """The ink as preprocessing found it, before scaling: the measurements the trust reasons are read from."""

    box_share: float  # the ink box's long side / the image's long side
    area: int  # pixels inked at least half (of the measured copy: see MEASURE_MAX_SIDE)
    fill: float  # area / box area
    thickness: float  # mean stroke width (2 area / perimeter) / the box's long side
    length: float  # stroke length (perimeter / 2) / the box's long side: about 1 for a "1", 3-4 for an "8"
    loops: int  # holes in the ink minus its separate pieces, plus one (Euler number): 0, 1, 2 for 1, 0, 8
    elongation: float  # sqrt(major / minor second moment) of the ink: 1 for a disc, large for a line
    tilt: float  # degrees between the ink's major axis and the vertical, 0 to 90

    def rounded(self) -> dict[str, float]:
        """As bench/trust.py prints them."""
        return {name: round(float(getattr(self, name)), 3) for name in self.__slots__}


def measure_ink(crop: np.ndarray, image_shape: tuple[int, ...]) -> InkStats:
    """InkStats of crop (h, w), the ink box cut from an image of image_shape, ink in [0, 1] on 0."""
    box_share = max(crop.shape) / max(image_shape)
    crop = _shrunk(crop, math.ceil(max(crop.shape) / MEASURE_MAX_SIDE))
    height, width = crop.shape
    side = max(height, width)
    mask = np.zeros((height + 2, width + 2), np.uint8)  # a blank frame round the box
    mask[1:-1, 1:-1] = crop >= 0.5 * float(crop.max())
    area = int(np.count_nonzero(mask))
    perimeter, euler = _contour(mask)
    elongation, tilt = _shape_axes(crop)
    return InkStats(
        box_share=box_share,
        area=area,
        fill=area / (height * width),
        thickness=2.0 * area / perimeter / side,
        length=perimeter / 2 / side,
        loops=1 - euler,
        elongation=elongation,
        tilt=tilt,
    )


def _shrunk(crop: np.ndarray, factor: int) -> np.ndarray:
    # (h, w) -> (ceil(h / factor), ceil(w / factor)) block means, the edges padded with blank.
    if factor == 1:
        return crop
    height, width = -(-crop.shape[0] // factor) * factor, -(-crop.shape[1] // factor) * factor
    padded = np.zeros((height, width), np.float32)
    padded[: crop.shape[0], : crop.shape[1]] = crop
    blocks = padded.reshape(height // factor, factor, width).sum(axis=1)  # (h', w)
    return blocks.reshape(height // factor, width // factor, factor).sum(axis=2) * (1.0 / factor**2)


# 2x2 windows by their code (top-left 1, top-right 2, bottom-left 4, bottom-right 8): one pixel inked, three
# inked, the two diagonal pairs.
_ONE, _THREE, _DIAGONAL = [1, 2, 4, 8], [7, 11, 13, 14], [6, 9]


def _contour(mask: np.ndarray) -> tuple[int, int]:
    # mask (h + 2, w + 2) uint8 with a blank frame -> (perimeter, Euler number). The perimeter counts edges
    # between inked and blank 4-neighbours; the Euler number (pieces minus holes, ink 8-connected) comes from
    # Gray's bit quads: (windows with one inked - windows with three - 2 diagonal windows) / 4.
    perimeter = np.count_nonzero(mask[1:] != mask[:-1]) + np.count_nonzero(mask[:, 1:] != mask[:, :-1])
    codes = mask[:-1, :-1] + 2 * mask[:-1, 1:] + 4 * mask[1:, :-1] + 8 * mask[1:, 1:]
    counts = np.bincount(codes.ravel(), minlength=16)
    euler = (counts[_ONE].sum() - counts[_THREE].sum() - 2 * counts[_DIAGONAL].sum()) // 4
    return max(int(perimeter), 1), int(euler)


def _shape_axes(crop: np.ndarray) -> tuple[float, float]:
    # The ink's second central moments (mass-weighted), from its row and column profiles and one
    # matrix-vector product: (elongation, tilt of the major axis from the vertical in degrees).
    row_profile, col_profile = crop.sum(axis=1, dtype=np.float64), crop.sum(axis=0, dtype=np.float64)
    mass = float(row_profile.sum())
    if mass <= 0:
        return 1.0, 0.0
    rows, cols = np.arange(crop.shape[0], dtype=np.float64), np.arange(crop.shape[1], dtype=np.float64)
    mean_row, mean_col = float(row_profile @ rows) / mass, float(col_profile @ cols) / mass
    var_row = float(row_profile @ (rows * rows)) / mass - mean_row**2 + 1 / 12  # + a pixel's own spread
    var_col = float(col_profile @ (cols * cols)) / mass - mean_col**2 + 1 / 12
    covariance = float(rows @ (crop @ cols)) / mass - mean_row * mean_col
    spread = math.hypot((var_row - var_col) / 2, covariance)
    major, minor = (var_row + var_col) / 2 + spread, (var_row + var_col) / 2 - spread
    angle = math.degrees(0.5 * math.atan2(2 * covariance, var_row - var_col))  # major axis from the row axis
    return math.sqrt(major / max(minor, 1e-12)), abs(angle)


def ink_reasons(ink: InkStats) -> list[str]:
    """What the ink's shape says against reading it as a digit: the first reason that holds, or none."""
    if ink.box_share < MIN_BOX_SHARE or ink.area < MIN_AREA:
        return [TOO_LITTLE_INK]
    if ink.thickness >= MAX_THICKNESS:
        return [BLOB]
    if ink.elongation >= LINE_ELONGATION and ink.tilt >= LINE_TILT:
        return [LINE]
    if ink.loops >= MAX_LOOPS or ink.length >= MAX_LENGTH:
        return [SCRIBBLE]
    return []


def reasons(ink: InkStats, probabilities: np.ndarray) -> list[str]:
    """Why an answer should not be trusted (empty when it can be): the ink's shape, then the confidence."""
    found = ink_reasons(ink)
    confidence = float(probabilities.max())
    if confidence < MIN_CONFIDENCE:
        found.append(LOW_CONFIDENCE.format(confidence))
    return found
