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

    When to use it: only for the hot inference routes, where that machinery is a measured share of each
    request (docs/benchmarks.md); everything else is a plain APIRoute. /docs still comes from the route's
    declaration (response_model, responses, openapi_extra, which must then describe the query and path
    parameters the endpoint reads itself). The endpoint parses the request itself and raises ServiceError for
    bad ones, which the app's handlers shape as usual. An endpoint that declares anything FastAPI would
    inject (a dependency, a query, path, header or body parameter) is refused when the route is built: it
    would be silently ignored here.
    """

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        declared = self.dependant
        injected = [
            *(dependency.call.__name__ for dependency in declared.dependencies if dependency.call),
            *(param.name for param in declared.query_params + declared.path_params + declared.header_params),
            *(param.name for param in declared.cookie_params + declared.body_params),
        ]
        if injected or declared.request_param_name is None:
            raise TypeError(
                f"lean route {path} must take only the Request (it reads its own parameters): "
                f"{endpoint.__name__} declares {', '.join(injected) or 'no Request'}"
            )

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
    skipping FastAPI's per-request stack (its middleware, the router's scan of every route, exception
    middleware).

    Everything outside (metrics, CORS, API keys) still applies; ServiceError becomes the usual JSON error,
    anything else reaches the server-error handler as before. FastAPI still documents (and would serve)
    the routes; other methods and paths go on to FastAPI untouched. Fixed paths are one dict lookup; a
    templated path (/v2/models/{model_name}/infer) is matched by its route's own regex and convertors.
    """

    def __init__(self, app: ASGIApp, routes: Sequence[BaseRoute]) -> None:
        self.app = app
        lean = [route for route in routes if isinstance(route, LeanRoute)]
        self.fixed = {(m, r.path): r for r in lean if not r.param_convertors for m in r.methods or ()}
        self.templated = [(frozenset(r.methods or ()), r) for r in lean if r.param_convertors]

    def find(self, scope: Scope) -> LeanRoute | None:
        """The lean route for this request, with its path parameters set in the scope; None for the rest."""
        method, path = scope.get("method", ""), route_path(scope)
        route = self.fixed.get((method, path))
        if route is not None or not self.templated:
            return route
        for methods, candidate in self.templated:
            match = candidate.path_regex.match(path) if method in methods else None
            if match:
                convertors = candidate.param_convertors
                params = {key: convertors[key].convert(value) for key, value in match.groupdict().items()}
                scope["path_params"] = {**scope.get("path_params", {}), **params}
                return candidate
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self.find(scope) if scope["type"] == "http" else None
        if route is None:
            await self.app(scope, receive, send)
            return
        scope["route"] = route  # as the router would: metrics label requests by route template
        try:
            response = await route.endpoint(Request(scope, receive, send))
        except ServiceError as err:
            response = error_response(err.status_code, str(err))
        await response(scope, receive, send)


def route_path(scope: Scope) -> str:
    """The path the router matches: without root_path (as starlette._utils.get_route_path does)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root) and path[len(root) : len(root) + 1] in ("", "/"):
        return path[len(root) :] or "/"
    return path
