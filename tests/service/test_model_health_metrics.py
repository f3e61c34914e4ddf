"""GET /model, /health/live, /health/ready, /metrics and /docs, in-process."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from service.config import Settings
from service.main import create_app
from tests.service.metrics import samples

pytestmark = pytest.mark.anyio


async def test_read_model_card_returns_the_card(client: httpx.AsyncClient, random_model: tuple[Path, Path]) -> None:
    response = await client.get("/model")
    assert response.status_code == 200
    assert response.json() == json.loads(random_model[1].read_text())


async def test_read_model_card_includes_the_layer_table(client: httpx.AsyncClient) -> None:
    layers = (await client.get("/model")).json()["layers"]
    assert [row["name"] for row in layers][:2] == ["conv1", "pool1"]
    assert layers[0] == {
        "name": "conv1",
        "type": "Conv2d(1, 32, 3) + ReLU",
        "kind": "conv",
        "output_shape": ["N", 32, 26, 26],
        "parameters": 320,
    }


async def test_check_live_is_200_and_says_only_live(client: httpx.AsyncClient) -> None:
    response = await client.get("/health/live")
    assert response.status_code == 200 and response.json() == {"status": "live"}


async def test_check_ready_is_200_naming_every_model_loaded(client: httpx.AsyncClient, random_model: tuple) -> None:
    response = await client.get("/health/ready")
    sha256 = json.loads(random_model[1].read_text())["sha256"]
    assert response.status_code == 200
    assert response.json() == {
        "status": "ready",
        "default_model": "mnist_cnn",
        "models": [{"name": "mnist_cnn", "version": "1", "sha256": sha256}],
    }


async def test_check_ready_is_503_before_model_loaded(settings: Settings) -> None:
    app = create_app(settings)  # lifespan not run
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        live, ready = await client.get("/health/live"), await client.get("/health/ready")
    assert live.status_code == 200
    assert ready.status_code == 503 and "not loaded" in ready.json()["error"]


def requests_total(values: dict[tuple[str, frozenset], float], method: str, route: str, status: str) -> float:
    return values[("mnist_http_requests_total", frozenset({("method", method), ("route", route), ("status", status)}))]


async def test_read_metrics_counts_requests_by_route_template(client: httpx.AsyncClient, digit_png: bytes) -> None:
    # /predict is answered by HotRoutes before FastAPI's router, /feature-maps/... by the router: both count.
    await client.post("/predict", files={"file": ("d.png", digit_png)})
    await client.post("/predict", content=b"not an image", headers={"Content-Type": "image/png"})
    await client.post("/feature-maps/conv1.png", files={"file": ("d.png", digit_png)})
    await client.post("/feature-maps/conv2.png", files={"file": ("d.png", digit_png)})
    await client.post("/feature-maps/nope.png", files={"file": ("d.png", digit_png)})
    await client.get("/no/such/path")
    response = await client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    values = samples(response.text)
    assert requests_total(values, "POST", "/predict", "200") == 1
    assert requests_total(values, "POST", "/predict", "415") == 1
    layer_png = "/feature-maps/{layer}.png"
    assert requests_total(values, "POST", layer_png, "200") == 2
    assert requests_total(values, "POST", layer_png, "404") == 1
    assert requests_total(values, "GET", "<unmatched>", "404") == 1
    latency = frozenset({("method", "POST"), ("route", layer_png)})
    assert values[("mnist_http_request_duration_seconds_count", latency)] == 3


async def test_read_metrics_records_batch_sizes_and_queue_time(client: httpx.AsyncClient, digit_png: bytes) -> None:
    files = [("files", (f"{i}.png", digit_png)) for i in range(3)]
    await client.post("/predict/batch", files=files)
    await client.post("/predict", files={"file": ("d.png", digit_png)})
    values = samples((await client.get("/metrics")).text)
    model = frozenset({("model", "mnist_cnn"), ("version", "1")})
    assert values[("mnist_inference_batch_size_count", model)] == 2  # runs
    assert values[("mnist_inference_batch_size_sum", model)] == 4  # images
    assert values[("mnist_inference_batch_size_bucket", model | {("le", "2.0")})] == 1
    assert values[("mnist_inference_queue_seconds_count", model)] == 2  # one wait per request
    assert values[("mnist_inference_requests_total", model)] == 2


async def test_read_metrics_publishes_model_info(client: httpx.AsyncClient) -> None:
    card = (await client.get("/model")).json()
    values = samples((await client.get("/metrics")).text)
    labels = frozenset({("name", card["name"]), ("version", card["version"]), ("sha256", card["sha256"])})
    assert values[("mnist_model_info", labels)] == 1


async def test_read_metrics_of_a_new_app_starts_from_zero(client: httpx.AsyncClient, settings: Settings) -> None:
    await client.get("/health/live")
    other = create_app(settings)  # its own registry: nothing shared with `client`'s app
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=other), base_url="http://t") as fresh:
        values = samples((await fresh.get("/metrics")).text)
    assert not any(name == "mnist_http_requests_total" for name, _ in values)


async def test_openapi_documents_file_fields_and_errors(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    predict = spec["paths"]["/predict"]["post"]
    form = predict["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert form["properties"]["file"]["format"] == "binary"
    assert "image/png" in predict["requestBody"]["content"]
    assert {"200", "400", "413", "415", "422"} <= set(predict["responses"])
    batch = spec["paths"]["/predict/batch"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert batch["properties"]["files"]["type"] == "array"
    assert (await client.get("/docs")).status_code == 200
