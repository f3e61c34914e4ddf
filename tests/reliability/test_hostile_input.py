"""Hostile and broken input, in-process at the real server's default limits: every case gets its status and a
JSON error (or, where the junk is harmless, a normal answer) without costing seconds of CPU, and the app
answers /health/live after.

tests/service/test_errors.py has the everyday errors (a wrong Content-Type, a form without a boundary or with
garbage in it, too many files); these are the attacks.
"""

from __future__ import annotations

import time

import httpx
import pytest
from anyio import fail_after

from tests.reliability import payloads
from tests.reliability.payloads import image_case
from tests.service.error_bodies import assert_error

pytestmark = pytest.mark.anyio

# The in-process app does all its work in this process, so its CPU time is the work a request cost, whatever
# else keeps the machine busy. Doing an attacker's work (inflating a bomb, walking 100,000 parts) costs
# seconds; the costliest case here, the 4096 x 4096 image decoded by design, takes about 0.2 s.
MOST_CPU_SECONDS = 3.0
HANG_SECONDS = 60  # wall-clock, only so that a request that is never answered fails instead of hanging


async def answer(client: httpx.AsyncClient, method: str, path: str, **kwargs: object) -> httpx.Response:
    """The response, checked to cost little CPU (assert_error then checks that the app still answers)."""
    start = time.process_time()
    with fail_after(HANG_SECONDS):
        response = await client.request(method, path, **kwargs)  # type: ignore[arg-type]
    spent = time.process_time() - start
    assert spent < MOST_CPU_SECONDS, f"{path} took {spent:.1f} s of CPU"
    return response


# name -> (status, words in the error); 200 where the junk is ignored and the digit is read.
IMAGE_CASES = {
    "deflate-bomb-1GiB-IDAT": (200, ()),  # decoding stops after 28 rows; the rest is never inflated
    "black-4096x4096": (422, ("no digit found",)),
    "iccp-inflating-200MiB": (415, ("not a readable image",)),  # Pillow's 1 MiB limit on compressed chunks
    "ztxt-inflating-200MiB": (415, ("not a readable image",)),
    "tEXt-80-chunks-of-60KB": (200, ()),  # under Pillow's 64 MiB text budget: kept and ignored
    "gif-5000-frames": (200, ()),  # only the first frame is read
    "apng-3000-frames": (200, ()),
    "webp-3000-frames": (200, ()),
}


@pytest.mark.parametrize("name", sorted(IMAGE_CASES))
async def test_predict_digit_survives_hostile_image(client: httpx.AsyncClient, name: str) -> None:
    status, words = IMAGE_CASES[name]
    response = await answer(client, "POST", "/predict", files={"file": ("x", image_case(name))})
    if status == 200:
        assert response.status_code == 200, response.text
        assert len(response.json()["probabilities"]) == 10
    else:
        await assert_error(client, response, status, *words)


# ---- forms --------------------------------------------------------------------------------------------

FORM = {"Content-Type": "multipart/form-data; boundary=b"}


async def test_predict_digit_refuses_ten_thousand_form_fields_early(client: httpx.AsyncClient) -> None:
    response = await answer(client, "POST", "/predict", content=payloads.form_with_fields(10_000), headers=FORM)
    await assert_error(client, response, 400, "too many parts")


async def test_predict_digits_refuses_a_20_mb_form_of_empty_fields_early(client: httpx.AsyncClient) -> None:
    body = payloads.form_with_fields(300_000)  # ~17 MB: under the batch body limit
    response = await answer(client, "POST", "/predict/batch", content=body, headers=FORM)
    await assert_error(client, response, 400, "too many parts")


async def test_predict_digit_refuses_a_1_mb_field_name(client: httpx.AsyncClient) -> None:
    response = await answer(client, "POST", "/predict", content=payloads.form_with_long_name(1 << 20), headers=FORM)
    await assert_error(client, response, 400, "malformed multipart", "header size")


async def test_predict_digit_refuses_a_part_with_100000_header_lines(client: httpx.AsyncClient) -> None:
    body = payloads.form_with_many_headers(100_000)
    response = await answer(client, "POST", "/predict", content=body, headers=FORM)
    await assert_error(client, response, 400, "malformed multipart", "header count")


# ---- content types that lie ---------------------------------------------------------------------------


