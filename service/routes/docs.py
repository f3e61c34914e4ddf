"""The API docs with no internet: Swagger UI at /docs and ReDoc at /redoc, under the drawing page's headers.

Their scripts, style sheet and icon come from the pinned fastapi-standalone-docs package (Swagger UI 5.33.1,
ReDoc 2.5.4) and are served at /docs/assets/<name>, instead of FastAPI's pages loading them from a CDN.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_oauth2_redirect_html, swagger_ui_default_parameters
from fastapi.responses import FileResponse, Response

from service.errors import NotFound
from service.routes.web import MEDIA_TYPES, SECURITY_HEADERS

router = APIRouter(tags=["docs"], include_in_schema=False)

OPENAPI_URL = "/openapi.json"
OAUTH2_REDIRECT_URL = "/docs/oauth2-redirect"
ASSETS_URL = "/docs/assets"

# NOTE: found through the import system, so the files come from wherever pip put the package (/opt/venv in
# the image). Checked here, so that a package without them stops the service at start, not a page later.
_STATIC = Path(str(files("fastapi_standalone_docs"))) / "static"
PACKAGE_ASSETS = {
    "swagger-ui-bundle.js": _STATIC / "swagger" / "swagger-ui-bundle.js",
    "swagger-ui.css": _STATIC / "swagger" / "swagger-ui.css",
    "redoc.standalone.js": _STATIC / "redoc" / "redoc.standalone.js",
    "favicon.png": _STATIC / "fastapi" / "favicon.png",
}
REDOC_LOGO = _STATIC / "redoc" / "logo-mini.svg"
if missing := [str(path) for path in [*PACKAGE_ASSETS.values(), REDOC_LOGO] if not path.is_file()]:
    raise RuntimeError(f"fastapi-standalone-docs lacks {', '.join(missing)}: pip install -e '.[serve]'")

# What FastAPI's get_swagger_ui_html runs inline, with FastAPI's defaults, as a same-origin file:
# the page's `script-src 'self'` runs no inline script.
SWAGGER_UI_INIT = f"""\
window.ui = SwaggerUIBundle({{
  url: {json.dumps(OPENAPI_URL)},
  ...{json.dumps(swagger_ui_default_parameters)},
  oauth2RedirectUrl: window.location.origin + {json.dumps(OAUTH2_REDIRECT_URL)},
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
}});
"""
SCRIPTS = {"swagger-ui-init.js": SWAGGER_UI_INIT}

SWAGGER_UI_PAGE = f"""\
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{title}} - Swagger UI</title>
<link rel="icon" href="{ASSETS_URL}/favicon.png">
<link rel="stylesheet" href="{ASSETS_URL}/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{ASSETS_URL}/swagger-ui-bundle.js"></script>
<script src="{ASSETS_URL}/swagger-ui-init.js"></script>
</body>
</html>
"""

# ReDoc starts itself on the <redoc> element once its script has loaded: nothing inline.
REDOC_PAGE = f"""\
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{title}} - ReDoc</title>
<link rel="icon" href="{ASSETS_URL}/favicon.png">
</head>
<body>
<redoc spec-url="{OPENAPI_URL}"></redoc>
<script src="{ASSETS_URL}/redoc.standalone.js"></script>
</body>
</html>
"""


def with_csp(**directives: str) -> dict[str, str]:
    """The drawing page's headers with these CSP directives (script_src= for script-src) set to other sources."""
    policy = dict(part.split(" ", 1) for part in SECURITY_HEADERS["Content-Security-Policy"].split("; "))
    policy |= {name.replace("_", "-"): sources for name, sources in directives.items()}
    return SECURITY_HEADERS | {"Content-Security-Policy": "; ".join(" ".join(item) for item in policy.items())}


def _script_hash(page: str) -> str:
    (script,) = re.findall(r"<script>(.*?)</script>", page, flags=re.DOTALL)
    return "'sha256-" + base64.b64encode(hashlib.sha256(script.encode()).digest()).decode() + "'"


# NOTE: ReDoc cannot run under the page's policy. It styles itself with styled-components, which writes
# <style> elements (blocked by style-src 'self': ReDoc then throws and shows nothing), and builds its search
# index in a Web Worker made from a blob: URL (worker-src falls back to script-src 'self'). Only /redoc gets
# these two; scripts, connections and images stay same-origin, so the relaxation lets no other host in.
REDOC_HEADERS = with_csp(style_src="'self' 'unsafe-inline'", worker_src="'self' blob:")

# FastAPI's OAuth2 redirect page is one inline script (Swagger UI opens it only for OAuth2 sign-ins, which this
# API does not offer). Its policy allows that script by its hash: no other inline script runs there.
OAUTH2_REDIRECT_PAGE = bytes(get_swagger_ui_oauth2_redirect_html().body).decode()
OAUTH2_REDIRECT_HEADERS = with_csp(script_src=f"'self' {_script_hash(OAUTH2_REDIRECT_PAGE)}")


def _html(page: str, headers: dict[str, str]) -> Response:
    return Response(page, media_type=MEDIA_TYPES[".html"], headers=headers)


@router.api_route("/docs", methods=["GET", "HEAD"])
async def read_swagger_ui(request: Request) -> Response:
    """Swagger UI: every operation, with a form to try it."""
    return _html(SWAGGER_UI_PAGE.format(title=html.escape(request.app.title)), SECURITY_HEADERS)


@router.api_route(OAUTH2_REDIRECT_URL, methods=["GET", "HEAD"])
async def read_oauth2_redirect() -> Response:
    """Where an OAuth2 sign-in started in Swagger UI comes back to."""
    return _html(OAUTH2_REDIRECT_PAGE, OAUTH2_REDIRECT_HEADERS)


@router.api_route(ASSETS_URL + "/{name}", methods=["GET", "HEAD"])
async def read_docs_asset(name: str) -> Response:
    """Swagger UI's and ReDoc's scripts, style sheet and icon, and the script that starts Swagger UI."""
    media_type = MEDIA_TYPES.get(Path(name).suffix)
    if name in SCRIPTS:
        return Response(SCRIPTS[name], media_type=media_type, headers=SECURITY_HEADERS)
    if name not in PACKAGE_ASSETS:
        raise NotFound(f"no docs asset {name[:40]!r}; the API docs are at /docs")
    return FileResponse(PACKAGE_ASSETS[name], media_type=media_type, headers=SECURITY_HEADERS)


@router.api_route("/redoc", methods=["GET", "HEAD"])
async def read_redoc(request: Request) -> Response:
    """ReDoc: the whole API as one page to read."""
    return _html(REDOC_PAGE.format(title=html.escape(request.app.title)), REDOC_HEADERS)


@router.api_route("/redoc/logo-mini.svg", methods=["GET", "HEAD"])
async def read_redoc_logo() -> FileResponse:
    """The logo in ReDoc's footer, which ReDoc asks for beside the page's own path."""
    return FileResponse(REDOC_LOGO, media_type=MEDIA_TYPES[".svg"], headers=SECURITY_HEADERS)
