"""Exception handlers: every non-2xx answer is JSON {"error": "<what is wrong and what to do>"}."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse

from service.errors import ServiceError

log = logging.getLogger(__name__)


def error_response(status_code: int, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    """The one shape of an error answer."""
    return JSONResponse({"error": message}, status_code=status_code, headers=headers)


async def _service_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServiceError)
    return error_response(exc.status_code, str(exc))


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = []
    in_body = False
    for error in exc.errors():
        location = [str(part) for part in error.get("loc", ())]
        in_body = in_body or location[:1] == ["body"]
        where = {"query": "query parameter", "path": "path parameter", "header": "header"}.get(
            location[0] if location else "", "field"
        )
        problems.append(f"{where} '{'.'.join(location[1:]) or '?'}': {error.get('msg', 'invalid')}")
    # A malformed request (query, path, headers) is 400; a well-formed body with bad content is 422.
    return error_response(422 if in_body else 400, "invalid request: " + "; ".join(problems))


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    path = _shortened(request.url.path)  # NOTE: never echo a 10 KB path back whole
    if exc.status_code == 404:
        message = f"not found: no endpoint at {path}; see /docs for the API"
    elif exc.status_code == 405:
        allowed = exc.headers.get("Allow", "") if exc.headers else ""
        message = f"method {request.method} not allowed on {path}; use {allowed or 'another method'}"
    else:
        message = str(exc.detail)
    return error_response(exc.status_code, message, headers=exc.headers)


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    log.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal error")


def install_error_handlers(app: FastAPI) -> None:
    """Map domain errors, FastAPI's own errors and anything unexpected to the error shape."""
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)


def _shortened(path: str, limit: int = 100) -> str:
    return path if len(path) <= limit else path[:limit] + "..."
