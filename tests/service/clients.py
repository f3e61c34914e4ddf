"""An in-process httpx client of an app built from settings, with its lifespan (model loading) run."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx

from service.config import Settings
from service.main import create_app


@asynccontextmanager
async def in_process_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """create_app(settings), lifespan running, behind an ASGI transport: no sockets."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client


@asynccontextmanager
async def exploding_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A client of create_app(settings) with one route of the test's own, GET /explode, that raises a bug.

    Our code has no known bug to use; the lifespan is not run (the route needs no model).
    """
    app = create_app(settings)

    async def explode() -> None:
        raise RuntimeError("a bug, with secrets in its message")

    app.add_api_route("/explode", explode)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client
