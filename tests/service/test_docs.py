"""/docs, /redoc and their assets, in-process: types, the drawing page's headers, nothing from other hosts."""

from __future__ import annotations

import base64
import hashlib
import re

import httpx
import pytest
from pydantic import SecretStr

from service.config import Settings
from service.routes.web import SECURITY_HEADERS
from tests.service.clients import in_process_client

pytestmark = pytest.mark.anyio

PAGES = ["/docs", "/redoc"]
ASSETS = {
    "/docs/assets/swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "/docs/assets/swagger-ui-init.js": "text/javascript; charset=utf-8",
    "/docs/assets/swagger-ui.css": "text/css; charset=utf-8",
    "/docs/assets/redoc.standalone.js": "text/javascript; charset=utf-8",
    "/docs/assets/favicon.png": "image/png",
    "/redoc/logo-mini.svg": "image/svg+xml",
}
PAGE_CSP = SECURITY_HEADERS["Content-Security-Policy"]


def directives(policy: str) -> dict[str, str]:
    """A Content-Security-Policy as {directive: its sources}."""
    return dict(part.split(" ", 1) for part in policy.split("; "))


def named_urls(html: str) -> list[str]:
    """Every src= and href= in a page."""
    return re.findall(r'(?:src|href)="([^"]*)"', html)


async def test_read_swagger_ui_is_html_under_the_page_headers(client: httpx.AsyncClient) -> None:
    response = await client.get("/docs")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert {name: response.headers.get(name) for name in SECURITY_HEADERS} == SECURITY_HEADERS


@pytest.mark.parametrize("path", PAGES)
async def test_docs_pages_name_only_same_origin_urls_and_no_inline_script(client: httpx.AsyncClient, path: str) -> None:
    html = (await client.get(path)).text
    assert named_urls(html) and all(url.startswith("/") and not url.startswith("//") for url in named_urls(html))
    assert "http" not in html  # no other host, not even in a <link> the check above would miss
    assert re.findall(r"<script[^>]*>", html) == [f'<script src="{url}">' for url in named_urls(html) if ".js" in url]


@pytest.mark.parametrize("path", PAGES)
async def test_every_url_of_the_docs_pages_is_served(client: httpx.AsyncClient, path: str) -> None:
    for url in named_urls((await client.get(path)).text):
        assert (await client.get(url)).status_code == 200, url


@pytest.mark.parametrize(("path", "content_type"), ASSETS.items())
async def test_read_docs_asset_has_its_type_and_the_page_headers(
    client: httpx.AsyncClient, path: str, content_type: str
) -> None:
    response = await client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"] == content_type
    assert response.headers["content-security-policy"] == PAGE_CSP
    assert response.headers["x-content-type-options"] == "nosniff"
    assert len(response.content) > 100


@pytest.mark.parametrize("name", ["nope.js", "swagger-ui.js", "LICENSE", "..%2Fswagger%2FLICENSE"])
async def test_read_docs_asset_unknown_name_is_a_404_json_error(client: httpx.AsyncClient, name: str) -> None:
    response = await client.get(f"/docs/assets/{name}")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    assert list(response.json()) == ["error"]
    assert "/docs" in response.json()["error"]


async def test_read_redoc_relaxes_only_inline_styles_and_blob_workers(client: httpx.AsyncClient) -> None:
    response = await client.get("/redoc")
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    relaxed = directives(response.headers["content-security-policy"])
    assert relaxed.pop("style-src") == "'self' 'unsafe-inline'"
    assert relaxed.pop("worker-src") == "'self' blob:"
    page = directives(PAGE_CSP)
    del page["style-src"]
    assert relaxed == page


async def test_read_oauth2_redirect_allows_only_its_own_inline_script(client: httpx.AsyncClient) -> None:
    response = await client.get("/docs/oauth2-redirect")
    assert response.status_code == 200
    (script,) = re.findall(r"<script>(.*?)</script>", response.text, flags=re.DOTALL)
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    policy = directives(response.headers["content-security-policy"])
    assert policy.pop("script-src") == f"'self' 'sha256-{digest}'"
    page = directives(PAGE_CSP)
    del page["script-src"]
    assert policy == page


async def test_docs_and_assets_need_no_api_key(settings: Settings) -> None:
    keyed = settings.model_copy(update={"api_keys": [SecretStr("a-key-nobody-sends")]})
    async with in_process_client(keyed) as client:
        for path in [*PAGES, "/docs/oauth2-redirect", "/openapi.json", *ASSETS]:
            assert (await client.get(path)).status_code == 200, path
        assert (await client.get("/docs/assets/nope.js")).status_code == 404  # open, so the 404, not a 401
