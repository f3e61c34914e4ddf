"""Who gets in: optional API keys (MNIST_API_KEYS), CORS only for configured origins, the page's security headers."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from service.config import Settings
from service.security import ApiKeys, presented_keys
from tests.reliability.processes import launched
from tests.service.clients import in_process_client
from tests.service.servers import service_env

pytestmark = pytest.mark.anyio

KEY = "k3y-for-tests-0123456789abcdef"
OTHER_KEY = "second-key-abcdefghijklmnopqrstuv"
ORIGIN = "http://page.example"

# (method, path) of every endpoint that needs a key once keys are configured, with a body where one is read.
PROTECTED = [
    ("POST", "/predict"),
    ("POST", "/predict/batch"),
    ("POST", "/feature-maps"),
    ("POST", "/feature-maps/conv1.png"),
    ("POST", "/v2/models/mnist_cnn/infer"),
    ("POST", "/v2/models/mnist_cnn/versions/1.0.0/infer"),
]
OPEN = [
    "/health/live",
    "/health/ready",
    "/v2/health/live",
    "/v2/health/ready",
    "/v2",
    "/v2/models/mnist_cnn",
    "/v2/models/mnist_cnn/ready",
    "/model",
    "/metrics",
    "/openapi.json",
    "/docs",
]


def keyed(settings: Settings, **changes: object) -> Settings:
    return settings.model_copy(update={"api_keys": [SecretStr(KEY), SecretStr(OTHER_KEY)], **changes})


@pytest.fixture
def make_client(anyio_backend: str) -> Callable[[Settings], AsyncIterator[httpx.AsyncClient]]:
    async def make(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
        async with in_process_client(settings) as client:
            yield client

    return make


@pytest.fixture
async def keyed_client(settings: Settings, anyio_backend: str) -> AsyncIterator[httpx.AsyncClient]:
    """An app with two API keys configured."""
    async with in_process_client(keyed(settings)) as client:
        yield client


def assert_unauthorized(response: httpx.Response, *words: str) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert list(response.json()) == ["error"]
    for word in words:
        assert word in response.json()["error"]
    assert KEY not in response.text and "wrong-key" not in response.text


# ---- keys off (the default) ----------------------------------------------------------------------------


def test_settings_read_api_keys_as_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MNIST_API_KEYS", f" {KEY} , {OTHER_KEY},, ")
    settings = Settings()
    assert [key.get_secret_value() for key in settings.api_keys] == [KEY, OTHER_KEY]
    assert KEY not in repr(settings) and KEY not in str(settings)
    assert KEY not in settings.model_dump_json() and KEY not in str(settings.model_dump())


async def test_predict_digit_needs_no_key_by_default(client: httpx.AsyncClient, digit_png: bytes) -> None:
    response = await client.post("/predict", files={"file": ("d.png", digit_png)})
    assert response.status_code == 200, response.text


# ---- keys on ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path"), PROTECTED)
async def test_protected_endpoint_without_key_is_401(keyed_client: httpx.AsyncClient, method: str, path: str) -> None:
    response = await keyed_client.request(method, path, content=b"x", headers={"Content-Type": "image/png"})
    assert_unauthorized(response, "Authorization: Bearer <key>", "X-API-Key")
    assert response.headers["www-authenticate"] == 'Bearer realm="mnist"'


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer wrong-key"},
        {"X-API-Key": "wrong-key"},
        {"Authorization": f"Basic {KEY}"},  # the right key under the wrong scheme
        {"Authorization": f"Bearer {KEY[:-1]}"},  # a prefix of the key
        {"Authorization": f"Bearer {KEY}x"},  # the key and more
    ],
    ids=["bearer", "x-api-key", "basic-scheme", "prefix", "longer"],
)
async def test_predict_digit_with_wrong_key_is_401(
    keyed_client: httpx.AsyncClient, digit_png: bytes, headers: dict[str, str]
) -> None:
    response = await keyed_client.post("/predict", files={"file": ("d.png", digit_png)}, headers=headers)
    assert_unauthorized(response)
    if "Basic" not in headers.get("Authorization", ""):
        assert 'error="invalid_token"' in response.headers["www-authenticate"]


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": f"Bearer {KEY}"},
        {"Authorization": f"bearer   {OTHER_KEY}"},
        {"X-API-Key": KEY},
        {"Authorization": "Basic dXNlcjpwYXNz", "X-API-Key": OTHER_KEY},  # a proxy's credentials beside ours
    ],
    ids=["bearer", "second-key-lowercase-scheme", "x-api-key", "basic-and-x-api-key"],
)
async def test_predict_digit_with_a_configured_key_is_200(
    keyed_client: httpx.AsyncClient, digit_png: bytes, headers: dict[str, str]
) -> None:
    response = await keyed_client.post("/predict", files={"file": ("d.png", digit_png)}, headers=headers)
    assert response.status_code == 200, response.text


async def test_every_protected_endpoint_lets_a_key_through(keyed_client: httpx.AsyncClient, digit_png: bytes) -> None:
    auth = {"Authorization": f"Bearer {KEY}"}
    for path in ("/predict", "/feature-maps?format=compact", "/feature-maps/conv1.png"):
        response = await keyed_client.post(path, files={"file": ("d.png", digit_png)}, headers=auth)
        assert response.status_code == 200, (path, response.text)
    batch = await keyed_client.post("/predict/batch", files=[("files", ("a.png", digit_png))], headers=auth)
    assert batch.status_code == 200, batch.text
    v2 = {"inputs": [{"name": "image", "shape": [1, 784], "datatype": "UINT8", "data": [0] * 784}]}
    response = await keyed_client.post("/v2/models/mnist_cnn/infer", json=v2, headers=auth)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("path", OPEN)
async def test_open_endpoints_need_no_key(keyed_client: httpx.AsyncClient, path: str) -> None:
    response = await keyed_client.get(path)
    assert response.status_code == 200, response.text


async def test_page_and_its_files_need_no_key(keyed_client: httpx.AsyncClient) -> None:
    page = await keyed_client.get("/")
    if page.status_code == 404:
        pytest.skip("the web page is not served yet")
    assert page.status_code == 200
    for asset in re.findall(r'(?:src|href)="(/static/[^"]+)"', page.text):
        assert (await keyed_client.get(asset)).status_code == 200, asset


async def test_unknown_path_without_key_is_401_not_404(keyed_client: httpx.AsyncClient) -> None:
    # Deny by default: without a key nobody learns which routes exist, and a new route is protected.
    assert_unauthorized(await keyed_client.get("/no/such/route"))
    assert_unauthorized(await keyed_client.get("/static/../predict"))


async def test_metrics_need_a_key_when_configured(settings: Settings, make_client: Callable) -> None:
    async for client in make_client(keyed(settings, metrics_require_key=True)):
        assert_unauthorized(await client.get("/metrics"))
        assert (await client.get("/metrics", headers={"X-API-Key": KEY})).status_code == 200
        assert (await client.get("/health/ready")).status_code == 200


async def test_refused_request_body_is_never_read(keyed_client: httpx.AsyncClient) -> None:
    read = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal read
        for _ in range(1000):
            read += 1
            yield b"\0" * 65536

    response = await keyed_client.post("/predict", content=body(), headers={"Content-Type": "image/png"})
    assert_unauthorized(response)
    assert read <= 1  # httpx may hand over the first chunk; the app never asks for more


async def test_openapi_marks_keyed_operations(keyed_client: httpx.AsyncClient) -> None:
    schema = (await keyed_client.get("/openapi.json")).json()
    assert set(schema["components"]["securitySchemes"]) == {"bearer", "apiKey"}
    paths = schema["paths"]
    assert "401" in paths["/predict"]["post"]["responses"] and paths["/predict"]["post"]["security"]
    assert "security" not in paths["/health/live"]["get"]
    assert "security" not in paths["/v2/models/{model_name}"]["get"]


async def test_keyed_app_answers_401_through_cors_and_preflight_needs_no_key(
    settings: Settings, make_client: Callable, digit_png: bytes
) -> None:
    async for client in make_client(keyed(settings, cors_origins=[ORIGIN])):
        preflight = await client.options(
            "/predict",
            headers={
                "Origin": ORIGIN,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization",
            },
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == ORIGIN
        assert "authorization" in preflight.headers["access-control-allow-headers"].lower()
        refused = await client.post("/predict", files={"file": ("d.png", digit_png)}, headers={"Origin": ORIGIN})
        assert_unauthorized(refused)
        assert refused.headers["access-control-allow-origin"] == ORIGIN  # the page can read why


def test_api_keys_compare_every_candidate_with_every_key() -> None:
    keys = ApiKeys([SecretStr(KEY), SecretStr(OTHER_KEY)])
    assert keys.accepts([KEY.encode()]) and keys.accepts([b"nope", OTHER_KEY.encode()])
    assert not keys.accepts([]) and not keys.accepts([b""]) and not keys.accepts([KEY.upper().encode()])
    assert KEY not in repr(keys)


def test_presented_keys_are_bounded_in_number() -> None:
    headers = [(b"x-api-key", b"k%d" % i) for i in range(1000)]
    assert len(presented_keys(headers)) == 4


def test_keys_never_reach_the_server_log(random_repository: Path, tmp_path: Path, digit_png: bytes) -> None:
    env = service_env(random_repository, MNIST_API_KEYS=KEY, MNIST_LOG_LEVEL="debug")
    with launched(env, tmp_path) as service:
        with httpx.Client(base_url=service.url, timeout=30) as http:
            assert http.post("/predict", files={"file": ("d.png", digit_png)}).status_code == 401
            ok = http.post("/predict", files={"file": ("d.png", digit_png)}, headers={"X-API-Key": KEY})
            assert ok.status_code == 200
            assert http.post("/predict", content=b"x", headers={"Authorization": "Bearer wrong-key"}).status_code == 401
        log = service.log()
    assert "401" in log  # the access log saw the refusals ...
    assert KEY not in log and "wrong-key" not in log  # ... but no key


# ---- CORS -------------------------------------------------------------------------------------------------


async def test_cors_headers_are_absent_by_default(client: httpx.AsyncClient) -> None:
    answer = await client.get("/health/live", headers={"Origin": ORIGIN})
    preflight = await client.options("/predict", headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"})
    assert "access-control-allow-origin" not in answer.headers
    assert "access-control-allow-origin" not in preflight.headers
    assert preflight.status_code in (400, 405)  # no CORS: OPTIONS is just a method /predict lacks


async def test_cors_echoes_only_configured_origins(settings: Settings, make_client: Callable, digit_png: bytes) -> None:
    evil = "http://evil.example"
    async for client in make_client(settings.model_copy(update={"cors_origins": [ORIGIN]})):
        preflight = await client.options(
            "/predict", headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"}
        )
        allowed = await client.post("/predict", files={"file": ("d.png", digit_png)}, headers={"Origin": ORIGIN})
        other = await client.post("/predict", files={"file": ("d.png", digit_png)}, headers={"Origin": evil})
        other_preflight = await client.options(
            "/predict", headers={"Origin": evil, "Access-Control-Request-Method": "POST"}
        )
    assert preflight.status_code == 200 and preflight.headers["access-control-allow-origin"] == ORIGIN
    assert allowed.status_code == 200 and allowed.headers["access-control-allow-origin"] == ORIGIN
    assert "access-control-allow-origin" not in other.headers
    assert other_preflight.status_code == 400 and "access-control-allow-origin" not in other_preflight.headers


# ---- the page's headers -----------------------------------------------------------------------------------


def csp_directives(header: str) -> dict[str, list[str]]:
    directives = {}
    for directive in header.split(";"):
        name, *sources = directive.split()
        directives[name.lower()] = sources
    return directives


async def test_page_has_a_same_origin_content_security_policy(client: httpx.AsyncClient) -> None:
    page = await client.get("/")
    if page.status_code == 404:
        pytest.skip("the web page is not served yet")
    directives = csp_directives(page.headers["content-security-policy"])
    assert directives["default-src"] == ["'self'"]
    sources = [source for values in directives.values() for source in values]
    # Only keywords and local schemes: no other host, no wildcard, no inline script or eval.
    assert all(source.startswith("'") or source in ("data:", "blob:") for source in sources), sources
    assert "'unsafe-inline'" not in directives.get("script-src", []) + directives.get("default-src", [])
    assert "'unsafe-eval'" not in sources
    assert page.headers["x-content-type-options"] == "nosniff"
