"""The lean-route machinery: a lean route that declares what it would silently ignore is refused when it is
built, and lean routes with templated paths are served by HotRoutes with their parameters."""

from __future__ import annotations

from typing import Annotated

import httpx
import pytest
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from service.routing import LeanRoute
from tests.service.metrics import samples

pytestmark = pytest.mark.anyio


async def _a_dependency() -> int:
    return 1


def test_lean_route_with_a_query_parameter_is_refused_when_built() -> None:
    router = APIRouter(route_class=LeanRoute)
    with pytest.raises(TypeError, match="must take only the Request.*declares layers"):

        @router.post("/lean")
        async def lean(request: Request, layers: Annotated[str, Query()] = "") -> Response:
            return Response()


def test_lean_route_with_a_dependency_is_refused_when_built() -> None:
    router = APIRouter(route_class=LeanRoute)
    with pytest.raises(TypeError, match="declares _a_dependency"):

        @router.post("/lean")
        async def lean(request: Request, value: Annotated[int, Depends(_a_dependency)]) -> Response:
            return Response()


def test_lean_route_without_the_request_is_refused_when_built() -> None:
    router = APIRouter(route_class=LeanRoute)
    with pytest.raises(TypeError, match="declares no Request"):

        @router.post("/lean")
        async def lean() -> Response:
            return Response()


async def test_infer_model_on_its_templated_path_is_counted_by_its_template(client: httpx.AsyncClient) -> None:
    request = {"inputs": [{"name": "image", "shape": [1, 784], "datatype": "UINT8", "data": [0] * 784}]}
    assert (await client.post("/v2/models/mnist_cnn/versions/1/infer", json=request)).status_code == 200
    missing = await client.post("/v2/models/nine/infer", json=request)
    assert missing.status_code == 404 and "nine" in missing.json()["error"]
    found = samples((await client.get("/metrics")).text)
    route = "/v2/models/{model_name}/versions/{model_version}/infer"
    labels = frozenset({("method", "POST"), ("route", route), ("status", "200")})
    assert found[("mnist_http_requests_total", labels)] == 1
