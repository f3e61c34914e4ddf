"""`python -m service` (and uvicorn --factory): refuse a bad model with one line on stderr and a non-zero exit."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench.servers import Server
from tests.paths import REPO_ROOT
from tests.service.models import copy_repository, flip_byte, off_contract_model, write_card_for
from tests.service.servers import free_port, service_env, start_service


def _cases(random_model: tuple[Path, Path], directory: Path) -> dict[str, dict[str, str]]:
    """Environment of each refusal case, by name: a repository with one broken model version each."""
    flipped = copy_repository(random_model, directory / "flipped")
    flip_byte(flipped / "model.onnx")

    missing = copy_repository(random_model, directory / "missing")
    (missing / "model.onnx").unlink()

    foreign = copy_repository(random_model, directory / "foreign")
    card = json.loads((foreign / "card.json").read_text())
    (foreign / "card.json").write_text(json.dumps({**card, "sha256": "0" * 64}))

    other = copy_repository(random_model, directory / "other")
    off_contract_model(other / "model.onnx")
    write_card_for(other / "model.onnx", other / "card.json", other / "card.json")

    def env(folder: Path) -> dict[str, str]:
        return service_env(folder.parents[1])

    return {
        "flipped_byte": env(flipped),
        "missing_file": env(missing),
        "card_mismatched": env(foreign),
        "off_contract": env(other),
        "missing_repository": service_env(directory / "absent"),
        "missing_default_model": service_env(flipped.parents[1], MNIST_DEFAULT_MODEL="mnist_modern"),
    }


@pytest.fixture(scope="module")
def refusals(random_model: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Every refusal case started at once (each start costs ~1 s of imports): name -> (exit code, stderr)."""
    cases = _cases(random_model, tmp_path_factory.mktemp("refusals"))
    pipes: dict[str, Any] = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
    processes = {name: start_service(env, free_port(), **pipes) for name, env in cases.items()}
    # The same flipped model, served by uvicorn itself: the lifespan refuses it.
    uvicorn = [sys.executable, "-m", "uvicorn", "service.main:create_app", "--factory", "--port", str(free_port())]
    processes["uvicorn_flipped_byte"] = subprocess.Popen(uvicorn, env=cases["flipped_byte"], cwd=REPO_ROOT, **pipes)
    results = {}
    for name, process in processes.items():
        try:
            _, stderr = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            _, stderr = process.communicate()
        results[name] = (process.returncode, stderr)
    return results


def assert_one_line_refusal(result: tuple[int, str], *words: str) -> None:
    code, stderr = result
    assert code != 0
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("mnist-service: refusing to start: ")
    for word in words:
        assert word in lines[0]


def test_start_refuses_model_with_flipped_byte(refusals: dict) -> None:
    assert_one_line_refusal(refusals["flipped_byte"], "sha256", "corrupt")


def test_start_refuses_missing_model_file(refusals: dict) -> None:
    assert_one_line_refusal(refusals["missing_file"], "missing/mnist_cnn/1/model.onnx", "not found", "training export")


def test_start_refuses_card_of_another_model(refusals: dict) -> None:
    assert_one_line_refusal(refusals["card_mismatched"], "sha256", "foreign/mnist_cnn/1/card.json")


def test_start_refuses_model_off_its_card(refusals: dict) -> None:
    assert_one_line_refusal(refusals["off_contract"], "does not match its card", "output 'conv1' is missing")


def test_start_refuses_missing_repository(refusals: dict) -> None:
    assert_one_line_refusal(refusals["missing_repository"], "model repository", "absent", "MNIST_MODEL_REPOSITORY")


def test_start_refuses_default_model_not_in_repository(refusals: dict) -> None:
    assert_one_line_refusal(
        refusals["missing_default_model"], "the default model 'mnist_modern'", "it has mnist_cnn", "MNIST_DEFAULT_MODEL"
    )


def test_uvicorn_factory_refuses_model_with_flipped_byte_without_traceback(refusals: dict) -> None:
    code, stderr = refusals["uvicorn_flipped_byte"]
    assert code != 0
    assert "Traceback" not in stderr
    refusal = [line for line in stderr.splitlines() if "refusing to start" in line]
    assert len(refusal) == 1 and "sha256" in refusal[0]


def test_start_help_shows_flags_with_defaults() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "service", "--help"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0
    for flag in ("--host", "--port", "--workers", "--log-level", "(default: 0.0.0.0)", "(default: 8000)"):
        assert flag in result.stdout


def test_uvicorn_factory_serves_the_app(random_model: tuple[Path, Path], tmp_path: Path) -> None:
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "service.main:create_app", "--factory", "--port", str(port)]
    # Server.running waits for /health/ready to answer 200, else fails with the server's output.
    copy_repository(random_model, tmp_path / "repository")
    env = service_env(tmp_path / "repository")
    with Server("uvicorn-factory", command, port, env).running(tmp_path) as server:
        assert httpx.get(f"{server.url}/model", timeout=30).json()["name"] == "mnist_cnn"


def test_start_refuses_a_port_in_use_before_loading_the_model(random_model: tuple[Path, Path]) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:  # listening: what a first server does
        port = taken.getsockname()[1]
        command = [sys.executable, "-m", "service", "--host", "127.0.0.1", "--port", str(port)]
        # A repository that does not exist: the refusal must come from the port, before any model loads.
        env = service_env(random_model[0].parent / "absent")
        result = subprocess.run(command, env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert_one_line_refusal(
        (result.returncode, result.stderr), f"port {port} on 127.0.0.1 is already in use", f"--port {port + 1}"
    )