async def test_form_body_declared_as_png_is_415(client: httpx.AsyncClient, digit_png: bytes) -> None:
    body = b'--b\r\nContent-Disposition: form-data; name="file"\r\n\r\n' + digit_png + b"\r\n--b--\r\n"
    response = await answer(client, "POST", "/predict", content=body, headers={"Content-Type": "image/png"})
    await assert_error(client, response, 415, "not a readable image")


@pytest.mark.parametrize("content_type", ["image/jpeg", "IMAGE/PNG; charset=utf-8", "image/x-anything"])
async def test_raw_png_under_another_image_type_is_read(
    client: httpx.AsyncClient, digit_png: bytes, content_type: str
) -> None:
    # The bytes decide the format, not the label: a mislabelled image still works.
    response = await answer(client, "POST", "/predict", content=digit_png, headers={"Content-Type": content_type})
    assert response.status_code == 200, response.text


# ---- layer names --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/feature-maps/conv1%00.png",
        "/feature-maps/%00.png",
        "/feature-maps/conv1.png%00.png",
        "/feature-maps/..%5C..%5Cwindows%5Cwin.ini.png",
        "/feature-maps/%2e%2e%2f%2e%2e%2fservice%2fconfig.py.png",
        "/feature-maps/" + "a" * 10_000 + ".png",
        "/feature-maps/%E2%80%AEconv1.png",
    ],
    ids=["nul-suffix", "nul", "nul-in-extension", "backslashes", "encoded-dots", "10k-chars", "rtl-override"],
)
async def test_draw_feature_maps_with_hostile_layer_name_is_404(
    client: httpx.AsyncClient, digit_png: bytes, path: str
) -> None:
    response = await answer(client, "POST", path, files={"file": ("d.png", digit_png)})
    await assert_error(client, response, 404)


async def test_read_feature_maps_with_a_thousand_layer_names_is_400(
    client: httpx.AsyncClient, digit_png: bytes
) -> None:
    layers = ",".join(f"layer{i}" for i in range(1000))
    response = await answer(client, "POST", f"/feature-maps?layers={layers}", files={"file": ("d.png", digit_png)})
    await assert_error(client, response, 400, "unknown layer")


# ---- V2 -----------------------------------------------------------------------------------------------

INFER = "/v2/models/mnist_cnn/infer"


def v2_request(**tensor: object) -> dict[str, object]:
    image = {"name": "image", "shape": [1, 784], "datatype": "UINT8", "data": [0] * 784}
    return {"inputs": [{**image, **tensor}]}


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        (b"[" * 100_000 + b"]" * 100_000, 400, "not valid JSON"),
        (b'{"inputs": [{"name": "image", "data": [Infinity]}]}', 400, "not valid JSON"),
        (b'{"inputs": [{"name": "image", "data": [1e999]}]}', 400, "not valid JSON"),
        (b"\xff\xfe{}", 400, "not valid JSON"),
        (b'{"inputs": {"__proto__": 1}}', 400, "'inputs'"),
    ],
    ids=["nested-100k-deep", "infinity-literal", "overflowing-number", "bad-utf8", "inputs-an-object"],
)
async def test_infer_with_malformed_json_is_400(
    client: httpx.AsyncClient, body: bytes, status: int, words: str
) -> None:
    response = await answer(client, "POST", INFER, content=body, headers={"Content-Type": "application/json"})
    await assert_error(client, response, status, words)


@pytest.mark.parametrize(
    ("tensor", "status", "words"),
    [
        ({"shape": [2**40, 784]}, 413, "over the limit"),
        ({"shape": [10**30, 784]}, 400, "integers"),  # beyond 64 bits: JSON parsing makes it a float
        ({"shape": [True, 784]}, 400, "integers"),
        ({"shape": [1, 784.0]}, 400, "integers"),
        ({"datatype": "FP64"}, 400, "FP64"),
        ({"datatype": "BYTES", "data": ["x"] * 784}, 400, "BYTES"),
    ],
    ids=["batch-2e40", "batch-10e30", "bool-dimension", "float-dimension", "fp64", "bytes"],
)
async def test_infer_with_wrong_shape_or_datatype_is_refused(
    client: httpx.AsyncClient, tensor: dict[str, object], status: int, words: str
) -> None:
    await assert_error(client, await answer(client, "POST", INFER, json=v2_request(**tensor)), status, words)
