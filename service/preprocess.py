"""Uploaded image bytes -> the (28, 28) float32 white-on-black digit the model was trained on.

prepare_digit runs two stages: decoding (bytes -> upright grayscale image of the first frame, with every
failure mapped to a ServiceError, and the pixel count checked from the header before anything is decoded)
and mnist_recipe (grayscale array -> MNIST layout: ink cropped, longest side scaled to 20 px, centre of
mass at (14, 14) in a 28x28 black frame). The *_with_ink siblings also return the ink's measurements in its box
before the box is scaled (service/trust.py), which tell a dot or a dash from a digit.
"""

from __future__ import annotations

import contextlib
import io
import re
import threading
from collections.abc import Callable, Iterator
from typing import Literal

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from PIL import Image, ImageChops, ImageOps, ImageStat

from service.errors import BadRequest, UnsupportedImage, UnusableImage
from service.trust import InkStats, measure_ink

# Pillow's names for the formats we decode; Image.open tries no other plugin.
SUPPORTED_FORMATS = ("PNG", "JPEG", "GIF", "BMP", "WEBP", "TIFF")
_FORMATS_TEXT = "PNG, JPEG, GIF, BMP, WebP or TIFF"

# JPEGs decode at 1/2, 1/4 or 1/8 scale for free (DCT scaling); stop while the long side stays >= this.
_JPEG_DRAFT_MIN_SIDE = 600

SIZE = 28  # output frame, (SIZE, SIZE)
BOX = 20  # the digit's longest side inside the frame, as in MNIST
CENTRE = 14.0  # where the centre of mass lands (row, col)

# Long side of the coarse copy on which a photo's uneven lighting is estimated.
_LIGHTING_GRID = 32
# Below this (on a 0..1 scale) between the background noise and the brightest ink, there is no digit.
_MIN_CONTRAST = 0.1
# Background noise ceiling in robust standard deviations above the median background.
_NOISE_SIGMAS = 5.0
# Least noise assumed once a photo's lighting is flattened (2.5 grey levels): floor >= 0.05.
_MIN_PHOTO_SIGMA = 0.01
# Photos at least this many pixels on their short side are smoothed (3x3 mean) before the noise floor is set;
# in smaller ones that would blur away strokes a pixel or two wide.
_SMOOTH_MIN_SIDE = SIZE
# Share of ink mass ignored at each end when finding the bounding box: stray specks and dust.
_BOX_TRIM = 0.002

# Pixels being decoded and prepared at once, over all threads. NOTE: preparing a 4096x4096 image holds about
# 17 bytes a pixel (~285 MB) for a moment; 16 of them at once took 3.8 GB. Past this budget an image waits
# for others to finish; one image alone always goes ahead, so small ones hardly ever wait.
PIXEL_BUDGET = 2 * 4096 * 4096


def prepare_digit(data: bytes, *, max_pixels: int) -> np.ndarray:
    """Decode an uploaded image and apply the MNIST recipe: (28, 28) float32 in [0, 1], white ink on black.

    max_pixels (MNIST_MAX_IMAGE_PIXELS) bounds the pixels the image header may declare.
    """
    return prepare_digit_with_ink(data, max_pixels=max_pixels)[0]


def prepare_digit_with_ink(data: bytes, *, max_pixels: int) -> tuple[np.ndarray, InkStats]:
    """prepare_digit, and what the ink looked like before it was scaled (service/trust.py judges it)."""
    image = _open_checked(data, max_pixels)
    with _pixels_in_flight.hold(image.size[0] * image.size[1]):
        gray = np.asarray(_decode(image, max_pixels), dtype=np.float32)
        gray /= 255.0  # division, not * (1 / 255): bit-identical to the training pipeline's x / 255
        return mnist_recipe_with_ink(gray)


