"""The hot path: a lean route class, the middleware that serves such routes first, and their JSON answers."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import orjson
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from service.errors import ServiceError
from service.handlers import error_response


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
    return Response(orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY), media_type="application/json")


class HotRoutes:
    """Pure ASGI, the innermost middleware: requests for the given LeanRoutes are answered right here,
    skipping FastAPI's per-request stack (its middleware, the router's scan, exception middleware).

    Everything outside (metrics, CORS, API keys) still applies; ServiceError becomes the usual JSON error,
    anything else reaches the server-error handler as before. FastAPI still documents (and would serve)
    the routes; other methods and paths go on to FastAPI untouched.
    """

    def __init__(self, app: ASGIApp, routes: Sequence[BaseRoute]) -> None:
        self.app = app
        self.routes = {
            (method, route.path): route
            for route in routes
            if isinstance(route, LeanRoute)
            for method in route.methods or ()
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self.routes.get((scope.get("method", ""), _route_path(scope))) if scope["type"] == "http" else None
        if route is None:
            await self.app(scope, receive, send)
            return
        scope["route"] = route  # as the router would: metrics label requests by route template
        try:
            response = await route.endpoint(Request(scope, receive, send))
        except ServiceError as err:
            response = error_response(err.status_code, str(err))
        await response(scope, receive, send)


def _route_path(scope: Scope) -> str:
    # The path the router matches: without root_path (as Starlette's routing does).
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        return path[len(root) :] or "/"
    return path
