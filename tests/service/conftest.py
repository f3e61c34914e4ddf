"""Service fixtures: apps built on the random test model, an in-process client, a real server, test images."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx
import pytest

from service.config import Settings
from tests.service.clients import in_process_client
from tests.service.images import draw_seven, encode
from tests.service.servers import running_service, service_env

# Small limits keep the too-large tests quick in-process; the real server keeps the defaults.
UPLOAD_LIMIT = 200_000
BATCH_LIMIT = 4


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def settings(random_model: tuple[Path, Path]) -> Settings:
    model_path, card_path = random_model
    return Settings(
        model_path=model_path,
        card_path=card_path,
        max_upload_bytes=UPLOAD_LIMIT,
        max_batch_upload_bytes=2 * UPLOAD_LIMIT,
        max_batch_files=BATCH_LIMIT,
        max_image_pixels=1000 * 1000,
    )


@pytest.fixture
async def client(settings: Settings, anyio_backend: str) -> AsyncIterator[httpx.AsyncClient]:
    """An in-process client of an app whose lifespan (model loading) has run."""
    async with in_process_client(settings) as client:
        yield client


# ---- a real server -----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def server(random_model: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL of a real `python -m service` on a free loopback port, ready to serve the random model."""
    with running_service(service_env(*random_model), tmp_path_factory.mktemp("server")) as running:
        yield running.url


# ---- images ------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def digit_png() -> bytes:
    """A PNG of a 7."""
    return encode(draw_seven())


@pytest.fixture(scope="session")
def make_png() -> Callable[..., bytes]:
    """Build a PNG of a 7 with draw_seven's options (size, ink, paper)."""
    return lambda **options: encode(draw_seven(**options))