class _PixelBudget:
    """Pixels in flight across threads: `hold(n)` waits until n more fit in the limit, or nothing else runs."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_use = 0
        self._changed = threading.Condition()

    @contextlib.contextmanager
    def hold(self, pixels: int) -> Iterator[None]:
        with self._changed:
            self._changed.wait_for(lambda: self.in_use == 0 or self.in_use + pixels <= self.limit)
            self.in_use += pixels
        try:
            yield
        finally:
            with self._changed:
                self.in_use -= pixels
                self._changed.notify_all()


_pixels_in_flight = _PixelBudget(PIXEL_BUDGET)


# --- decoding -------------------------------------------------------------------------------------


def _open_checked(data: bytes, max_pixels: int) -> Image.Image:
    if not data:
        raise BadRequest(f"empty upload: the file has no bytes; attach a {_FORMATS_TEXT} image of a digit")
    image = _open(data, max_pixels)
    _check_size(image.size, max_pixels)  # header only: nothing is decoded yet
    return image


def _decode(image: Image.Image, max_pixels: int) -> Image.Image:
    _load(image, max_pixels)
    _orient(image)
    try:
        return _to_gray(image)
    except Exception as exc:  # NOTE: Pillow raises ValueError, OSError or KeyError for odd modes
        raise UnsupportedImage(
            f"cannot convert a {image.mode} image to grayscale ({exc}); save it as an 8-bit RGB or "
            "grayscale PNG or JPEG and upload it again"
        ) from exc


def _open(data: bytes, max_pixels: int) -> Image.Image:
    try:
        return Image.open(io.BytesIO(data), formats=SUPPORTED_FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise _too_many_pixels(_bomb_size(exc), max_pixels) from exc
    except Exception as exc:  # UnidentifiedImageError, and whatever a plugin trips on in a bad header
        raise UnsupportedImage(
            f"not a readable image: the upload is not {_FORMATS_TEXT}, or its header is damaged; "
            "upload the digit in one of those formats"
        ) from exc


def _check_size(size: tuple[int, int], max_pixels: int) -> None:
    width, height = size
    if width <= 0 or height <= 0:
        raise UnusableImage(f"the image is {width}x{height} pixels, it has no pixels; upload a real picture")
    if width * height > max_pixels:
        raise _too_many_pixels(f"{width}x{height} = {width * height:,} pixels", max_pixels)


def _too_many_pixels(size: str, max_pixels: int) -> UnusableImage:
    return UnusableImage(
        f"image too large: {size}, over the limit of {max_pixels:,} pixels; shrink or crop it "
        "around the digit (a few hundred pixels across is plenty) and upload it again"
    )


def _bomb_size(exc: Exception) -> str:
    # Pillow's own decompression-bomb guard fired first; its message carries the declared pixel count.
    found = re.search(r"\((\d+) pixels\)", str(exc))
    return f"{int(found[1]):,} pixels" if found else "more pixels than can be decoded safely"


def _load(image: Image.Image, max_pixels: int) -> None:
    if image.format == "JPEG":
        _draft_jpeg(image)
    try:
        image.load()  # decodes the first frame only; later frames are never read
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise _too_many_pixels(_bomb_size(exc), max_pixels) from exc
    except Exception as exc:  # OSError("image file is truncated"), SyntaxError, ValueError, zlib.error ...
        raise UnsupportedImage(
            f"the {image.format} image data is truncated or corrupt ({exc}); "
            "upload the complete file again, or re-save it in an image editor"
        ) from exc


def _draft_jpeg(image: Image.Image) -> None:
    # Decode straight to grayscale, and at reduced scale when a photo is far bigger than a digit needs.
    scale = max(1, max(image.size) // _JPEG_DRAFT_MIN_SIDE)
    image.draft("L", (image.size[0] // scale, image.size[1] // scale))


def _orient(image: Image.Image) -> None:
    # NOTE: broken EXIF is common in phone photos; then keep the image as stored.
    with contextlib.suppress(Exception):
        ImageOps.exif_transpose(image, in_place=True)  # in place: no copy when there is nothing to do


def _to_gray(image: Image.Image) -> Image.Image:
    mode = image.mode
    if mode == "L" and "transparency" not in image.info:
        return image
    if mode.startswith("I") or mode == "F":  # 16/32-bit and float: scale to 8 bits ourselves
        return Image.fromarray(_to_uint8(np.asarray(image), mode))
    if image.has_transparency_data:
        return _flatten_alpha(image)
    if mode == "LAB":  # Pillow cannot convert LAB; its L band already is the lightness
        return image.getchannel("L")
    return image.convert("L")  # 1, P, RGB, CMYK, YCbCr ...: ITU-R 601 luma


def _to_uint8(values: np.ndarray, mode: str) -> np.ndarray:
    # NOTE: Pillow's own I;16 -> L conversion clips at 255 instead of scaling, turning most ink white.
    values = np.nan_to_num(values.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    top = float(values.max(initial=0.0))
    if mode.startswith("I;16"):
        full_scale = 65535.0
    elif mode == "F" and top <= 1.0:
        full_scale = 1.0  # float images usually hold 0..1
    elif top <= 255.0:
        full_scale = 255.0  # 8-bit data in a 32-bit container
    elif top <= 65535.0:
        full_scale = 65535.0  # 16-bit data in a 32-bit container
    else:
        full_scale = top
    return np.rint(np.clip(values * (255.0 / full_scale), 0.0, 255.0)).astype(np.uint8)


def _flatten_alpha(image: Image.Image) -> Image.Image:
    # Any mode with transparency -> "L", transparent areas in a colour that contrasts with the ink.
    # Pillow's C operations here: in numpy the temporaries cost twice the time on a 280x280 canvas.
    lum, alpha = (image if image.mode == "LA" else image.convert("LA")).split()
    if alpha.getextrema()[0] == 255:
        return lum  # fully opaque: the alpha band says nothing
    # A canvas drawing is strokes on a transparent background whose hidden colour is arbitrary
    # (often black, like the strokes): the ink is what is opaque, so put it on a contrasting ground.
    weight = ImageStat.Stat(alpha).sum[0]
    ink_lum = 255 * ImageStat.Stat(ImageChops.multiply(lum, alpha)).sum[0] / weight if weight else 0.0
    ground = Image.new("L", image.size, 255 if ink_lum < 128 else 0)
    return Image.composite(lum, ground, alpha)


# --- the MNIST recipe -----------------------------------------------------------------------------


def mnist_recipe(gray: np.ndarray) -> np.ndarray:
    """(H, W) float32 grayscale in [0, 1] -> (28, 28) float32 white digit on black, laid out like MNIST."""
    return mnist_recipe_with_ink(gray)[0]


def mnist_recipe_with_ink(gray: np.ndarray) -> tuple[np.ndarray, InkStats]:
    """mnist_recipe, and the ink's measurements in its box before the box was scaled to 20 px."""
    gray = np.asarray(gray, dtype=np.float32)
    if gray.ndim != 2 or gray.size == 0:
        raise ValueError(f"expected a non-empty (H, W) grayscale array, got shape {gray.shape}")
    image = _white_on_black(gray)
    if _is_mnist_layout(image):
        digit = image.copy() if image is gray else image  # already what the model wants: leave it alone
        rows, cols = np.flatnonzero(digit.any(axis=1)), np.flatnonzero(digit.any(axis=0))
        return digit, measure_ink(digit[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1], digit.shape)
    ink = _remove_background(image)  # (H, W), background 0, ink up to 1
    top, bottom, left, right = _ink_box(ink)
    crop = ink[top:bottom, left:right]
    return _centre_by_mass(_fit_box(crop)), measure_ink(crop, ink.shape)


