"""X-Request-ID on every answer (the client's when usable, else a new UUID) and in the server's log lines, as
text or as one JSON object per line (MNIST_LOG_FORMAT=json)."""

from __future__ import annotations

import json
import logging
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bench.servers import Server
from service.config import Settings
from service.logs import JsonFormatter, RequestIdFilter
from tests.service.clients import exploding_client
from tests.service.servers import service_env

pytestmark = pytest.mark.anyio


def is_uuid(value: str) -> bool:
    try:
        return str(uuid.UUID(value)) == value
    except ValueError:
        return False


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/predict"), ("POST", "/v2/models/mnist_cnn/infer"), ("GET", "/models"), ("GET", "/nowhere")],
)
async def test_every_answer_carries_a_new_request_id(client: httpx.AsyncClient, method: str, path: str) -> None:
    # the lean routes, a FastAPI route and the 404 handler alike; the two POSTs are bad requests (400s)
    first = await client.request(method, path)
    second = await client.request(method, path)
    assert is_uuid(first.headers["x-request-id"]) and is_uuid(second.headers["x-request-id"])
    assert first.headers["x-request-id"] != second.headers["x-request-id"]


async def test_a_clients_request_id_comes_back(client: httpx.AsyncClient, digit_png: bytes) -> None:
    sent = "checkout-7f3a/retry:2"
    response = await client.post("/predict", files={"file": ("d.png", digit_png)}, headers={"X-Request-ID": sent})
    assert response.status_code == 200
    assert response.headers.get_list("x-request-id") == [sent]


@pytest.mark.parametrize("sent", ["", "has space", "x" * 129, "caf\u00e9"])
async def test_an_unusable_request_id_is_replaced(client: httpx.AsyncClient, sent: str) -> None:
    response = await client.get("/health/live", headers={"X-Request-ID": sent.encode()})
    assert is_uuid(response.headers["x-request-id"])


async def test_the_500_answer_carries_the_request_id_too(settings: Settings) -> None:
    async with exploding_client(settings) as client:
        response = await client.get("/explode", headers={"X-Request-ID": "boom-1"})
    assert response.status_code == 500
    assert response.headers["x-request-id"] == "boom-1"


def test_json_lines_carry_the_traceback_of_an_exception() -> None:
    try:
        raise ValueError("bad")
    except ValueError:
        record = logging.LogRecord("service.x", logging.ERROR, __file__, 1, "failed %s", ("here",), sys.exc_info())
    RequestIdFilter().filter(record)
    line = json.loads(JsonFormatter().format(record))
    assert line["level"] == "error" and line["message"] == "failed here" and "request_id" not in line
    assert "ValueError: bad" in line["exception"]


# ---- a real server's log lines ----------------------------------------------------------------------------


@pytest.fixture(scope="module", params=["json", "text"])
def logging_service(
    request: pytest.FixtureRequest, random_repository: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Server]]:
    """`python -m service` at log level info (access lines on) with MNIST_LOG_FORMAT=json or text."""
    env = service_env(random_repository, MNIST_LOG_FORMAT=request.param)
    with Server.for_service(env, None, "--log-level", "info").running(tmp_path_factory.mktemp("logs")) as server:
        yield request.param, server


def access_line(server: Server, request_id: str) -> str:
    """The server's access line for a request already answered.

    NOTE: no waiting needed: uvicorn logs the line (and logging flushes it) before it writes the answer's headers.
    """
    lines = [line for line in server.log().splitlines() if request_id in line]
    assert len(lines) == 1, f"{len(lines)} log lines with {request_id}:\n{server.log()}"
    return lines[0]


def test_the_servers_access_line_carries_the_request_id(logging_service: tuple[str, Server], digit_png: bytes) -> None:
    line_format, server = logging_service
    with httpx.Client(base_url=server.url) as http:
        response = http.post("/predict", files={"file": ("d.png", digit_png)}, headers={"X-Request-ID": "trace-42"})
        made_up = http.get("/health/live").headers["x-request-id"]
    assert response.status_code == 200
    line = access_line(server, "trace-42")
    if line_format == "text":
        assert line.endswith('"POST /predict HTTP/1.1" 200 OK [request trace-42]'), line
        assert access_line(server, made_up).endswith(f"[request {made_up}]")
        return
    record = json.loads(line)
    assert record["logger"] == "uvicorn.access" and record["request_id"] == "trace-42"
    assert (record["method"], record["path"], record["status"]) == ("POST", "/predict", 200)
    assert json.loads(access_line(server, made_up))["path"] == "/health/live"
    for every in server.log().splitlines():  # start-up lines too: one JSON object per line, nothing else
        assert isinstance(json.loads(every), dict), every
