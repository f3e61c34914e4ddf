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
from tests.service.models import copy_model, flip_byte, off_contract_model, write_card_for
from tests.service.servers import free_port, service_env, start_service


def _cases(random_model: tuple[Path, Path], directory: Path) -> dict[str, dict[str, str]]:
    """Environment of each refusal case, by name."""
    flipped = directory / "flipped"
    flipped.mkdir()
    model, card = copy_model(random_model, flipped)
    flip_byte(model)

    foreign_card = directory / "foreign.json"
    card_data = json.loads(random_model[1].read_text())
    foreign_card.write_text(json.dumps({**card_data, "sha256": "0" * 64}))

    off_contract = off_contract_model(directory / "other.onnx")
    write_card_for(off_contract, directory / "other.json", random_model[1])
    return {
        "flipped_byte": service_env(model, card),
        "missing_file": service_env(directory / "absent.onnx"),
        "card_mismatched": service_env(random_model[0], foreign_card),
        "off_contract": service_env(off_contract),
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
    assert_one_line_refusal(refusals["missing_file"], "absent.onnx", "not found", "MNIST_MODEL_PATH")


def test_start_refuses_card_of_another_model(refusals: dict) -> None:
    assert_one_line_refusal(refusals["card_mismatched"], "sha256", "foreign.json")


def test_start_refuses_model_off_contract(refusals: dict) -> None:
    assert_one_line_refusal(refusals["off_contract"], "contract", "conv1")


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
    with Server("uvicorn-factory", command, port, service_env(*random_model)).running(tmp_path) as server:
        assert httpx.get(f"{server.url}/model", timeout=30).json()["name"] == "mnist_cnn"


def test_start_refuses_a_port_in_use_before_loading_the_model(random_model: tuple[Path, Path]) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:  # listening: what a first server does
        port = taken.getsockname()[1]
        command = [sys.executable, "-m", "service", "--host", "127.0.0.1", "--port", str(port)]
        # A model path that does not exist: the refusal must come from the port, before any model loads.
        env = service_env(random_model[0].parent / "absent.onnx")
        result = subprocess.run(command, env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert_one_line_refusal(
        (result.returncode, result.stderr), f"port {port} on 127.0.0.1 is already in use", f"--port {port + 1}"
    )
