"""Keep-alive: an idle connection outlives uvicorn's 5 s default, so clients that keep theirs as long never race it."""

from __future__ import annotations

import socket
import time
from urllib.parse import urlsplit

from tests.reliability.processes import LiveService

REQUEST = b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n"


def _answer(sock: socket.socket) -> bytes:
    sock.sendall(REQUEST)
    data = b""
    while b"\r\n\r\n" not in data or not data.endswith(b"}"):
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def test_idle_keep_alive_connection_is_reusable_after_six_seconds(live_service: LiveService) -> None:
    address = urlsplit(live_service.url)
    with socket.create_connection((address.hostname, address.port), timeout=10) as sock:
        assert _answer(sock).startswith(b"HTTP/1.1 200")
        time.sleep(6)  # past uvicorn's 5 s default keep-alive
        assert _answer(sock).startswith(b"HTTP/1.1 200")
