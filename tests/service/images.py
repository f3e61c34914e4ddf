"""Test images made with Pillow: a drawn digit in any size, colours, mode and format."""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageDraw


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
