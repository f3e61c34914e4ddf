"""Read image uploads from a request: the body streamed under a byte limit, then multipart or raw image."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, MultipartState, parse_options_header
from starlette.requests import Request

from service.errors import BadRequest, PayloadTooLarge, UnsupportedImage

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

# Form parts other than the files allowed in one request. NOTE: the parser runs on the event loop, and a
# 20 MB body of empty fields (~400,000 parts) kept it busy for seconds; past this count it stops at once.
MAX_OTHER_PARTS = 16
# The fast split takes part heads up to this size (a Content-Disposition with a long file name fits).
_PLAIN_HEAD_BYTES = 1024
# Header values as HTTP clients write them: read with one regex, not python-multipart's general parser.
_PLAIN_MULTIPART = re.compile(r"multipart/form-data; boundary=([0-9A-Za-z'()+_,.\-/:=?]{1,70})")
_PLAIN_DISPOSITION = re.compile(rb'form-data; name="([^"\\]*)"(?:; filename="([^"\\]*)")?')

# A form part without a file name whose bytes are this short and printable is text a client typed, not an
# image: no supported image format's header is printable text.
_TEXT_FIELD_BYTES = 4096

HOW_TO_SEND = (
    "send multipart/form-data with the image in field '{field}', "
    "or the raw image as the body with Content-Type image/png (or another image/* type)"
)


@dataclass(frozen=True, slots=True)
class Upload:
    """One uploaded image: its bytes and, from multipart, the file name it came with."""

    data: bytes
    filename: str | None = None

    def label(self, index: int) -> str:
        """How error messages name this file: its position and, if known, its name."""
        return f"file {index}" + (f" ({self.filename!r})" if self.filename else "")


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body; 413 as soon as it is known to exceed limit bytes (never buffered past that)."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise BadRequest(f"Content-Length {declared!r} is not a number")
        if int(declared) > limit:
            raise PayloadTooLarge(_too_large(int(declared), limit))
    chunks, size = [], 0
    async for chunk in request.stream():
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:  # chunked bodies (or a lying Content-Length) stop here
            raise PayloadTooLarge(_too_large(None, limit))
    return b"".join(chunks)  # NOTE: one chunk (the usual small upload) comes back as is, not copied


def _too_large(size: int | None, limit: int) -> str:
    said = f" ({size:,} bytes)" if size is not None else ""
    return f"request body{said} is over the limit of {limit:,} bytes: send a smaller image"


class _FormCollector:
    """Callbacks for python-multipart: keeps the parts named `field` (with their file names)."""

    def __init__(self, field: str, max_files: int, max_file_bytes: int) -> None:
        self.field, self.max_files, self.max_file_bytes = field, max_files, max_file_bytes
        self.uploads: list[Upload] = []
        self._filename: str | None = None
        self._header_name = bytearray()
        self._header_value = bytearray()
        self._headers: dict[bytes, bytes] = {}
        self._data: bytearray | None = None
        self._parts = 0

    def callbacks(self) -> MultipartCallbacks:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": lambda data, start, end: self._header_name.extend(data[start:end]),
            "on_header_value": lambda data, start, end: self._header_value.extend(data[start:end]),
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
        }

    def _part_begin(self) -> None:
        self._parts += 1
        if self._parts > self.max_files + MAX_OTHER_PARTS:  # 400, as Starlette answers too many form fields
            raise BadRequest(
                f"too many parts in the form: more than {self.max_files + MAX_OTHER_PARTS}; "
                f"send only the image(s) in field '{self.field}'"
            )
        self._headers = {}
        self._data = None

    def _header_end(self) -> None:
        self._headers[bytes(self._header_name).strip().lower()] = bytes(self._header_value).strip()
        self._header_name.clear()
        self._header_value.clear()

    def _headers_finished(self) -> None:
        kind, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        if kind != b"form-data" or options.get(b"name", b"").decode("latin-1") != self.field:
            return  # another field: skipped, its bytes are never kept
        if len(self.uploads) >= self.max_files:
            raise PayloadTooLarge(
                f"too many files: more than {self.max_files} in field '{self.field}'; split them into batches"
            )
        self._filename = options[b"filename"].decode("utf-8", "replace") if b"filename" in options else None
        self._data = bytearray()

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._data is not None:
            self._data.extend(data[start:end])
            if len(self._data) > self.max_file_bytes:
                label = Upload(b"", self._filename).label(len(self.uploads))
                raise PayloadTooLarge(f"{label} is over the limit of {self.max_file_bytes:,} bytes per image")

    def _part_end(self) -> None:
        if self._data is not None:
            self.uploads.append(Upload(bytes(self._data), self._filename))
            self._data = None


def _split_plain_form(
    body: bytes, boundary: bytes, field: str, max_parts: int, max_file_bytes: int
) -> list[Upload] | None:
    """The files in field `field` of a plainly built form (what HTTP clients send), split with bytes.find;
    None for anything else (preamble, epilogue, long or odd headers, a limit reached), which the full
    parser then reads or refuses with its own message. Twice as fast as the parser on a small upload.
    """
    delimiter = b"--" + boundary
    close = b"\r\n" + delimiter + b"--"
    end = body.rfind(close)
    if not body.startswith(delimiter + b"\r\n") or end < 0 or body[end + len(close) :] not in (b"", b"\r\n"):
        return None
    separator = b"\r\n" + delimiter
    if body.count(separator, 0, end) >= max_parts:  # counted before anything is split off
        return None
    uploads = []
    for part in body[len(delimiter) + 2 : end].split(separator + b"\r\n"):
        head_end = part.find(b"\r\n\r\n", 0, _PLAIN_HEAD_BYTES)
        if head_end < 0 or separator in part:  # a long head, or a delimiter line with padding
            return None
        disposition = None
        for line in part[:head_end].split(b"\r\n"):
            name, colon, value = line.partition(b":")
            if not colon or not name or name != name.strip() or b"\r" in line or b"\n" in line:
                return None
            if name.lower() == b"content-disposition":
                disposition = value.strip()
        kind, options = _parse_disposition(disposition or b"")
        if kind != b"form-data" or options.get(b"name", b"").decode("latin-1") != field:
            continue
        data = part[head_end + 4 :]
        if len(data) > max_file_bytes:
            return None
        filename = options[b"filename"].decode("utf-8", "replace") if b"filename" in options else None
        uploads.append(Upload(data, filename))
    return uploads


def _parse_disposition(value: bytes) -> tuple[bytes, dict[bytes, bytes]]:
    plain = _PLAIN_DISPOSITION.fullmatch(value)
    if plain is None:  # quoting, escapes, other parameters, another case: the general parser
        return parse_options_header(value)
    options = {b"name": plain[1]}
    if plain[2] is not None:
        options[b"filename"] = plain[2]
    return b"form-data", options


def _boundary(content_type: str) -> bytes | None:
    plain = _PLAIN_MULTIPART.fullmatch(content_type)
    if plain is not None:
        return plain[1].encode("latin-1")
    return parse_options_header(content_type)[1].get(b"boundary")


def _refuse_text_field(upload: Upload, field: str) -> None:
    # curl -F file=digit.png (no @) sends the word "digit.png" as a text field, not the file.
    if upload.filename is not None or not upload.data or len(upload.data) > _TEXT_FIELD_BYTES:
        return
    try:
        text = upload.data.decode("utf-8")
    except UnicodeDecodeError:
        return
    if text.isprintable():
        shown = repr(text if len(text) <= 40 else text[:40] + "...")
        raise BadRequest(
            f"field '{field}' is text ({shown}), not a file: attach the file itself, "
            f"e.g. curl -F {field}=@digit.png (with the @)"
        )


def parse_multipart(body: bytes, content_type: str, *, field: str, max_files: int, max_file_bytes: int) -> list[Upload]:
    """The files in form field `field`, in upload order; BadRequest for a malformed body."""
    boundary = _boundary(content_type)
    if not boundary:
        raise BadRequest("multipart Content-Type has no boundary: let your HTTP client build the form")
    plain = _split_plain_form(body, boundary, field, max_files + MAX_OTHER_PARTS, max_file_bytes)
    if plain is not None and len(plain) <= max_files:
        return plain
    return _parse_form(body, boundary, field=field, max_files=max_files, max_file_bytes=max_file_bytes)


def _parse_form(body: bytes, boundary: bytes, *, field: str, max_files: int, max_file_bytes: int) -> list[Upload]:
    # python-multipart: any form, every limit, and the error message for whatever is wrong.
    collector = _FormCollector(field, max_files, max_file_bytes)
    try:
        parser = MultipartParser(boundary, collector.callbacks())
        parser.write(body)
    except (MultipartParseError, ValueError) as err:
        raise BadRequest(f"malformed multipart body: {err}; {HOW_TO_SEND.format(field=field)}") from None
    if parser.state != MultipartState.END:
        raise BadRequest("malformed multipart body: it ends before the closing boundary")
    return collector.uploads


async def read_uploads(
    request: Request, *, field: str, max_files: int, max_bytes: int, max_file_bytes: int
) -> list[Upload]:
    """The images of a request: the parts in form field `field`, or the raw body sent as image/*.

    max_bytes bounds the whole body, max_file_bytes each image in it.
    """
    content_type = request.headers.get("content-type", "")
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type == "multipart/form-data":
        body = await read_body(request, max_bytes)
        uploads = parse_multipart(body, content_type, field=field, max_files=max_files, max_file_bytes=max_file_bytes)
        if not uploads:
            raise BadRequest(f"no file in form field '{field}': {HOW_TO_SEND.format(field=field)}")
        for upload in uploads:
            _refuse_text_field(upload, field)
    elif media_type.startswith("image/"):
        uploads = [Upload(await read_body(request, min(max_bytes, max_file_bytes)))]
        if not uploads[0].data:
            raise BadRequest(f"the request body is empty: {HOW_TO_SEND.format(field=field)}")
    else:
        said = f"Content-Type {media_type!r}" if media_type else "no Content-Type"
        raise UnsupportedImage(f"the request has {said}: {HOW_TO_SEND.format(field=field)}")
    for index, upload in enumerate(uploads):
        if not upload.data:
            raise BadRequest(f"{upload.label(index)} in field '{field}' is empty: attach the image's bytes")
    return uploads