def _border(image: np.ndarray) -> np.ndarray:
    return np.concatenate((image[0], image[-1], image[1:-1, 0], image[1:-1, -1]))


def _white_on_black(image: np.ndarray) -> np.ndarray:
    # The border is mostly background; the ink is the extreme farther from it (dark ink on light paper,
    # or light ink on a dark ground), which also copes with grey paper in a dim photo.
    background = _median(_border(image))
    if background - float(image.min()) > float(image.max()) - background:
        return 1.0 - image
    return image


def _is_mnist_layout(image: np.ndarray) -> bool:
    # True for a 28x28 on pure black whose ink box and centre of mass already match the recipe's output.
    # All 10,000 MNIST test images have a box side of 19 or 20 and their mass within 0.5 px of the centre;
    # the check allows 18-20 and 1 px, so a digit re-saved or nudged by a pixel also passes untouched.
    if image.shape != (SIZE, SIZE):
        return False
    rows = np.flatnonzero(image.any(axis=1))
    cols = np.flatnonzero(image.any(axis=0))
    if rows.size == 0:
        return False
    side = max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1
    if not BOX - 2 <= side <= BOX:
        return False
    centre_row, centre_col = _centre_of_mass(image)
    return max(abs(centre_row - CENTRE), abs(centre_col - CENTRE)) <= 1.0


