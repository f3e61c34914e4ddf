"""The Open Inference Protocol (KServe V2) endpoints: health, metadata, inference in JSON and binary, errors."""

from __future__ import annotations

import gzip
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from service.config import Settings
from service.errors import BadRequest
from service.main import create_app
from service.runtime import ModelRuntime
from service.v2 import split_body
from tests.paths import mnist_test_files
from tests.service.images import encode
from tests.shapes import LAYER_NAMES, OUTPUT_SHAPES

pytestmark = pytest.mark.anyio

INFER = "/v2/models/mnist_cnn/infer"
HEADER_LENGTH = "Inference-Header-Content-Length"
DIGITS = 64  # MNIST test digits in one request: a full batch at the default max_batch_files
BODY_LIMIT = 2_000_000  # bytes; the default, 20 MiB, would make each over-the-limit test send 20 MiB


@pytest.fixture
def settings(random_repository: Path) -> Settings:
    """The random test repository with every setting at its default but the body limit, BODY_LIMIT (overrides
    tests/conftest.py's `settings`, and `client` follows)."""
    return Settings(model_repository=random_repository, max_batch_upload_bytes=BODY_LIMIT)


@pytest.fixture(scope="module")
def runtime(random_model: tuple[Path, Path]) -> ModelRuntime:
    """The random test model run directly: the oracle for what V2 must return."""
    return ModelRuntime.load(*random_model)


@pytest.fixture(scope="module")
def mnist() -> tuple[np.ndarray, np.ndarray]:
    """The first 64 MNIST test images (64, 28, 28) uint8 and their labels."""
    from training.data import load_split

    split = load_split("test", mnist_test_files(), download=False)
    return split.images[:DIGITS], split.labels[:DIGITS]


