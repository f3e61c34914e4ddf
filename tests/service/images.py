"""Test images made with Pillow: a drawn digit in any size, colours, mode and format."""

from __future__ import annotations

import gzip
import io
import struct
import zlib
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageDraw

from tests.paths import mnist_test_files


def draw_seven(size: int = 140, ink: int = 0, paper: int = 255) -> Image.Image:
    """A hand-drawn-looking 7: dark strokes on light paper, mode L."""
    image = Image.new("L", (size, size), paper)
    s = size / 140
    ImageDraw.Draw(image).line(
        [(35 * s, 30 * s), (105 * s, 30 * s), (60 * s, 115 * s)], fill=ink, width=max(1, round(12 * s))
    )
    return image


def encode(image: Image.Image, fmt: str = "PNG", **options: object) -> bytes:
    """The image saved in fmt, as bytes."""
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def png_header_claiming(width: int, height: int) -> bytes:
    """A 65-byte PNG whose IHDR claims width x height 8-bit grey pixels and whose IDAT holds nothing."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def _rgba_canvas() -> Image.Image:
    # What a browser canvas exports: black strokes on a fully transparent (black) background.
    ink = np.asarray(draw_seven()) < 128
    rgba = np.zeros((*ink.shape, 4), np.uint8)
    rgba[..., 3] = np.where(ink, 255, 0)
    return Image.fromarray(rgba)  # mode RGBA


def _sixteen_bit() -> Image.Image:
    values = np.asarray(draw_seven(), np.uint16) * 257  # full 16-bit range
    return Image.fromarray(values.astype("<u2"))  # mode I;16


# Every format and mode /predict promises to read, by name -> a function making such a file of a 7.
IMAGE_KINDS: dict[str, Callable[[], bytes]] = {
    "png-L": lambda: encode(draw_seven()),
    "png-RGBA-canvas": lambda: encode(_rgba_canvas()),
    "png-LA": lambda: encode(draw_seven().convert("LA")),
    "png-P": lambda: encode(draw_seven().convert("RGB").convert("P")),
    "png-16-bit": lambda: encode(_sixteen_bit()),
    "png-1-bit": lambda: encode(draw_seven().convert("1")),
    "jpeg-RGB": lambda: encode(draw_seven().convert("RGB"), "JPEG", quality=90),
    "jpeg-CMYK": lambda: encode(draw_seven().convert("CMYK"), "JPEG", quality=90),
    "gif": lambda: encode(draw_seven().convert("P"), "GIF"),
    "bmp": lambda: encode(draw_seven().convert("RGB"), "BMP"),
    "webp": lambda: encode(draw_seven().convert("RGB"), "WEBP", quality=90),
    "tiff": lambda: encode(draw_seven(), "TIFF"),
}


# --- what the page's pad sends: white strokes of a round 26 px brush on a black 320 px square -----------------

PAD, BRUSH = 320, 26  # service/static/app.js


def pad_drawing(*strokes: list[tuple[float, float]], brush: float = BRUSH) -> Image.Image:
    """Strokes (lists of points in pad pixels) drawn like the page: round caps and joints, white on black."""
    image = Image.new("L", (PAD, PAD), 0)
    draw = ImageDraw.Draw(image)
    for stroke in strokes:
        if len(stroke) > 1:
            draw.line(stroke, fill=255, width=round(brush), joint="curve")
        for x, y in (stroke[0], stroke[-1]):
            draw.ellipse([x - brush / 2, y - brush / 2, x + brush / 2, y + brush / 2], fill=255)
    return image


def pad_click(x: float = 160, y: float = 160) -> Image.Image:
    """One click on the pad: a dot of the brush."""
    return pad_drawing([(x, y)])


def pad_dash(length: float = 140) -> Image.Image:
    """A short stroke across the pad, slightly rising: the start of a 7, or a minus sign."""
    return pad_drawing([(160 - length / 2, 170), (160 + length / 2, 150)])


def pad_blob(width: float = 110, height: float = 90) -> Image.Image:
    """A filled oval in the middle of the pad: a smudge, a pressed thumb."""
    image = Image.new("L", (PAD, PAD), 0)
    ImageDraw.Draw(image).ellipse([160 - width / 2, 160 - height / 2, 160 + width / 2, 160 + height / 2], fill=255)
    return image


def pad_scribble() -> Image.Image:
    """A zigzag back and forth across itself: crossing something out."""
    points = [(60, 80), (260, 120), (70, 160), (250, 60), (90, 250), (240, 200), (60, 120), (200, 260), (150, 50)]
    return pad_drawing(points, brush=14)


def three_on_paper(
    sigma: float = 0.0, *, paper: float = 255, ink: float = 0, light: float = 0.0, seed: int = 0
) -> bytes:
    """A PNG photo of a 3 drawn with an 8 px pen, 240 px tall, on a 400 px sheet: grey noise of sigma (0-255),
    the paper `paper` grey and the ink `ink` grey, the lighting falling by `light` across the sheet."""
    mask = Image.new("L", (400, 400), 0)
    draw = ImageDraw.Draw(mask)
    draw.arc([140, 56, 260, 144], 200, 450, fill=255, width=8)
    draw.arc([130, 192, 270, 296], 270, 520, fill=255, width=8)
    stroke = np.asarray(mask, np.float32) / 255
    shade = 1 - light * np.linspace(0, 1, 400, dtype=np.float32)[None, :] * np.linspace(0.5, 1, 400)[:, None]
    pixels = (paper + (ink - paper) * stroke) * shade + np.random.default_rng(seed).normal(0, sigma, stroke.shape)
    return encode(Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)))


def read_mnist_test_images(count: int) -> np.ndarray:
    """The first count MNIST test images, (count, 28, 28) uint8; the calling test is skipped without the files."""
    with gzip.open(mnist_test_files() / "t10k-images-idx3-ubyte.gz") as file:
        file.read(16)  # IDX header: magic, count, rows, cols
        return np.frombuffer(file.read(count * 28 * 28), dtype=np.uint8).reshape(count, 28, 28)
