"""Against a real `python -m service` on a loopback port: the endpoints, the errors, the limits."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import httpx
import pytest
from PIL import Image

from service.config import MiB
from tests.service.images import encode

DEFAULT_LIMIT = 5 * MiB  # the server runs with the default settings


@pytest.fixture(scope="module")
def http(server: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server, timeout=30) as client:
        yield client


def assert_error(http: httpx.Client, response: httpx.Response, status: int) -> None:
    assert response.status_code == status, response.text
    assert list(response.json()) == ["error"]
    assert http.get("/health/live").status_code == 200


def raw_exchange(server: str, request: bytes) -> bytes:
    """Send bytes on a fresh connection and read until the server closes it or answers a full response."""
    address = urlsplit(server)
    with socket.create_connection((address.hostname, address.port), timeout=10) as sock:
        sock.sendall(request)
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    return answer


def test_predict_digit_over_loopback(http: httpx.Client, digit_png: bytes) -> None:
    response = http.post("/predict", files={"file": ("seven.png", digit_png, "image/png")})
    assert response.status_code == 200, response.text
    assert len(response.json()["probabilities"]) == 10


def test_predict_digit_raw_body_over_loopback(http: httpx.Client, digit_png: bytes) -> None:
    response = http.post("/predict", content=digit_png, headers={"Content-Type": "image/png"})
    assert response.status_code == 200, response.text


def test_predict_digits_over_loopback(http: httpx.Client, digit_png: bytes) -> None:
    files = [("files", (f"{i}.png", digit_png, "image/png")) for i in range(64)]
    response = http.post("/predict/batch", files=files)
    assert response.status_code == 200, response.text
    assert len(response.json()["predictions"]) == 64


def test_predict_digit_answers_concurrent_requests(server: str, digit_png: bytes) -> None:
    def predict(_: int) -> int:
        return httpx.post(f"{server}/predict", files={"file": ("d.png", digit_png)}, timeout=30).status_code

    with ThreadPoolExecutor(8) as pool:
        assert set(pool.map(predict, range(32))) == {200}


def test_read_feature_maps_over_loopback(http: httpx.Client, digit_png: bytes) -> None:
    response = http.post("/feature-maps?format=compact", files={"file": ("d.png", digit_png)})
    assert response.status_code == 200, response.text
    assert len(response.json()["layers"]) == 8


def test_draw_feature_maps_over_loopback(http: httpx.Client, digit_png: bytes) -> None:
    response = http.post("/feature-maps/conv3.png", files={"file": ("d.png", digit_png)})
    assert response.status_code == 200 and response.content.startswith(b"\x89PNG")


def test_read_model_card_and_probes_over_loopback(http: httpx.Client) -> None:
    assert http.get("/model").json()["name"] == "mnist_cnn"
    assert http.get("/health/live").status_code == 200
    assert http.get("/health/ready").status_code == 200
    assert "mnist_model_info{" in http.get("/metrics").text
    assert http.get("/docs").status_code == 200


def test_predict_digit_refuses_declared_oversize_before_the_body(server: str) -> None:
    # Only the headers are sent: the 413 must come without waiting for 6 MB that never arrive.
    head = (
        f"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: {DEFAULT_LIMIT + 1}\r\n\r\n"
    ).encode()
    answer = raw_exchange(server, head)
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert b'{"error":' in answer and b"5,242,880" in answer


def test_predict_digit_refuses_chunked_oversize(http: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(DEFAULT_LIMIT // 65536 + 16):
            yield b"\0" * 65536

    response = http.post("/predict", content=chunks(), headers={"Content-Type": "image/png"})
    assert "content-length" not in response.request.headers
    assert_error(http, response, 413)


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status"),
    [
        ("POST", "/predict", {"files": {"wrong": ("d.png", b"x")}}, 400),
        (
            "POST",
            "/feature-maps?format=xml",
            {"content": b"x", "headers": {"Content-Type": "image/png"}},
            400,
        ),
        ("POST", "/feature-maps/conv9.png", {"content": b"x", "headers": {"Content-Type": "image/png"}}, 404),
        ("GET", "/nowhere", {}, 404),
        ("DELETE", "/predict", {}, 405),
        ("POST", "/predict", {"content": b"seven", "headers": {"Content-Type": "text/plain"}}, 415),
        ("POST", "/predict", {"content": b"GIF89a junk", "headers": {"Content-Type": "image/gif"}}, 415),
        ("POST", "/predict", {"files": {"file": ("blank.png", encode(Image.new("L", (40, 40), 0)))}}, 422),
    ],
    ids=["400-no-file", "400-format", "404-layer", "404-path", "405", "415-text", "415-junk", "422-blank"],
)
def test_errors_over_loopback_are_json_and_server_keeps_serving(
    http: httpx.Client, method: str, path: str, kwargs: dict, status: int
) -> None:
    assert_error(http, http.request(method, path, **kwargs), status)
