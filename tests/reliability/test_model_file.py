"""The model file changing on disk under a running server: it keeps serving the model it verified and loaded
into memory at start-up; a restart then refuses, in one line, a file that is gone or no longer its card's."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx

from tests.paths import COMMITTED_MODELS, REPO_ROOT, committed_repository
from tests.reliability.processes import launched
from tests.service.models import copy_repository
from tests.service.servers import service_env


def predict_works(http: httpx.Client, digit_png: bytes) -> bool:
    response = http.post("/predict", files={"file": ("d.png", digit_png)})
    return response.status_code == 200 and len(response.json()["probabilities"]) == 10


def served_sha256(http: httpx.Client) -> str:
    ready = http.get("/health/ready")
    assert ready.status_code == 200
    return ready.json()["models"][0]["sha256"]


def restart_refusal(repository: Path) -> tuple[int, str]:
    """(exit code, stderr) of a fresh `python -m service` on this repository (it stops before serving)."""
    command = [sys.executable, "-m", "service", "--host", "127.0.0.1", "--port", "0"]
    result = subprocess.run(
        command, env=service_env(repository), cwd=REPO_ROOT, capture_output=True, text=True, timeout=60
    )
    return result.returncode, result.stderr


def test_model_file_deleted_then_overwritten_while_serving(
    random_model: tuple[Path, Path], tmp_path: Path, digit_png: bytes
) -> None:
    repository = tmp_path / "repository"
    model = copy_repository(random_model, repository) / "model.onnx"
    with launched(service_env(repository), tmp_path) as service, httpx.Client(base_url=service.url) as http:
        sha256 = served_sha256(http)
        assert predict_works(http, digit_png)

        model.unlink()
        assert predict_works(http, digit_png)
        assert served_sha256(http) == sha256

        code, stderr = restart_refusal(repository)
        assert code == 1 and stderr.strip().splitlines() == [
            f"mnist-service: refusing to start: model file {model} not found: train and export it "
            "(python -m training export), or set MNIST_MODEL_REPOSITORY"
        ]

        model.write_bytes(b"not an onnx model" * 1000)
        assert predict_works(http, digit_png)
        assert served_sha256(http) == sha256  # still the verified model
        assert http.get("/v2/health/ready").status_code == 200

        code, stderr = restart_refusal(repository)
        assert code == 1 and len(stderr.strip().splitlines()) == 1
        assert "refusing to start" in stderr and "sha256" in stderr and "corrupt" in stderr


def test_model_and_card_replaced_while_serving_take_effect_on_restart(
    random_model: tuple[Path, Path], tmp_path: Path, digit_png: bytes
) -> None:
    committed_repository()  # skips unless the trained models are in the checkout
    committed = COMMITTED_MODELS["mnist_cnn"]
    repository = tmp_path / "repository"
    folder = copy_repository(random_model, repository)
    with launched(service_env(repository), tmp_path) as service, httpx.Client(base_url=service.url) as http:
        before = served_sha256(http)
        # A deploy: another valid model and its card, each swapped in with an atomic rename.
        for name in ("model.onnx", "card.json"):
            staged = folder / f"{name}.new"
            staged.write_bytes((committed / name).read_bytes())
            staged.replace(folder / name)
        assert predict_works(http, digit_png)
        assert served_sha256(http) == before  # the running server keeps its own
    with launched(service_env(repository), tmp_path) as restarted, httpx.Client(base_url=restarted.url) as http:
        assert served_sha256(http) != before
        assert predict_works(http, digit_png)
