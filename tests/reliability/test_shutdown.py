"""SIGTERM on a real `python -m service`: requests in flight finish, new connections are refused, the process
exits cleanly (uvicorn re-raises SIGTERM once drained: -15 here, 143 in a shell), and a stalled client cannot
hold the exit off past MNIST_SHUTDOWN_TIMEOUT.

Nothing here waits on the clock: the clients hold their requests open behind a gate, and the tests wait for
what the server shows (its sockets in /proc/net/tcp, its log, its exit).
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from service.config import Settings
from tests.reliability.processes import LiveService, launched
from tests.reliability.raw_http import connect, read_response
from tests.service.images import draw_seven, encode
from tests.service.servers import service_env

CLEAN_EXITS = (0, -signal.SIGTERM)
ESTABLISHED = "01"  # the TCP state in /proc/net/tcp
DEFAULT_SHUTDOWN_TIMEOUT = Settings.model_fields["shutdown_timeout"].default  # 8 s
# uvicorn logs this once it has stopped listening and starts draining the connections still open.
DRAINING = "Waiting for connections to close"


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 30) -> None:
    """Poll condition until it holds; the timeout only turns a hang into a failure."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"still waiting for {what} after {timeout} s"
        time.sleep(0.01)


def established(port: int) -> tuple[list[int], list[int]]:
    """(bytes the server has not read yet, per server-side socket; bytes not yet acknowledged, per client-side
    socket) of the TCP connections to port on 127.0.0.1 (from /proc/net/tcp)."""
    server_side, client_side = [], []
    with open("/proc/net/tcp") as table:
        next(table)  # the column names
        for line in table:
            _, local, remote, state, queues, *_ = line.split()
            if state != ESTABLISHED:
                continue
            tx_queue, rx_queue = (int(queue, 16) for queue in queues.split(":"))
            if int(local.split(":")[1], 16) == port:
                server_side.append(rx_queue)
            elif int(remote.split(":")[1], 16) == port:
                client_side.append(tx_queue)
    return server_side, client_side


def server_has_read_everything(service: LiveService, connections: int) -> bool:
    """True once `connections` clients are connected and the server has read every byte they sent.

    Read bytes have been parsed: uvicorn then holds a request in flight, which SIGTERM drains, not drops.
    """
    server_side, client_side = established(service.port)
    return len(server_side) == len(client_side) == connections and not any(server_side) and not any(client_side)


def refuses_connections(service: LiveService) -> bool:
    try:
        connect(service, timeout=2).close()
    except OSError:
        return True
    return False


def gated_body(body: bytes, sent: threading.Event, gate: threading.Event) -> Iterator[bytes]:
    """The body in two pieces: sent is set once the first is on the wire, the second waits for the gate."""
    yield body[:1000]
    sent.set()  # NOTE: httpx asks for the next piece only after writing this one
    assert gate.wait(timeout=60), "the test never opened the gate"
    yield body[1000:]


def test_sigterm_lets_requests_in_flight_finish(random_repository: Path, tmp_path: Path) -> None:
    count = 8
    files = [("files", (f"{i}.png", encode(draw_seven()), "image/png")) for i in range(8)]
    # A long grace: the requests are held open by the test's gate, not by work, and finish once it opens.
    with launched(service_env(random_repository, MNIST_SHUTDOWN_TIMEOUT="60"), tmp_path) as service:
        form = httpx.Request("POST", f"{service.url}/predict/batch", files=files)
        body = form.read()
        headers = {"Content-Type": form.headers["Content-Type"], "Content-Length": str(len(body))}
        gate = threading.Event()
        sent = [threading.Event() for _ in range(count)]

        def post(index: int) -> int:
            content = gated_body(body, sent[index], gate)
            return httpx.post(form.url, content=content, headers=headers, timeout=60).status_code

        with ThreadPoolExecutor(count) as pool:
            statuses = [pool.submit(post, index) for index in range(count)]
            try:
                assert all(event.wait(timeout=30) for event in sent)
                wait_until(lambda: server_has_read_everything(service, count), "the server to read every head")
                service.child.send_signal(signal.SIGTERM)
                wait_until(lambda: DRAINING in service.log(), "the server to start draining")
                assert refuses_connections(service)  # it stopped listening ...
                assert not any(status.done() for status in statuses)  # ... with every request still in flight
            finally:
                gate.set()
            assert [status.result() for status in statuses] == [200] * count
        exit_code = service.child.wait(timeout=60)
        log = service.log()
    assert exit_code in CLEAN_EXITS
    assert "Traceback" not in log and "Finished server process" in log


def test_sigterm_cuts_a_stalled_client_off_after_the_shutdown_timeout(random_repository: Path, tmp_path: Path) -> None:
    env = service_env(random_repository, MNIST_SHUTDOWN_TIMEOUT="1")
    with launched(env, tmp_path) as service:
        with connect(service) as stalled:
            # Headers promise 100 kB of image; 40 bytes come, then nothing.
            head = b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: 100000\r\n\r\n"
            stalled.sendall(head + b"\x89PNG" * 10)
            wait_until(lambda: server_has_read_everything(service, 1), "the server to read the stalled head")
            start = time.monotonic()
            service.child.send_signal(signal.SIGTERM)
            exit_code = service.child.wait(timeout=60)
            elapsed = time.monotonic() - start
        log = service.log()
    assert exit_code in CLEAN_EXITS
    assert "timeout graceful shutdown exceeded" in log  # uvicorn cancelled the stalled request ...
    # ... after its 1 s of grace (a lower bound no machine can trip), and not after the default 8 s: the
    # exit itself takes a fraction of a second, so 7 s of slack is ample on a busy machine.
    assert 1 <= elapsed < DEFAULT_SHUTDOWN_TIMEOUT


def test_sigterm_with_idle_keep_alive_connections_exits_promptly(random_repository: Path, tmp_path: Path) -> None:
    # A long grace: were idle connections waited for like requests in flight, the exit would take 60 s.
    with launched(service_env(random_repository, MNIST_SHUTDOWN_TIMEOUT="60"), tmp_path) as service:
        idle = [connect(service) for _ in range(4)]
        try:
            for sock in idle:
                sock.sendall(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
                assert read_response(sock)[0].startswith(b"HTTP/1.1 200")  # answered; the connection stays open, idle
            service.child.send_signal(signal.SIGTERM)
            hung_up = [sock.recv(1) == b"" for sock in idle]  # the server closes each at once
            exit_code = service.child.wait(timeout=30)
        finally:
            for sock in idle:
                sock.close()
        log = service.log()
    assert hung_up == [True] * 4
    assert exit_code in CLEAN_EXITS
    assert "timeout graceful shutdown exceeded" not in log
