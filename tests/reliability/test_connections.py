"""Keep-alive: MNIST_KEEP_ALIVE_TIMEOUT reaches uvicorn, which closes an idle connection after that many seconds
rather than after its own default (our default, 75 s, belongs to the settings: tests/service/test_config.py)."""

from __future__ import annotations

import inspect
import socket
import time
from pathlib import Path

import uvicorn

from tests.reliability.processes import launched
from tests.reliability.raw_http import connect, read_response
from tests.service.servers import service_env

REQUEST = b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n"
UVICORN_KEEP_ALIVE = inspect.signature(uvicorn.Config).parameters["timeout_keep_alive"].default  # 5 s


def answer(sock: socket.socket) -> bytes:
    """Send REQUEST on the connection; the status line and headers of the response (its body read and dropped)."""
    sock.sendall(REQUEST)
    return read_response(sock)[0]


def test_idle_connection_is_closed_after_mnist_keep_alive_timeout(random_repository: Path, tmp_path: Path) -> None:
    env = service_env(random_repository, MNIST_KEEP_ALIVE_TIMEOUT="1")
    with launched(env, tmp_path) as service, connect(service) as sock:
        assert answer(sock).startswith(b"HTTP/1.1 200")
        assert answer(sock).startswith(b"HTTP/1.1 200")  # kept alive: the same connection serves again
        idle_since = time.monotonic()
        assert sock.recv(1) == b"", "the server answered an idle connection"  # it hangs up, unprompted
        idle = time.monotonic() - idle_since
    # 1 s, not uvicorn's 5 s: the setting was passed on. The close comes from a timer on an otherwise idle
    # server, so 4 s of slack is far more than a busy machine adds.
    assert idle < UVICORN_KEEP_ALIVE
