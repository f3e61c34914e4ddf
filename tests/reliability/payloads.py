"""Hostile uploads, built byte by byte: bombs, oversized chunks, endless frames, forms with too many parts."""

from __future__ import annotations

import io
import struct
import zlib
from functools import cache

import numpy as np
from PIL import Image, ImageDraw

from tests.service.images import draw_seven, encode

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MiB = 1024 * 1024


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_of(width: int, height: int, idat: bytes, *, before_idat: bytes = b"") -> bytes:
    """An 8-bit grayscale PNG with the given IDAT payload (zlib data) and extra chunks before it."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return PNG_SIGNATURE + png_chunk(b"IHDR", header) + before_idat + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


def _seven_rows(size: int = 28) -> bytes:
    # Raw PNG scanlines (filter byte 0, then the pixels) of a 7.
    return b"".join(b"\0" + row.tobytes() for row in np.asarray(draw_seven(size)))


def deflate_bomb_png(inflated_bytes: int = 1024 * MiB) -> bytes:
    """A valid 28x28 PNG of a 7 whose IDAT goes on to inflate to ~inflated_bytes (about 1 MB compressed)."""
    deflate = zlib.compressobj(9)
    data = deflate.compress(_seven_rows())
    block = b"\0" * MiB
    for _ in range(inflated_bytes // MiB):
        data += deflate.compress(block)
    return png_of(28, 28, data + deflate.flush())


def huge_iccp_png(inflated_bytes: int = 200 * MiB) -> bytes:
    """A 28x28 PNG whose ICC profile chunk inflates to inflated_bytes (Pillow allows 1 MiB of text)."""
    profile = b"icc\0\0" + zlib.compress(b"\0" * inflated_bytes, 9)
    return png_of(28, 28, zlib.compress(_seven_rows()), before_idat=png_chunk(b"iCCP", profile))


def huge_ztxt_png(inflated_bytes: int = 200 * MiB) -> bytes:
    """A 28x28 PNG with a compressed text chunk that inflates to inflated_bytes."""
    text = b"Comment\0\0" + zlib.compress(b"A" * inflated_bytes, 9)
    return png_of(28, 28, zlib.compress(_seven_rows()), before_idat=png_chunk(b"zTXt", text))


def many_text_chunks_png(count: int = 80, size: int = 60_000) -> bytes:
    """A 28x28 PNG carrying count plain text chunks of size bytes each (4.8 MB by default)."""
    chunks = b"".join(png_chunk(b"tEXt", b"k\0" + b"v" * size) for _ in range(count))
    return png_of(28, 28, zlib.compress(_seven_rows()), before_idat=chunks)


def big_seven(size: int = 4096, mode: str = "L") -> bytes:
    """A PNG of a 7 drawn across size x size pixels (mode L, RGBA or I;16): ~35-90 KB compressed."""
    image = Image.new("L", (size, size), 255)
    s = size / 4096
    ImageDraw.Draw(image).line([(1000 * s, 800 * s), (3000 * s, 800 * s), (1600 * s, 3300 * s)], fill=0, width=300)
    if mode == "I;16":
        return encode(Image.fromarray((np.asarray(image, np.uint16) * 257).astype("<u2")))
    return encode(image.convert(mode))


def animated(fmt: str, frames: int) -> bytes:
    """A 28x28 animation (GIF, PNG or WEBP) whose first frame is a 7 and then frames - 1 flat frames."""
    first = draw_seven(28).convert("RGB" if fmt != "GIF" else "P")
    rest = [Image.new(first.mode, (28, 28), i % 200) for i in range(frames - 1)]
    buffer = io.BytesIO()
    first.save(buffer, fmt, save_all=True, append_images=rest)
    return buffer.getvalue()


def form_with_fields(count: int, *, boundary: bytes = b"b") -> bytes:
    """multipart/form-data with count tiny text fields, none of them a file."""
    parts = b"".join(
        b'--%s\r\nContent-Disposition: form-data; name="f%d"\r\n\r\nx\r\n' % (boundary, i) for i in range(count)
    )
    return parts + b"--%s--\r\n" % boundary


def form_with_long_name(length: int, *, boundary: bytes = b"b") -> bytes:
    """One form part whose field name is length bytes long."""
    name = b"n" * length
    return b'--%s\r\nContent-Disposition: form-data; name="%s"\r\n\r\nx\r\n--%s--\r\n' % (boundary, name, boundary)


def form_with_many_headers(count: int, field: bytes = b"file", *, boundary: bytes = b"b") -> bytes:
    """One form part preceded by count junk header lines."""
    headers = b"X-Junk: y\r\n" * count
    disposition = b'Content-Disposition: form-data; name="%s"; filename="a.png"\r\n' % field
    return b"--%s\r\n%s%s\r\nx\r\n--%s--\r\n" % (boundary, headers, disposition, boundary)


@cache
def image_case(name: str) -> bytes:
    """The hostile image called name, built once per session (the bombs take a second or two to compress)."""
    return {
        "deflate-bomb-1GiB-IDAT": deflate_bomb_png,
        "black-4096x4096": lambda: encode(Image.new("L", (4096, 4096), 0)),
        "iccp-inflating-200MiB": huge_iccp_png,
        "ztxt-inflating-200MiB": huge_ztxt_png,
        "tEXt-80-chunks-of-60KB": many_text_chunks_png,
        "gif-5000-frames": lambda: animated("GIF", 5000),
        "apng-3000-frames": lambda: animated("PNG", 3000),
        "webp-3000-frames": lambda: animated("WEBP", 3000),
    }[name]()
