"""Settings read MNIST_* environment variables; CORS is off unless origins are configured."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from service.config import Settings
from tests.service.clients import in_process_client

pytestmark = pytest.mark.anyio


def test_settings_default_card_path_is_beside_the_model() -> None:
    settings = Settings(model_path=Path("elsewhere/model.onnx"))
    assert settings.resolved_card_path == Path("elsewhere/model.json")


def test_settings_read_mnist_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MNIST_MODEL_PATH", "/models/m.onnx")
    monkeypatch.setenv("MNIST_CARD_PATH", "/cards/m.json")
    monkeypatch.setenv("MNIST_MAX_UPLOAD_BYTES", "1234")
    monkeypatch.setenv("MNIST_MAX_BATCH_FILES", "8")
    monkeypatch.setenv("MNIST_CORS_ORIGINS", "http://a.example, http://b.example")
    settings = Settings()
    assert settings.model_path == Path("/models/m.onnx")
    assert settings.resolved_card_path == Path("/cards/m.json")
    assert (settings.max_upload_bytes, settings.max_batch_files) == (1234, 8)
    assert settings.cors_origins == ["http://a.example", "http://b.example"]


def test_settings_defaults_are_the_documented_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [name for name in os.environ if name.startswith("MNIST_")]:
        monkeypatch.delenv(name)
    settings = Settings()
    assert settings.max_upload_bytes == 5 * 1024 * 1024
    assert settings.max_batch_files == 64
    assert settings.cors_origins == []
    assert (settings.host, settings.port) == ("0.0.0.0", 8000)


async def test_cors_is_off_by_default(client: httpx.AsyncClient) -> None:
    response = await client.get("/health/live", headers={"Origin": "http://page.example"})
    assert "access-control-allow-origin" not in response.headers


async def test_cors_allows_configured_origin(settings: Settings, digit_png: bytes) -> None:
    async with in_process_client(settings.model_copy(update={"cors_origins": ["http://page.example"]})) as client:
        preflight = await client.options(
            "/predict",
            headers={"Origin": "http://page.example", "Access-Control-Request-Method": "POST"},
        )
        answer = await client.post(
            "/predict", files={"file": ("d.png", digit_png)}, headers={"Origin": "http://page.example"}
        )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "http://page.example"
    assert answer.headers["access-control-allow-origin"] == "http://page.example"
