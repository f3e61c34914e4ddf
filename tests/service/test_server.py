"""Against a real `python -m service` on a loopback port: every endpoint answers, requests run concurrently, and
a declared oversize body is refused before it is sent. The errors themselves are pinned in-process (test_errors.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from service.config import Settings
from tests.reliability.processes import LiveService
from tests.reliability.raw_http import connect, read_response

DEFAULT_LIMIT = Settings.model_fields["max_upload_bytes"].default  # the server runs with the default settings


@pytest.fixture(scope="module")
def http(live_service: LiveService) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live_service.url, timeout=30) as client:
        yield client


def test_predict_digit_over_loopback(http: httpx.Client, digit_png: bytes) -> None:
    response = http.post("/predict", files={"file": ("seven.png", digit_png, "image/png")})
    assert response.status_code == 200, response.text
    assert len(response.json()["probabilities"]) == 10


def test_predict_digit_raw_body_over_loopback(http: httpx.Client, digit_png: bytes) -> None:
    response = http.post("/predict", content=digit_png, headers={"Content-Type": "image/png"})
    assert response.status_code == 200, response.text


def test_predict_digits_over_loopback(http: httpx.Client, digit_png: bytes) -> None:
    files = [("files", (f"{i}.png", digit_png, "image/png")) for i in range(8)]
    response = http.post("/predict/batch", files=files)
    assert response.status_code == 200, response.text
    assert len(response.json()["predictions"]) == 8


def test_predict_digit_answers_concurrent_requests(live_service: LiveService, digit_png: bytes) -> None:
    def predict(_: int) -> int:
        return httpx.post(f"{live_service.url}/predict", files={"file": ("d.png", digit_png)}, timeout=30).status_code

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


def test_predict_digit_refuses_declared_oversize_before_the_body(live_service: LiveService) -> None:
    # Only the headers are sent: the 413 must come without waiting for 6 MB that never arrive.
    head = (
        f"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: {DEFAULT_LIMIT + 1}\r\n\r\n"
    ).encode()
    with connect(live_service, timeout=10) as sock:
        sock.sendall(head)
        status_and_headers, body = read_response(sock)
    assert status_and_headers.startswith(b"HTTP/1.1 413 ")
    assert f"{DEFAULT_LIMIT:,}" in json.loads(body)["error"]