def _remove_background(image: np.ndarray) -> np.ndarray:
    # A clean background (MNIST, canvas drawings) has no spread on the border: it is subtracted as is,
    # so soft antialiased edges survive. Photos and scans get their lighting evened out and their noise
    # averaged down, then everything under the paper's level + 5 sigma (texture, sensor noise) becomes black.
    level, sigma = _border_level(image)
    big = min(image.shape) >= _SMOOTH_MIN_SIDE
    if sigma > 0 or (big and _is_grainy(_border(image))):
        image = _flatten_lighting(image)
        image = _smooth(image) if big else image
        level, sigma = _border_level(image)
        # JPEG blocking and interpolation leave some residue: _MIN_PHOTO_SIGMA
        sigma = max(sigma, _upper_sigma(_border(image), level), _MIN_PHOTO_SIGMA)
    floor = level + _NOISE_SIGMAS * sigma
    peak = float(image.max())
    if peak - floor < _MIN_CONTRAST:
        raise UnusableImage(
            "no digit found: the image is blank, nearly uniform or only noise; "
            "upload a picture with a clearly visible digit (dark on light or light on dark)"
        )
    ink = image - floor
    ink *= 1.0 / (peak - floor)
    return np.clip(ink, 0.0, 1.0, out=ink)


def _border_level(image: np.ndarray) -> tuple[float, float]:
    # Median and MAD-based sigma: robust to ink that touches the edge of a tight crop.
    border = _border(image)
    level = _median(border)
    return level, 1.4826 * _median(np.abs(border - level))


def _is_grainy(border: np.ndarray) -> bool:
    # NOTE: white paper with noise, saved as 8 bits, is clipped at 255: over half its border can be exactly
    # the level, so the MAD says 0 and the photo would pass as a clean drawing, every speck of noise ink.
    # Noise changes from one pixel to the next, where a clean drawing's ink on the border comes in runs.
    return _median(np.abs(np.diff(border))) > 0


def _upper_sigma(border: np.ndarray, level: float) -> float:
    # Sigma from the upper quartile alone: the side of the noise that passes for ink. Where the paper was
    # clipped at white, the lower half is squashed and the MAD comes out small; the upper half keeps its
    # spread. NOTE: ink on over a quarter of the border inflates it (a higher floor, never noise as ink).
    upper = int(0.75 * (border.size - 1))
    return (float(np.partition(border, upper)[upper]) - level) / 0.6745


def _smooth(image: np.ndarray) -> np.ndarray:
    # 3x3 mean, edges repeated: divides white noise by 3 while a stroke keeps its mass, so the floor drops
    # three times as far as faint ink does, and single-pixel specks never reach it.
    padded = np.pad(image, 1, mode="edge")
    rows = padded[:-2] + padded[1:-1] + padded[2:]
    summed = rows[:, :-2] + rows[:, 1:-1] + rows[:, 2:]
    summed *= 1.0 / 9.0
    return summed


def _median(values: np.ndarray) -> float:
    middle = values.size // 2
    return float(np.partition(values, middle)[middle])  # upper median: 3x faster than np.median


