"""A lean route class for the hot endpoints, and the JSON answers they send."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

import orjson
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response


class LeanRoute(APIRoute):
    """An APIRoute whose endpoint takes the Request and returns a Response, bypassing FastAPI's per-request
    machinery (dependency solving, parameter and response validation).

    /docs still comes from the route's declaration (response_model, responses, openapi_extra). The endpoint
    parses the request itself and raises ServiceError for bad ones, which the app's handlers shape as usual.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        return self.endpoint


def json_response(content: dict[str, Any]) -> Response:
    """A 200 JSON answer from plain JSON types, encoded by orjson, without re-validation by a response_model.

    The routes still declare their response_model, so /docs shows the schema; the data plane already
    builds exactly that shape, so validating it again would only cost time on every request.
    """
    return Response(orjson.dumps(content), media_type="application/json")
