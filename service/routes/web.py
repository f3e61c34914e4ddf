"""The drawing page at `GET /` and its static files at `/static/<name>`, under a same-origin-only CSP."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from service.errors import NotFound

router = APIRouter(tags=["web"], include_in_schema=False)

# NOTE: found beside the package, not the working directory, so an installed service serves it too
# (pyproject's package-data ships service/static/*).
STATIC_DIR = Path(__file__).resolve().parents[1] / "static"

# Only these kinds of file are served, each with its type spelled out rather than guessed from the OS.
MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}

# Same origin only: no inline script or style, no eval, no frames, no plugins, no other hosts.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",  # revalidate, so a new release's page and script arrive together
}


def _static_file(name: str) -> FileResponse:
    path = STATIC_DIR / name
    media_type = MEDIA_TYPES.get(path.suffix)
    if name.startswith(".") or media_type is None or not path.is_file():
        raise NotFound(f"no static file {name[:40]!r}")
    return FileResponse(path, media_type=media_type, headers=SECURITY_HEADERS)


@router.api_route("/", methods=["GET", "HEAD"])
async def read_page() -> FileResponse:
    """The page: draw a digit and watch every layer of the network respond."""
    return _static_file("index.html")


@router.api_route("/static/{name}", methods=["GET", "HEAD"])
async def read_static_file(name: str) -> FileResponse:
    """The page's script, style sheet and icon (one flat folder; names with a slash never match)."""
    return _static_file(name)