def _flatten_lighting(image: np.ndarray) -> np.ndarray:
    # Subtract the paper's smooth lighting (gradients, vignetting, soft shadows), estimated on a coarse
    # copy by a grey-level opening that wipes out strokes narrower than a third of the picture.
    height, width = image.shape
    scale = min(1.0, _LIGHTING_GRID / max(height, width))
    if scale < 1.0:
        small_size = (max(1, round(width * scale)), max(1, round(height * scale)))
        small = np.asarray(Image.fromarray(image).resize(small_size, Image.Resampling.BOX))
    else:
        small = image
    window = (max(small.shape) // 3) | 1  # odd, so the window has a centre
    ground = _opening(small, window)
    if scale < 1.0:
        ground = np.asarray(Image.fromarray(ground).resize((width, height), Image.Resampling.BILINEAR))
    return image - ground


def _opening(image: np.ndarray, window: int) -> np.ndarray:
    # Grey-level opening (min filter, then max filter): removes bright strokes narrower than the
    # window and keeps a linear gradient exactly. NOTE: the padding matters at the edges: the min
    # filter mirrors (ink stays bright), the max filter extrapolates linearly (a ramp keeps rising).
    eroded = _rank_filter(image, window, np.min, "even")
    return _rank_filter(eroded, window, np.max, "odd")


def _rank_filter(
    image: np.ndarray, window: int, reduce: Callable[..., np.ndarray], reflect: Literal["even", "odd"]
) -> np.ndarray:
    # Square-window min or max, separable: rows, then columns.
    pad = window // 2
    rows = np.pad(image, ((pad, pad), (0, 0)), mode="reflect", reflect_type=reflect)
    rows = reduce(sliding_window_view(rows, window, axis=0), axis=-1)
    cols = np.pad(rows, ((0, 0), (pad, pad)), mode="reflect", reflect_type=reflect)
    return reduce(sliding_window_view(cols, window, axis=1), axis=-1)


def _ink_box(ink: np.ndarray) -> tuple[int, int, int, int]:
    top, bottom = _mass_span(ink.sum(axis=1))
    left, right = _mass_span(ink.sum(axis=0))
    return top, bottom, left, right


def _mass_span(profile: np.ndarray) -> tuple[int, int]:
    # [start, stop) holding all but _BOX_TRIM of the mass at each end; with no stray specks this is
    # exactly the first and last non-zero row (or column).
    mass = np.cumsum(profile, dtype=np.float64)
    total = mass[-1]
    start = int(np.searchsorted(mass, _BOX_TRIM * total, side="right"))
    stop = int(np.searchsorted(mass, (1.0 - _BOX_TRIM) * total, side="left")) + 1
    return start, max(stop, start + 1)


def _fit_box(digit: np.ndarray) -> np.ndarray:
    """Scale (h, w) so its longest side is BOX, keeping the aspect ratio; peak ink back to 1."""
    height, width = digit.shape
    scale = BOX / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))  # PIL order: (w, h)
    if size != (width, height):
        resized = Image.fromarray(np.ascontiguousarray(digit)).resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
        digit = np.clip(np.asarray(resized, dtype=np.float32), 0.0, 1.0)  # LANCZOS rings a little
    peak = float(digit.max())
    return digit * (1.0 / peak) if peak > 0 else digit


def _centre_of_mass(image: np.ndarray) -> tuple[float, float]:
    mass = float(image.sum())
    rows = float(image.sum(axis=1) @ np.arange(image.shape[0], dtype=np.float32)) / mass
    cols = float(image.sum(axis=0) @ np.arange(image.shape[1], dtype=np.float32)) / mass
    return rows, cols


def _centre_by_mass(digit: np.ndarray) -> np.ndarray:
    """Paste (h, w) into a black (28, 28) frame with its centre of mass at (14, 14), kept inside."""
    height, width = digit.shape
    centre_row, centre_col = _centre_of_mass(digit)
    top = min(max(round(CENTRE - centre_row), 0), SIZE - height)
    left = min(max(round(CENTRE - centre_col), 0), SIZE - width)
    frame = np.zeros((SIZE, SIZE), dtype=np.float32)
    frame[top : top + height, left : left + width] = digit
    return frame
