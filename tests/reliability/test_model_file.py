"""The model file changing on disk under a running server: it keeps serving the model it verified and loaded
into memory at start-up; a restart then refuses, in one line, a file that is gone or no longer its card's."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx

from tests.paths import REPO_ROOT, committed_model
from tests.reliability.processes import launched
from tests.service.models import copy_model
from tests.service.servers import service_env


def predict_works(http: httpx.Client, digit_png: bytes) -> bool:
    response = http.post("/predict", files={"file": ("d.png", digit_png)})
    return response.status_code == 200 and len(response.json()["probabilities"]) == 10


def restart_refusal(model: Path, card: Path) -> tuple[int, str]:
    """(exit code, stderr) of a fresh `python -m service` on these files (it stops before serving)."""
    command = [sys.executable, "-m", "service", "--host", "127.0.0.1", "--port", "0"]
    result = subprocess.run(
        command, env=service_env(model, card), cwd=REPO_ROOT, capture_output=True, text=True, timeout=60
    )
    return result.returncode, result.stderr


def test_model_file_deleted_then_overwritten_while_serving(
    random_model: tuple[Path, Path], tmp_path: Path, digit_png: bytes
) -> None:
    model, card = copy_model(random_model, tmp_path)
    with launched(service_env(model, card), tmp_path) as service, httpx.Client(base_url=service.url) as http:
        sha256 = http.get("/health/ready").json()["model"]["sha256"]
        assert predict_works(http, digit_png)

        model.unlink()
        assert predict_works(http, digit_png)
        assert http.get("/health/ready").status_code == 200

        code, stderr = restart_refusal(model, card)
        assert code == 1 and stderr.strip().splitlines() == [
            f"mnist-service: refusing to start: model file {model} not found: train and export it, "
            "or set MNIST_MODEL_PATH"
        ]

        model.write_bytes(b"not an onnx model" * 1000)
        assert predict_works(http, digit_png)
        ready = http.get("/health/ready")
        assert ready.status_code == 200 and ready.json()["model"]["sha256"] == sha256  # still the verified model
        assert http.get("/v2/health/ready").status_code == 200

        code, stderr = restart_refusal(model, card)
        assert code == 1 and len(stderr.strip().splitlines()) == 1
        assert "refusing to start" in stderr and "sha256" in stderr and "corrupt" in stderr


def test_model_and_card_replaced_while_serving_take_effect_on_restart(
    random_model: tuple[Path, Path], tmp_path: Path, digit_png: bytes
) -> None:
    committed = committed_model()
    model, card = copy_model(random_model, tmp_path)
    with launched(service_env(model, card), tmp_path) as service, httpx.Client(base_url=service.url) as http:
        before = http.get("/health/ready").json()["model"]["sha256"]
        # A deploy: another valid model and its card, each swapped in with an atomic rename.
        for source, target in zip(committed, (model, card), strict=True):
            staged = target.with_suffix(".new")
            staged.write_bytes(source.read_bytes())
            staged.replace(target)
        assert predict_works(http, digit_png)
        assert http.get("/health/ready").json()["model"]["sha256"] == before  # the running server keeps its own
    with launched(service_env(model, card), tmp_path) as restarted, httpx.Client(base_url=restarted.url) as http:
        assert http.get("/health/ready").json()["model"]["sha256"] != before
        assert predict_works(http, digit_png)
