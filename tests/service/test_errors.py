"""Every error is JSON {"error": ...} with its status, and the app keeps serving after it (in-process)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from PIL import Image

from service.config import Settings
from service.main import create_app
from tests.service.clients import exploding_client
from tests.service.error_bodies import assert_error
from tests.service.images import draw_seven, encode, png_header_claiming

pytestmark = pytest.mark.anyio


# ---- 400 malformed request ---------------------------------------------------------------------------


async def test_predict_digit_without_file_field_is_400(client: httpx.AsyncClient, digit_png: bytes) -> None:
    response = await client.post("/predict", files={"image": ("d.png", digit_png)})
    await assert_error(client, response, 400, "'file'")


async def test_predict_digit_with_two_files_is_400(client: httpx.AsyncClient, digit_png: bytes) -> None:
    files = [("file", ("a.png", digit_png)), ("file", ("b.png", digit_png))]
    await assert_error(client, await client.post("/predict", files=files), 400, "/predict/batch")


async def test_predict_digit_with_truncated_multipart_is_400(client: httpx.AsyncClient) -> None:
    body = b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n\r\n\x89PNG'
    headers = {"Content-Type": "multipart/form-data; boundary=xyz"}
    response = await client.post("/predict", content=body, headers=headers)
    await assert_error(client, response, 400, "multipart")


@pytest.mark.parametrize("content_type", ["multipart/form-data", "multipart/form-data; boundary="])
async def test_predict_digit_with_multipart_without_boundary_is_400(
    client: httpx.AsyncClient, content_type: str
) -> None:
    response = await client.post("/predict", content=b"--\r\n", headers={"Content-Type": content_type})
    await assert_error(client, response, 400, "boundary")


async def test_predict_digit_with_garbage_multipart_is_400(client: httpx.AsyncClient) -> None:
    headers = {"Content-Type": "multipart/form-data; boundary=xyz"}
    response = await client.post("/predict", content=b"this is not a form at all", headers=headers)
    await assert_error(client, response, 400, "multipart")


async def test_predict_digit_with_empty_file_is_400(client: httpx.AsyncClient) -> None:
    response = await client.post("/predict", files={"file": ("empty.png", b"", "image/png")})
    await assert_error(client, response, 400, "empty")


async def test_predict_digit_with_empty_raw_body_is_400(client: httpx.AsyncClient) -> None:
    response = await client.post("/predict", content=b"", headers={"Content-Type": "image/png"})
    await assert_error(client, response, 400, "empty")


async def test_read_feature_maps_with_bad_format_is_400(client: httpx.AsyncClient, digit_png: bytes) -> None:
    response = await client.post("/feature-maps?format=xml", files={"file": ("d.png", digit_png)})
    await assert_error(client, response, 400, "format")


async def test_read_feature_maps_with_unknown_layer_in_query_is_400(
    client: httpx.AsyncClient, digit_png: bytes
) -> None:
    response = await client.post("/feature-maps?layers=conv1,conv9", files={"file": ("d.png", digit_png)})
    await assert_error(client, response, 400, "'conv9'", "conv1, pool1")


async def test_predict_digit_with_bad_content_length_is_400(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/predict", content=b"abc", headers={"Content-Type": "image/png", "Content-Length": "a lot"}
    )
    await assert_error(client, response, 400, "Content-Length")


# ---- 404 / 405 -----------------------------------------------------------------------------------------


async def test_draw_feature_maps_of_unknown_layer_is_404(client: httpx.AsyncClient, digit_png: bytes) -> None:
    response = await client.post("/feature-maps/conv9.png", files={"file": ("d.png", digit_png)})
    message = await assert_error(client, response, 404)
    assert message.startswith("unknown layer 'conv9': choose one of ") and "conv1, pool1" in message


async def test_draw_feature_maps_of_unknown_layer_is_404_before_reading_body(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/feature-maps/x.png", content=b"", headers={"Content-Type": "text/plain"})
    await assert_error(client, response, 404, "unknown layer 'x'")


@pytest.mark.parametrize(
    "path",
    ["/feature-maps/../conv1.png", "/feature-maps/..%2F..%2Fetc%2Fpasswd.png", "/feature-maps/%2e%2e.png"],
)
async def test_draw_feature_maps_with_path_tricks_is_404(
    client: httpx.AsyncClient, digit_png: bytes, path: str
) -> None:
    response = await client.post(path, files={"file": ("d.png", digit_png)})
    await assert_error(client, response, 404)


async def test_unknown_path_is_404(client: httpx.AsyncClient) -> None:
    await assert_error(client, await client.get("/no/such/thing"), 404, "/docs")


async def test_unknown_long_path_is_404_with_a_short_message(client: httpx.AsyncClient) -> None:
    message = await assert_error(client, await client.get("/x" * 5000), 404)
    assert len(message) < 200


async def test_wrong_method_is_405(client: httpx.AsyncClient) -> None:
    response = await client.get("/predict")
    await assert_error(client, response, 405, "POST")
    assert response.headers["allow"] == "POST"


# ---- 413 too large -----------------------------------------------------------------------------------


async def test_predict_digit_with_content_length_over_limit_is_413(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    body = b"\0" * (settings.max_upload_bytes + 1)
    response = await client.post("/predict", content=body, headers={"Content-Type": "image/png"})
    await assert_error(client, response, 413, f"{settings.max_upload_bytes:,}")


async def test_predict_digit_stops_reading_an_endless_chunked_body(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    sent = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal sent
        while True:
            sent += 16_384
            yield b"\0" * 16_384

    # An async iterator has no length: httpx sends it chunked, without Content-Length.
    response = await client.post("/predict", content=endless(), headers={"Content-Type": "image/png"})
    await assert_error(client, response, 413, "limit")
    assert sent <= settings.max_upload_bytes + 2 * 16_384  # stopped at the limit, not at the end


async def test_predict_digit_with_multipart_over_limit_is_413(client: httpx.AsyncClient, settings: Settings) -> None:
    big = b"\0" * (settings.max_upload_bytes + 1)
    await assert_error(client, await client.post("/predict", files={"file": ("big.png", big)}), 413)


async def test_predict_digits_over_file_limit_is_413(
    client: httpx.AsyncClient, settings: Settings, digit_png: bytes
) -> None:
    files = [("files", (f"{i}.png", digit_png)) for i in range(settings.max_batch_files + 1)]
    response = await client.post("/predict/batch", files=files)
    await assert_error(client, response, 413, "too many files", str(settings.max_batch_files))


async def test_predict_digits_with_one_file_over_limit_is_413_naming_it(
    client: httpx.AsyncClient, settings: Settings, digit_png: bytes
) -> None:
    big = b"\0" * (settings.max_upload_bytes + 1)
    files = [("files", ("ok.png", digit_png)), ("files", ("big.png", big))]
    response = await client.post("/predict/batch", files=files)
    await assert_error(client, response, 413, "file 1 ('big.png')")


# ---- 415 not a supported image -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/octet-stream", "application/json", "text/html", "multipart/mixed; boundary=b"],
)
async def test_predict_digit_with_non_image_content_type_is_415(
    client: httpx.AsyncClient, digit_png: bytes, content_type: str
) -> None:
    # A PNG labelled neither a form nor an image: the label is refused, whatever the bytes are.
    response = await client.post("/predict", content=digit_png, headers={"Content-Type": content_type})
    media_type = content_type.split(";")[0]
    await assert_error(client, response, 415, f"Content-Type '{media_type}'", "multipart/form-data")


async def test_predict_digit_without_content_type_is_415(client: httpx.AsyncClient, digit_png: bytes) -> None:
    response = await client.post("/predict", content=digit_png)
    await assert_error(client, response, 415, "no Content-Type")


async def test_predict_digit_with_non_image_bytes_is_415(client: httpx.AsyncClient) -> None:
    response = await client.post("/predict", files={"file": ("notes.txt", b"just some text", "text/plain")})
    await assert_error(client, response, 415)


async def test_predict_digit_with_unsupported_format_is_415(client: httpx.AsyncClient) -> None:
    ico = encode(draw_seven(size=64), "ICO")
    await assert_error(client, await client.post("/predict", files={"file": ("d.ico", ico)}), 415)


async def test_predict_digit_with_truncated_png_is_415(client: httpx.AsyncClient, digit_png: bytes) -> None:
    response = await client.post("/predict", files={"file": ("cut.png", digit_png[: len(digit_png) // 2])})
    await assert_error(client, response, 415)


async def test_predict_digits_with_one_bad_file_fails_naming_it(client: httpx.AsyncClient, digit_png: bytes) -> None:
    files = [("files", ("good.png", digit_png)), ("files", ("bad.png", b"not an image"))]
    response = await client.post("/predict/batch", files=files)
    await assert_error(client, response, 415, "file 1 ('bad.png')")


# ---- 422 valid image that cannot be used -------------------------------------------------------------


async def test_predict_digit_of_blank_image_is_422(client: httpx.AsyncClient) -> None:
    blank = encode(Image.new("L", (64, 64), 255))
    await assert_error(client, await client.post("/predict", files={"file": ("blank.png", blank)}), 422)


async def test_predict_digit_of_decompression_bomb_is_422(client: httpx.AsyncClient) -> None:
    bomb = png_header_claiming(50_000, 50_000)  # 2.5 gigapixels declared in a 65-byte file
    response = await client.post("/predict", files={"file": ("bomb.png", bomb)})
    await assert_error(client, response, 422, "pixels")


async def test_predict_digits_with_one_blank_image_fails_naming_it(client: httpx.AsyncClient, digit_png: bytes) -> None:
    blank = encode(Image.new("L", (64, 64), 0))
    files = [
        ("files", ("a.png", digit_png)),
        ("files", ("b.png", digit_png)),
        ("files", ("blank.png", blank)),
    ]
    response = await client.post("/predict/batch", files=files)
    await assert_error(client, response, 422, "file 2 ('blank.png')")


# ---- 500 and 503 -------------------------------------------------------------------------------------


async def test_unexpected_exception_is_500_internal_error(settings: Settings) -> None:
    async with exploding_client(settings) as client:
        response = await client.get("/explode")
        assert response.status_code == 500
        assert response.json() == {"error": "internal error"}
        assert (await client.get("/health/live")).status_code == 200


async def test_predict_digit_before_model_loaded_is_503(settings: Settings, digit_png: bytes) -> None:
    app = create_app(settings)  # lifespan not run: no model yet
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        response = await client.post("/predict", files={"file": ("d.png", digit_png)})
        await assert_error(client, response, 503, "not loaded")
