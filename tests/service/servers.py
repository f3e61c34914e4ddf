"""Start `python -m service` as a child process on a free loopback port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

REPO_ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def service_env(model_path: Path, card_path: Path | None = None, **extra: str) -> dict[str, str]:
    """The environment of a `python -m service` child: our model via MNIST_* variables, no stray ones."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("MNIST_")}
    env["MNIST_MODEL_PATH"] = str(model_path)
    if card_path is not None:
        env["MNIST_CARD_PATH"] = str(card_path)
    env["PYTHONPATH"] = str(REPO_ROOT)
    return env | extra


def start_service(env: dict[str, str], port: int, **popen: Any) -> subprocess.Popen:
    """`python -m service` on 127.0.0.1:port, started from the repository root."""
    command = [sys.executable, "-m", "service", "--host", "127.0.0.1", "--port", str(port)]
    return subprocess.Popen(command, env=env, cwd=REPO_ROOT, **popen)


def wait_ready(process: subprocess.Popen, base_url: str, timeout: float = 60) -> None:
    """Poll /health/ready until 200; RuntimeError if the process exits or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            if httpx.get(f"{base_url}/health/ready", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"server not ready after {timeout} s")


def stop(process: subprocess.Popen) -> None:
    """Terminate the child, and kill it if it lingers."""
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@dataclass
class Running:
    """A started, ready server: its base URL, its process and the file its output goes to."""

    url: str
    process: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextmanager
def running_service(env: dict[str, str], directory: Path) -> Iterator[Running]:
    """`python -m service` with env on a free loopback port, ready to serve; stopped at the end if still up.

    RuntimeError with the server's output if it exits or never gets ready.
    """
    port = free_port()
    log_path = directory / f"server-{port}.log"
    with open(log_path, "w") as log:  # NOTE: a file, not a pipe nobody reads, which would fill and block
        process = start_service(env, port, stdout=log, stderr=subprocess.STDOUT)
    running = Running(f"http://127.0.0.1:{port}", process, log_path)
    try:
        wait_ready(process, running.url)
    except RuntimeError as err:
        stop(process)
        raise RuntimeError(f"{err}:\n{running.log()}") from None
    try:
        yield running
    finally:
        if process.poll() is None:
            stop(process)
