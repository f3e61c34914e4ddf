"""Request IDs and log lines: every answer carries an X-Request-ID, and every log line written while a request
is being served carries it too; MNIST_LOG_FORMAT=json makes each line one JSON object for log shippers."""

from __future__ import annotations

import json
import logging
import random
import time
import uuid
from contextvars import ContextVar
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEADER = b"x-request-id"
MAX_ID_LENGTH = 128

# NOTE: not uuid.uuid4(): its os.urandom releases the GIL for a syscall, and getting it back can wait out the
# switch interval (5 ms) behind the inference thread (seen in py-spy under /explain's load). IDs need to be
# unique, not secret: a generator seeded from os.urandom once per process (each uvicorn worker is its own).
_ids = random.Random()

# NOTE: set in the request's own task; uvicorn writes its access line from inside our send(), so in that task
request_id: ContextVar[str | None] = ContextVar("request_id", default=None)


def accepted(value: bytes) -> str | None:
    """A client's X-Request-ID, when it is one we can repeat safely: 1-128 visible ASCII characters."""
    if 0 < len(value) <= MAX_ID_LENGTH and all(0x21 <= byte <= 0x7E for byte in value):
        return value.decode("ascii")
    return None


def new_id() -> str:
    """A random (version 4) UUID, without a syscall."""
    return str(uuid.UUID(int=_ids.getrandbits(128), version=4))


class RequestIds:
    """Pure ASGI, outside everything (the 500 handler included): the client's X-Request-ID, if it sent a usable
    one, else a new UUID, goes into the log context and onto the answer's headers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((value for name, value in scope["headers"] if name == HEADER), None)
        rid = (accepted(given) if given is not None else None) or new_id()
        raw = rid.encode("ascii")

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), (HEADER, raw)]}
            await send(message)

        token = request_id.set(rid)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id.reset(token)


class RequestIdFilter(logging.Filter):
    """Puts the current request's ID (or None outside a request) on every record, as `request_id`."""

    def filter(self, record: logging.LogRecord) -> bool:
        rid = request_id.get()
        record.request_id = rid  # NOTE: what logging's extra= would set
        record.request_suffix = f" [request {rid}]" if rid else ""
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, request_id when there is one,
    the access fields for uvicorn's access lines, the traceback for exceptions."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        rid = getattr(record, "request_id", None)
        if rid:
            line["request_id"] = rid
        if record.name == "uvicorn.access" and isinstance(record.args, tuple) and len(record.args) == 5:
            client, method, path, http_version, status = record.args
            line.update(client=client, method=method, path=path, http_version=http_version, status=status)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)
