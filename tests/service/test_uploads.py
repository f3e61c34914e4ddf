"""Reading forms: the fast split of plainly built forms agrees with python-multipart, or steps aside."""

from __future__ import annotations

import httpx
import pytest
from python_multipart.multipart import parse_options_header

from service.uploads import MAX_OTHER_PARTS, Upload, _boundary, _parse_disposition, _parse_form, _split_plain_form

BOUNDARY = b"bench7MA4YWxkTrZu0gW"


def client_form(files: list[tuple[str, tuple[str, bytes]]], data: dict[str, str] | None = None) -> bytes:
    """A form body exactly as httpx builds it for a request."""
    request = httpx.Request("POST", "http://t/", files=files, data=data, headers={})
    content_type = request.headers["content-type"]
    body = request.read()
    return body.replace(content_type.split("boundary=")[1].encode(), BOUNDARY)


def both(body: bytes, field: str = "file", max_files: int = 8, max_file_bytes: int = 1000) -> tuple:
    fast = _split_plain_form(body, BOUNDARY, field, max_files + MAX_OTHER_PARTS, max_file_bytes)
    full = _parse_form(body, BOUNDARY, field=field, max_files=max_files, max_file_bytes=max_file_bytes)
    return fast, full


@pytest.mark.parametrize(
    ("files", "data"),
    [
        ([("file", ("d.png", b"\x89PNG\r\n\x1a\n..."))], None),
        ([("file", ("d.png", b""))], None),
        ([("file", ("dîgït 7.png", b"abc\r\n--not-the-boundary\r\n"))], {"note": "hi"}),
        ([("files", (f"{i}.png", bytes([i]) * 40)) for i in range(5)], {"a": "1", "b": "2"}),
        ([("other", ("x.png", b"123")), ("file", ("y.png", b"456"))], None),
    ],
)
def test_split_plain_form_agrees_with_python_multipart(files: list, data: dict | None) -> None:
    body = client_form(files, data)
    field = files[0][0] if files[0][0] != "other" else "file"
    fast, full = both(body, field)
    assert fast is not None
    assert fast == full


@pytest.mark.parametrize(
    "body",
    [
        b'preamble\r\n--%s\r\nContent-Disposition: form-data; name="file"\r\n\r\nx\r\n--%s--\r\n',
        b'--%s\r\nContent-Disposition: form-data; name="file"\r\n\r\nx\r\n--%s--\r\nepilogue',
        b'--%s\r\nContent-Disposition: form-data; name="file"\r\n\r\nx\r\n--%s  \r\n\r\ny\r\n--%s--\r\n',
        b'--%s\r\nContent-Disposition : form-data; name="file"\r\n\r\nx\r\n--%s--\r\n',
        b'--%s\r\nContent-Disposition: form-data; name="file"\r\n\r\nx',
        b"--%s\r\nX: " + b"a" * 2000 + b'\r\nContent-Disposition: form-data; name="file"\r\n\r\nx\r\n--%s--\r\n',
    ],
)
def test_split_plain_form_steps_aside_for_unusual_forms(body: bytes) -> None:
    body = body.replace(b"%s", BOUNDARY)
    assert _split_plain_form(body, BOUNDARY, "file", 8 + MAX_OTHER_PARTS, 1000) is None


def test_split_plain_form_steps_aside_past_the_limits() -> None:
    many = client_form([("file", (f"{i}.png", b"x")) for i in range(30)])
    assert _split_plain_form(many, BOUNDARY, "file", 8 + MAX_OTHER_PARTS, 1000) is None
    big = client_form([("file", ("big.png", b"x" * 1001))])
    assert _split_plain_form(big, BOUNDARY, "file", 8 + MAX_OTHER_PARTS, 1000) is None


def test_split_plain_form_keeps_file_names() -> None:
    fast, _ = both(client_form([("file", ("seven.png", b"7"))]))
    assert fast == [Upload(b"7", "seven.png")]


@pytest.mark.parametrize(
    "value",
    [
        b'form-data; name="file"; filename="digit0.png"',
        b'form-data; name="file"',
        b'form-data; name="fi\\"le"',
        b"form-data; name=file",
        b'form-data; name="file"; filename="d\xc3\xaf.png"',
        b'form-data; name="file"; filename="C:\\photos\\d.png"',
        b'Form-Data; Name="file"',
    ],
)
def test_parse_disposition_agrees_with_python_multipart(value: bytes) -> None:
    assert _parse_disposition(value) == parse_options_header(value)


@pytest.mark.parametrize(
    "content_type",
    ["multipart/form-data; boundary=abc'()+_,-./:=?XYZ", 'multipart/form-data; boundary="q"', "multipart/form-data"],
)
def test_boundary_agrees_with_python_multipart(content_type: str) -> None:
    assert _boundary(content_type) == parse_options_header(content_type)[1].get(b"boundary")


@pytest.mark.anyio
async def test_read_image_says_a_text_field_is_not_a_file(client: httpx.AsyncClient) -> None:
    # What `curl -F file=digit.png` (without the @) sends: the file's name as a text field.
    response = await client.post("/predict", data={"file": "digit.png"}, files={"other": ("x", b"")})
    assert response.status_code == 400
    assert response.json()["error"] == (
        "field 'file' is text ('digit.png'), not a file: attach the file itself, "
        "e.g. curl -F file=@digit.png (with the @)"
    )


@pytest.mark.anyio
async def test_read_images_says_which_field_is_text_in_a_batch(client: httpx.AsyncClient, digit_png: bytes) -> None:
    files = [("files", ("a.png", digit_png, "image/png"))]
    response = await client.post("/predict/batch", data={"files": "b.png"}, files=files)
    assert response.status_code == 400 and "field 'files' is text ('b.png')" in response.json()["error"]