@pytest.fixture
async def unloaded_client(settings: Settings, anyio_backend: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client of an app whose lifespan has not run: the model is not loaded."""
    transport = httpx.ASGITransport(app=create_app(settings))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


# ---- helpers -----------------------------------------------------------------------------------------


def images_of(count: int, seed: int = 0) -> np.ndarray:
    """count random images (count, 1, 28, 28) float32 in [0, 1]."""
    return np.random.default_rng(seed).random((count, 1, 28, 28), dtype=np.float32)


def tensor(images: np.ndarray, datatype: str = "FP32", **fields: Any) -> dict[str, Any]:
    """An `image` request input with the data as a flat JSON list."""
    return {
        "name": "image",
        "shape": list(images.shape),
        "datatype": datatype,
        "data": images.ravel().tolist(),
        **fields,
    }


def binary_body(request: dict[str, Any], *blobs: bytes) -> tuple[bytes, dict[str, str]]:
    """(body, headers) of a request with binary tensors after its JSON."""
    header = json.dumps(request).encode()
    return header + b"".join(blobs), {HEADER_LENGTH: str(len(header))}


def binary_input(images: np.ndarray, datatype: str = "FP32") -> tuple[dict[str, Any], bytes]:
    data = images.astype("<f4" if datatype == "FP32" else "u1").tobytes()
    return {
        "name": "image",
        "shape": list(images.shape),
        "datatype": datatype,
        "parameters": {"binary_data_size": len(data)},
    }, data


def decode(response: httpx.Response) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(the response's JSON, each output as an array of its shape), from JSON data or the binary tail."""
    length = response.headers.get(HEADER_LENGTH)
    header = response.json() if length is None else json.loads(response.content[: int(length)])
    offset = 0 if length is None else int(length)
    arrays = {}
    for output in header["outputs"]:
        if "data" in output:
            values = np.asarray(output["data"], np.float32)
        else:
            size = output["parameters"]["binary_data_size"]
            values = np.frombuffer(response.content[offset : offset + size], "<f4")
            offset += size
        arrays[output["name"]] = values.reshape(output["shape"])
    assert offset in (0, len(response.content)), "binary data left over after the last output"
    return header, arrays


# ---- health and metadata -----------------------------------------------------------------------------


async def test_read_server_metadata_lists_binary_tensor_data(client: httpx.AsyncClient) -> None:
    response = await client.get("/v2")
    assert response.status_code == 200
    body = response.json()
    assert body["name"] and body["version"]
    assert "binary_tensor_data" in body["extensions"]


@pytest.mark.parametrize(
    "path",
    [
        "/v2/health/live",
        "/v2/health/ready",
        "/v2/models/mnist_cnn/ready",
        "/v2/models/mnist_cnn/versions/1/ready",
    ],
)
async def test_check_health_answers_200_with_empty_body_once_loaded(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 200
    assert response.content == b""


@pytest.mark.parametrize("path", ["/v2/health/ready", "/v2/models/mnist_cnn/ready"])
async def test_check_ready_answers_400_before_the_model_loads(unloaded_client: httpx.AsyncClient, path: str) -> None:
    response = await unloaded_client.get(path)
    assert response.status_code == 400
    assert response.content == b""


async def test_check_server_live_answers_200_before_the_model_loads(unloaded_client: httpx.AsyncClient) -> None:
    assert (await unloaded_client.get("/v2/health/live")).status_code == 200


async def test_infer_before_the_model_loads_is_503(unloaded_client: httpx.AsyncClient) -> None:
    response = await unloaded_client.post(INFER, json={"inputs": [tensor(images_of(1))]})
    assert response.status_code == 503
    assert "not loaded" in response.json()["error"]


@pytest.mark.parametrize(
    "path",
    [
        "/v2/models/mnist_cnn9/ready",
        "/v2/models/mnist_cnn/versions/2/ready",
        "/v2/models/mnist_cnn9",
        "/v2/models/mnist_cnn/versions/2",
    ],
)
async def test_read_unknown_model_or_version_is_404(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 404
    assert "unknown" in response.json()["error"]


@pytest.mark.parametrize("path", ["/v2/models/mnist_cnn", "/v2/models/mnist_cnn/versions/1"])
async def test_read_model_metadata_describes_every_tensor(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 200
    body = response.json()
    assert body["name"] == "mnist_cnn"
    assert body["versions"] == ["1"]
    assert body["platform"] == "onnxruntime_onnx"
    assert body["inputs"] == [{"name": "image", "datatype": "FP32", "shape": [-1, 1, 28, 28]}]
    outputs = {item["name"]: item for item in body["outputs"]}
    assert list(outputs) == list(LAYER_NAMES)
    for name, shape in OUTPUT_SHAPES.items():
        assert outputs[name] == {"name": name, "datatype": "FP32", "shape": [-1, *shape]}
    assert outputs["conv1"]["shape"] == [-1, 32, 26, 26]
    assert outputs["flatten"]["shape"] == [-1, 1152]


# ---- inference round trips ---------------------------------------------------------------------------


@pytest.mark.parametrize("count", [1, 64])
async def test_infer_returns_every_output_in_json(client: httpx.AsyncClient, runtime: ModelRuntime, count: int) -> None:
    images = images_of(count)
    response = await client.post(INFER, json={"id": "req-7", "inputs": [tensor(images)]})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert HEADER_LENGTH not in response.headers
    header, arrays = decode(response)
    assert (header["model_name"], header["model_version"], header["id"]) == ("mnist_cnn", "1", "req-7")
    assert list(arrays) == list(LAYER_NAMES)
    expected = runtime.run(images, LAYER_NAMES)
    for name in LAYER_NAMES:
        assert header["outputs"][LAYER_NAMES.index(name)]["datatype"] == "FP32"
        np.testing.assert_allclose(arrays[name], expected[name], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("count", [1, 64])
async def test_infer_returns_every_output_in_binary(
    client: httpx.AsyncClient, runtime: ModelRuntime, count: int
) -> None:
    images = images_of(count, seed=1)
    image_input, data = binary_input(images)
    body, headers = binary_body({"inputs": [image_input], "parameters": {"binary_data_output": True}}, data)
    response = await client.post(INFER, content=body, headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/octet-stream"
    header, arrays = decode(response)
    expected = runtime.run(images, LAYER_NAMES)
    for output in header["outputs"]:
        name = output["name"]
        assert "data" not in output
        assert output["parameters"]["binary_data_size"] == expected[name].nbytes
        np.testing.assert_array_equal(arrays[name], expected[name])  # bit for bit


async def test_infer_returns_the_asked_outputs_in_the_asked_order(client: httpx.AsyncClient) -> None:
    outputs = [{"name": "logits"}, {"name": "conv1"}, {"name": "probabilities"}]
    response = await client.post(INFER, json={"inputs": [tensor(images_of(2))], "outputs": outputs})
    assert response.status_code == 200, response.text
    header, arrays = decode(response)
    assert [output["name"] for output in header["outputs"]] == ["logits", "conv1", "probabilities"]
    assert arrays["conv1"].shape == (2, 32, 26, 26)
    assert "id" not in header


async def test_infer_binary_data_per_output_overrides_binary_data_output(
    client: httpx.AsyncClient, runtime: ModelRuntime
) -> None:
    images = images_of(3, seed=2)
    request = {
        "inputs": [tensor(images)],
        "parameters": {"binary_data_output": True},
        "outputs": [{"name": "pool2"}, {"name": "probabilities", "parameters": {"binary_data": False}}],
    }
    response = await client.post(INFER, json=request)
    assert response.status_code == 200, response.text
    header, arrays = decode(response)
    pool2, probabilities = header["outputs"]
    assert pool2["parameters"] == {"binary_data_size": 3 * 64 * 5 * 5 * 4} and "data" not in pool2
    assert len(probabilities["data"]) == 30 and "parameters" not in probabilities
    expected = runtime.run(images, ("pool2", "probabilities"))
    np.testing.assert_array_equal(arrays["pool2"], expected["pool2"])
    np.testing.assert_allclose(arrays["probabilities"], expected["probabilities"], rtol=1e-6)


async def test_infer_binary_data_on_one_output_sends_only_it_in_binary(client: httpx.AsyncClient) -> None:
    outputs = [{"name": "logits", "parameters": {"binary_data": True}}, {"name": "flatten"}]
    response = await client.post(INFER, json={"inputs": [tensor(images_of(1))], "outputs": outputs})
    assert response.status_code == 200, response.text
    header, arrays = decode(response)
    assert header["outputs"][0]["parameters"] == {"binary_data_size": 40}
    assert len(header["outputs"][1]["data"]) == 1152


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
async def test_infer_uint8_input_is_scaled_by_1_over_255(client: httpx.AsyncClient, binary: bool) -> None:
    pixels = np.random.default_rng(3).integers(0, 256, (4, 1, 28, 28), dtype=np.uint8)
    outputs = [{"name": "probabilities"}]
    if binary:
        image_input, data = binary_input(pixels, "UINT8")
        body, headers = binary_body({"inputs": [image_input], "outputs": outputs}, data)
        response = await client.post(INFER, content=body, headers=headers)
    else:
        response = await client.post(INFER, json={"inputs": [tensor(pixels, "UINT8")], "outputs": outputs})
    scaled = pixels.astype(np.float32) / np.float32(255.0)
    reference = await client.post(INFER, json={"inputs": [tensor(scaled)], "outputs": outputs})
    assert response.status_code == reference.status_code == 200, response.text
    np.testing.assert_array_equal(decode(response)[1]["probabilities"], decode(reference)[1]["probabilities"])


@pytest.mark.parametrize("shape", [[2, 28, 28], [2, 784]], ids=["N,28,28", "N,784"])
async def test_infer_accepts_other_image_layouts(
    client: httpx.AsyncClient, runtime: ModelRuntime, shape: list[int]
) -> None:
    images = images_of(2, seed=4)
    request = {"inputs": [tensor(images.reshape(shape))], "outputs": [{"name": "logits"}]}
    response = await client.post(INFER, json=request)
    assert response.status_code == 200, response.text
    expected = runtime.run(images, ("logits",))["logits"]
    np.testing.assert_allclose(decode(response)[1]["logits"], expected, rtol=1e-6, atol=1e-6)


async def test_infer_accepts_nested_data(client: httpx.AsyncClient) -> None:
    images = images_of(2, seed=5)
    flat = await client.post(INFER, json={"inputs": [tensor(images)], "outputs": [{"name": "logits"}]})
    nested_input = {**tensor(images), "data": images.tolist()}  # [[[[...]]]], row-major
    nested = await client.post(INFER, json={"inputs": [nested_input], "outputs": [{"name": "logits"}]})
    assert flat.status_code == nested.status_code == 200
    assert flat.json()["outputs"] == nested.json()["outputs"]


async def test_infer_version_path_runs_the_served_version(client: httpx.AsyncClient) -> None:
    response = await client.post("/v2/models/mnist_cnn/versions/1/infer", json={"inputs": [tensor(images_of(1))]})
    assert response.status_code == 200, response.text
    assert response.json()["model_version"] == "1"


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
async def test_infer_reads_a_compressed_body(client: httpx.AsyncClient, encoding: str) -> None:
    import zlib

    body = json.dumps({"inputs": [tensor(images_of(1))], "outputs": [{"name": "logits"}]}).encode()
    compressed = gzip.compress(body) if encoding == "gzip" else zlib.compress(body)
    response = await client.post(INFER, content=compressed, headers={"Content-Encoding": encoding})
    assert response.status_code == 200, response.text
    assert decode(response)[1]["logits"].shape == (1, 10)


# ---- the trained model: right digits, and the same answers as /predict ------------------------------


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
async def test_infer_reads_mnist_test_digits(
    committed_client: httpx.AsyncClient, mnist: tuple[np.ndarray, np.ndarray], binary: bool
) -> None:
    pixels, labels = mnist
    images = (pixels.astype(np.float32) / 255.0)[:, None]  # (64, 1, 28, 28)
    if binary:
        image_input, data = binary_input(images)
        request = {"inputs": [image_input], "outputs": [{"name": "probabilities", "parameters": {"binary_data": True}}]}
        response = await committed_client.post(INFER, content=(body := binary_body(request, data))[0], headers=body[1])
    else:
        response = await committed_client.post(
            INFER, json={"inputs": [tensor(images)], "outputs": [{"name": "probabilities"}]}
        )
    assert response.status_code == 200, response.text
    probabilities = decode(response)[1]["probabilities"]
    assert probabilities.shape == (DIGITS, 10)
    np.testing.assert_array_equal(probabilities.argmax(axis=1), labels)


async def test_infer_agrees_with_predict_on_mnist_test_digits(
    committed_client: httpx.AsyncClient, mnist: tuple[np.ndarray, np.ndarray]
) -> None:
    pixels, labels = mnist
    pixels, labels = pixels[:16], labels[:16]
    files = [("files", (f"{i}.png", encode(Image.fromarray(image)), "image/png")) for i, image in enumerate(pixels)]
    predicted = await committed_client.post("/predict/batch", files=files)
    assert predicted.status_code == 200, predicted.text
    from_predict = np.array([item["probabilities"] for item in predicted.json()["predictions"]])
    request = {"inputs": [tensor(pixels, "UINT8")], "outputs": [{"name": "probabilities"}]}  # (16, 28, 28)
    response = await committed_client.post(INFER, json=request)
    assert response.status_code == 200, response.text
    from_v2 = decode(response)[1]["probabilities"]
    np.testing.assert_array_equal(from_v2.argmax(axis=1), labels)
    np.testing.assert_array_equal(from_predict.argmax(axis=1), labels)
    np.testing.assert_allclose(from_v2, from_predict, atol=1e-5)


# ---- errors ------------------------------------------------------------------------------------------

ONE = images_of(1)
IMAGE = tensor(ONE)

# Requests in JSON that must be refused with 400, by what is wrong -> (request, words in the error).
BAD_JSON_REQUESTS: dict[str, tuple[Any, str]] = {
    "no-inputs": ({"outputs": [{"name": "logits"}]}, "'inputs'"),
    "not-an-object": ([IMAGE], "JSON object"),
    "wrong-input-name": ({"inputs": [{**IMAGE, "name": "input0"}]}, "'input0'"),
    "two-inputs": ({"inputs": [IMAGE, IMAGE]}, "one input"),
    "datatype-int32": ({"inputs": [{**IMAGE, "datatype": "INT32"}]}, "datatype 'INT32'"),
    "datatype-missing": ({"inputs": [{k: v for k, v in IMAGE.items() if k != "datatype"}]}, "datatype"),
    "shape-three-channels": ({"inputs": [{**IMAGE, "shape": [1, 3, 28, 28]}]}, "shape [1, 3, 28, 28]"),
    "shape-too-small": ({"inputs": [{**IMAGE, "shape": [1, 1, 28]}]}, "shape"),
    "shape-negative": ({"inputs": [{**IMAGE, "shape": [-1, 1, 28, 28]}]}, "integers"),
    "shape-not-a-list": ({"inputs": [{**IMAGE, "shape": "1,1,28,28"}]}, "'shape'"),
    "no-images": ({"inputs": [{**IMAGE, "shape": [0, 1, 28, 28], "data": []}]}, "at least one image"),
    "too-few-values": ({"inputs": [{**IMAGE, "data": IMAGE["data"][:-1]}]}, "783 values"),
    "too-many-values": ({"inputs": [{**IMAGE, "data": IMAGE["data"] * 2}]}, "1,568 values"),
    "no-data": ({"inputs": [{k: v for k, v in IMAGE.items() if k != "data"}]}, "needs 'data'"),
    "data-strings": ({"inputs": [{**IMAGE, "data": ["0.5"] * 784}]}, "only numbers"),
    "data-ragged": ({"inputs": [{**IMAGE, "data": [[0.5] * 783, [0.5]]}]}, "regular array"),
    "data-null": ({"inputs": [{**IMAGE, "data": [None] * 784}]}, "only numbers"),
    "fp32-over-one": ({"inputs": [{**IMAGE, "data": [255.0] * 784}]}, "[0, 1]"),
    "fp32-negative": ({"inputs": [{**IMAGE, "data": [-0.4] * 784}]}, "[0, 1]"),
    "fp32-beyond-float32": ({"inputs": [{**IMAGE, "data": [1e39] * 784}]}, "[0, 1]"),
    "uint8-over-255": ({"inputs": [tensor(np.full((1, 784), 256), "UINT8")]}, "0-255"),
    "uint8-fractions": ({"inputs": [tensor(ONE, "UINT8")]}, "integers 0-255"),
    "unknown-output": ({"inputs": [IMAGE], "outputs": [{"name": "conv9"}]}, "unknown output 'conv9'"),
    "output-twice": ({"inputs": [IMAGE], "outputs": [{"name": "logits"}, {"name": "logits"}]}, "twice"),
    "output-without-name": ({"inputs": [IMAGE], "outputs": [{}]}, "unknown output None"),
    "output-name-not-a-string": ({"inputs": [IMAGE], "outputs": [{"name": ["logits"]}]}, "unknown output ['logits']"),
    "binary-data-not-bool": (
        {"inputs": [IMAGE], "outputs": [{"name": "logits", "parameters": {"binary_data": "yes"}}]},
        "'binary_data'",
    ),
    "binary-data-output-not-bool": ({"inputs": [IMAGE], "parameters": {"binary_data_output": 1}}, "true or false"),
    "parameters-not-an-object": ({"inputs": [IMAGE], "parameters": [1]}, "'parameters'"),
    "id-not-a-string": ({"id": 42, "inputs": [IMAGE]}, "'id'"),
    "binary-size-without-header": (
        {"inputs": [{**binary_input(ONE)[0]}]},
        "Inference-Header-Content-Length",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_JSON_REQUESTS))
async def test_infer_bad_json_request_is_400(client: httpx.AsyncClient, case: str) -> None:
    request, words = BAD_JSON_REQUESTS[case]
    response = await client.post(INFER, json=request)
    assert response.status_code == 400, response.text
    assert words in response.json()["error"]


def _raw_cases() -> dict[str, tuple[bytes, dict[str, str], str]]:
    image_input, data = binary_input(ONE)  # 3,136 bytes
    header = json.dumps({"inputs": [image_input]}).encode()
    length = {HEADER_LENGTH: str(len(header))}
    nan = ONE.copy()
    nan[0, 0, 5, 5] = np.nan
    inf = ONE.copy()
    inf[0, 0, 5, 5] = np.inf
    return {
        "malformed-json": (b'{"inputs": [', {}, "not valid JSON"),
        "nan-literal": (b'{"inputs": [{"name": "image", "data": [NaN]}]}', {}, "not valid JSON"),
        "empty-body": (b"", {}, "not valid JSON"),
        "header-length-not-a-number": (header + data, {HEADER_LENGTH: "12a"}, "not a non-negative integer"),
        "header-length-negative": (header + data, {HEADER_LENGTH: "-5"}, "not a non-negative integer"),
        "header-length-past-body": (header + data, {HEADER_LENGTH: str(len(header) + len(data) + 1)}, "more than"),
        "header-length-cuts-json": (header + data, {HEADER_LENGTH: str(len(header) - 1)}, "not valid JSON"),
        "binary-shorter-than-size": (header + data[:-4], length, "3,132 bytes follow"),
        "binary-longer-than-size": (header + data + b"\0", length, "3,137 bytes follow"),
        "binary-size-not-the-shape": binary_body(
            {"inputs": [{**image_input, "parameters": {"binary_data_size": 3000}}]}, data[:3000]
        )
        + ("needs 3,136",),
        "binary-size-not-an-int": binary_body(
            {"inputs": [{**image_input, "parameters": {"binary_data_size": "3136"}}]}, data
        )
        + ("non-negative integer",),
        "binary-and-data": binary_body({"inputs": [{**image_input, "data": IMAGE["data"]}]}, data) + ("both",),
        "bytes-after-json-unclaimed": binary_body({"inputs": [IMAGE]}, b"\0\0\0\0") + ("no binary_data_size",),
        "binary-nan": binary_body({"inputs": [image_input]}, nan.tobytes()) + ("NaN",),
        "binary-inf": binary_body({"inputs": [image_input]}, inf.tobytes()) + ("infinite",),
        "gzip-garbage": (b"not gzip at all", {"Content-Encoding": "gzip"}, "not valid gzip"),
        "gzip-truncated": (gzip.compress(header)[:-12], {"Content-Encoding": "gzip"}, "truncated"),
        "encoding-unknown": (header, {"Content-Encoding": "br"}, "Content-Encoding 'br'"),
    }


RAW_CASES = _raw_cases()


@pytest.mark.parametrize("case", sorted(RAW_CASES))
async def test_infer_bad_body_is_400(client: httpx.AsyncClient, case: str) -> None:
    body, headers, words = RAW_CASES[case]
    response = await client.post(INFER, content=body, headers=headers)
    assert response.status_code == 400, response.text
    assert words in response.json()["error"]


@pytest.mark.parametrize(
    "path", ["/v2/models/mnist_cnn9/infer", "/v2/models/mnist_cnn/versions/2/infer"], ids=["model", "version"]
)
async def test_infer_unknown_model_or_version_is_404(client: httpx.AsyncClient, path: str) -> None:
    response = await client.post(path, json={"inputs": [IMAGE]})
    assert response.status_code == 404
    assert "unknown" in response.json()["error"]


async def test_infer_batch_over_the_limit_is_413(client: httpx.AsyncClient, settings: Settings) -> None:
    pixels = np.zeros((settings.max_batch_files + 1, 1, 28, 28), np.uint8)
    response = await client.post(INFER, json={"inputs": [tensor(pixels, "UINT8")]})
    assert response.status_code == 413
    assert f"over the limit of {settings.max_batch_files}" in response.json()["error"]


async def test_infer_body_over_the_limit_is_413(client: httpx.AsyncClient) -> None:
    response = await client.post(INFER, content=b" " * (BODY_LIMIT + 1))
    assert response.status_code == 413
    assert "over the limit" in response.json()["error"]


async def test_infer_compressed_body_inflating_over_the_limit_is_413(client: httpx.AsyncClient) -> None:
    response = await client.post(
        INFER, content=gzip.compress(b" " * (BODY_LIMIT + 1)), headers={"Content-Encoding": "gzip"}
    )
    assert response.status_code == 413
    assert "inflates past the limit" in response.json()["error"]


def test_split_body_refuses_a_header_length_of_non_ascii_digits() -> None:
    with pytest.raises(BadRequest, match="not a non-negative integer"):
        split_body(b"{}", "\u00b2")  # a superscript 2: isdigit() says yes, int() says no


async def test_infer_json_larger_than_the_batch_could_need_is_413(client: httpx.AsyncClient) -> None:
    body = b'{"inputs":[{"name":"image","shape":[1,784],"datatype":"FP32","data":[' + b"0," * 880_000 + b"0]}]}"
    response = await client.post(INFER, content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert "binary" in response.json()["error"]
