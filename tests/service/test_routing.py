"""The hot path: /predict answered by HotRoutes keeps every behaviour the FastAPI route had."""

from __future__ import annotations

import httpx
import pytest
from pydantic import SecretStr

from service.config import Settings
from tests.service.clients import in_process_client
from tests.service.test_model_health_metrics import samples

pytestmark = pytest.mark.anyio


async def test_predict_digit_counts_in_metrics_under_its_route(client: httpx.AsyncClient, digit_png: bytes) -> None:
    await client.post("/predict", files={"file": ("d.png", digit_png)})
    await client.post("/predict", content=b"not an image", headers={"Content-Type": "image/png"})
    values = samples((await client.get("/metrics")).text)
    route = ("route", "/predict")
    assert values[("mnist_http_requests_total", frozenset({("method", "POST"), route, ("status", "200")}))] == 1
    assert values[("mnist_http_requests_total", frozenset({("method", "POST"), route, ("status", "415")}))] == 1


async def test_predict_digit_errors_keep_the_json_shape(client: httpx.AsyncClient) -> None:
    response = await client.post("/predict", content=b"", headers={"Content-Type": "text/plain"})
    assert response.status_code == 415
    assert response.headers["content-type"] == "application/json"
    assert set(response.json()) == {"error"}


async def test_predict_digit_with_get_is_still_405(client: httpx.AsyncClient) -> None:
    response = await client.get("/predict")
    assert response.status_code == 405 and "POST" in response.json()["error"]


async def test_predict_digit_still_needs_a_configured_key(settings: Settings, digit_png: bytes) -> None:
    async with in_process_client(settings.model_copy(update={"api_keys": [SecretStr("k" * 32)]})) as client:
        refused = await client.post("/predict", files={"file": ("d.png", digit_png)})
        allowed = await client.post("/predict", files={"file": ("d.png", digit_png)}, headers={"X-API-Key": "k" * 32})
    assert refused.status_code == 401
    assert allowed.status_code == 200


async def test_predict_digit_answers_cors_for_a_configured_origin(settings: Settings, digit_png: bytes) -> None:
    async with in_process_client(settings.model_copy(update={"cors_origins": ["https://digits.example"]})) as client:
        response = await client.post(
            "/predict", files={"file": ("d.png", digit_png)}, headers={"Origin": "https://digits.example"}
        )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "https://digits.example"
