"""SIGTERM on a real `python -m service`: requests in flight finish, new connections are refused, the process
exits cleanly (uvicorn re-raises SIGTERM once drained: -15 here, 143 in a shell), and a stalled client cannot
hold the exit off past MNIST_SHUTDOWN_TIMEOUT."""

from __future__ import annotations

import signal
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from tests.reliability.processes import LiveService, launched
from tests.service.images import draw_seven, encode
from tests.service.servers import service_env

CLEAN_EXITS = (0, -signal.SIGTERM)


def refuses_connections(service: LiveService) -> bool:
    address = urlsplit(service.url)
    try:
        socket.create_connection((address.hostname, address.port), timeout=2).close()
    except OSError:
        return True
    return False


def test_sigterm_lets_requests_in_flight_finish(random_model: tuple[Path, Path], tmp_path: Path) -> None:
    image = encode(draw_seven(600))
    files = [("files", (f"{i}.png", image, "image/png")) for i in range(64)]  # ~0.3 s of work per batch
    with launched(service_env(*random_model), tmp_path) as service:
        finished: list[float] = []

        def post(_: int) -> int:
            status = httpx.post(f"{service.url}/predict/batch", files=files, timeout=60).status_code
            finished.append(time.monotonic())
            return status

        with ThreadPoolExecutor(8) as pool:
            statuses = pool.map(post, range(8))
            time.sleep(0.5)  # every request sent and being worked on
            service.process.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            # While it drains, the listening socket is closed: a new client is refused at once.
            while service.process.poll() is None and not refuses_connections(service):
                time.sleep(0.02)
            assert service.process.poll() is not None or refuses_connections(service)
            assert list(statuses) == [200] * 8
        exit_code = service.process.wait(timeout=30)
        log = service.log()
    assert max(finished) > signalled, "every request had finished before SIGTERM: the test proved nothing"
    assert exit_code in CLEAN_EXITS
    assert "Traceback" not in log and "Finished server process" in log


def test_sigterm_cuts_a_stalled_client_off_after_the_shutdown_timeout(
    random_model: tuple[Path, Path], tmp_path: Path
) -> None:
    env = service_env(*random_model, MNIST_SHUTDOWN_TIMEOUT="1")
    with launched(env, tmp_path) as service:
        address = urlsplit(service.url)
        stalled = socket.create_connection((address.hostname, address.port))
        # Headers promise 100 kB of image; 40 bytes come, then nothing.
        head = b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: 100000\r\n\r\n"
        stalled.sendall(head + b"\x89PNG" * 10)
        time.sleep(0.3)
        start = time.monotonic()
        service.process.send_signal(signal.SIGTERM)
        exit_code = service.process.wait(timeout=20)
        elapsed = time.monotonic() - start
        stalled.close()
    assert exit_code in CLEAN_EXITS
    assert elapsed < 8  # 1 s of grace, then the stalled request is cancelled


def test_sigterm_with_idle_keep_alive_connections_exits_promptly(
    random_model: tuple[Path, Path], tmp_path: Path
) -> None:
    with launched(service_env(*random_model), tmp_path) as service:
        clients = [httpx.Client(base_url=service.url) for _ in range(4)]
        for client in clients:
            assert client.get("/health/live").status_code == 200  # the connection stays open, idle
        start = time.monotonic()
        service.process.send_signal(signal.SIGTERM)
        exit_code = service.process.wait(timeout=20)
        elapsed = time.monotonic() - start
        for client in clients:
            client.close()
    assert exit_code in CLEAN_EXITS
    assert elapsed < 5
