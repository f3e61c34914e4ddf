"""Optional API keys: a pure ASGI middleware that lets a request in only with a configured key, except on
the open paths (health, the page, model metadata, the docs and, unless configured otherwise, /metrics).

Deny by default: a route added later needs a key until it is listed in OPEN_PATHS.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from fastapi import FastAPI
from pydantic import SecretStr
from starlette.types import ASGIApp, Receive, Scope, Send

from service.config import Settings
from service.errors import Unauthorized
from service.handlers import error_response
from service.routing import route_path

# Paths anyone may reach (matched whole, against the path the router sees). Route templates such as
# /v2/models/{model_name} match too, so the OpenAPI document can be marked with the same rule.
OPEN_PATHS = re.compile(
    r"""
      /health/(live|ready)
    | /v2/health/(live|ready)
    | /v2 | /v2/models/[^/]+(/versions/[^/]+)?(/ready)?
    | /model | /models(/[^/]+(/versions/[^/]+)?)?
    | / | /static/[^/]+ | /favicon\.ico
    | /docs | /docs/oauth2-redirect | /docs/assets/[^/]+ | /redoc | /redoc/logo-mini\.svg | /openapi\.json
    """,
    re.VERBOSE,
)
METRICS_PATH = "/metrics"
# More candidate keys than this in one request (repeated headers) are not tried: bounded work per request.
MAX_CANDIDATES = 4

MISSING = "this endpoint needs an API key: send it as 'Authorization: Bearer <key>' or 'X-API-Key: <key>'"
INVALID = "the API key is not valid: check it (no quotes or spaces around it), or ask for a new one"
CHALLENGE = 'Bearer realm="mnist"'


def _digest(key: bytes) -> bytes:
    # Comparing fixed-length digests hides the keys' lengths as well as their contents.
    return hashlib.sha256(key).digest()


def presented_keys(headers: Iterable[tuple[bytes, bytes]]) -> list[bytes]:
    """The keys a request offers: Bearer tokens of Authorization headers and X-API-Key values."""
    keys = []
    for name, value in headers:
        if name == b"authorization":
            scheme, _, token = value.strip().partition(b" ")
            if scheme.lower() == b"bearer" and token.strip():
                keys.append(token.strip())
        elif name == b"x-api-key" and value.strip():
            keys.append(value.strip())
    return keys[:MAX_CANDIDATES]


class ApiKeys:
    """The configured keys, held only as SHA-256 digests; `accepts` compares in constant time."""

    def __init__(self, keys: Sequence[SecretStr]) -> None:
        self._digests = [_digest(key.get_secret_value().encode()) for key in keys]

    def __repr__(self) -> str:
        return f"ApiKeys({len(self._digests)} keys)"

    def accepts(self, candidates: Sequence[bytes]) -> bool:
        """True if any candidate is a configured key; every candidate meets every key (no early exit)."""
        valid = False
        for candidate in candidates:
            digest = _digest(candidate)
            for known in self._digests:
                valid |= hmac.compare_digest(digest, known)
        return valid


class ApiKeyMiddleware:
    """Pure ASGI: answers 401 (JSON error, WWW-Authenticate: Bearer) before the app sees a request without
    a valid key on a path that needs one; the body of a refused request is never read."""

    def __init__(self, app: ASGIApp, keys: ApiKeys, is_open: Callable[[str], bool]) -> None:
        self.app = app
        self.keys = keys
        self.is_open = is_open

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or self.is_open(route_path(scope)):
            await self.app(scope, receive, send)
            return
        candidates = presented_keys(scope["headers"])
        if self.keys.accepts(candidates):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        # RFC 6750: a wrong key gets error="invalid_token"; the message never repeats what was sent.
        challenge = CHALLENGE + (', error="invalid_token"' if candidates else "")
        message = INVALID if candidates else MISSING
        response = error_response(Unauthorized.status_code, message, headers={"WWW-Authenticate": challenge})
        await response(scope, receive, send)


def open_path_rule(settings: Settings) -> Callable[[str], bool]:
    """Which paths need no key under these settings."""
    metrics_open = not settings.metrics_require_key
    return lambda path: OPEN_PATHS.fullmatch(path) is not None or (metrics_open and path == METRICS_PATH)


SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer", "description": "Authorization: Bearer <key>"},
    "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
}
UNAUTHORIZED_RESPONSE = {
    "description": "No API key, or not a valid one",
    "headers": {"WWW-Authenticate": {"schema": {"type": "string"}, "description": CHALLENGE}},
    "content": {
        "application/json": {
            "schema": {"$ref": "#/components/schemas/ErrorResponse"},
            "example": {"error": MISSING},
        }
    },
}


def _document(app: FastAPI, is_open: Callable[[str], bool]) -> None:
    # Mark the operations that need a key in the OpenAPI document (and so in /docs' Authorize dialog).
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = build()
        schema.setdefault("components", {}).setdefault("securitySchemes", {}).update(SECURITY_SCHEMES)
        for path, operations in schema.get("paths", {}).items():
            if is_open(path):
                continue
            for operation in operations.values():
                operation["security"] = [{name: []} for name in SECURITY_SCHEMES]
                operation.setdefault("responses", {})["401"] = UNAUTHORIZED_RESPONSE
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def install_api_keys(app: FastAPI, settings: Settings) -> None:
    """With MNIST_API_KEYS set, require a key on every path but the open ones; without, do nothing.

    Call before adding CORS, so that CORS stays outside: preflights need no key and 401s carry its headers.
    """
    if not settings.api_keys:
        return
    is_open = open_path_rule(settings)
    app.add_middleware(ApiKeyMiddleware, keys=ApiKeys(settings.api_keys), is_open=is_open)
    _document(app, is_open)
