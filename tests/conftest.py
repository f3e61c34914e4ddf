"""Shared fixtures: a randomly initialised convnet exported into a temporary model repository plays the model; apps
and a real server built on it for the service and reliability suites; the same on the committed, trained models.

Helpers live in modules of their own (tests/paths.py, tests/shapes.py, tests/service/*.py ...), never here.

NOTE: the service's imports stay inside the fixtures, so that the training suite runs without the serve extra.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.paths import REPO_ROOT, committed_repository, mnist_data_dir
from tests.shapes import LAYER_SHAPES

if TYPE_CHECKING:
    import httpx

    from service.config import Settings
    from tests.reliability.processes import LiveService

# NOTE: tests/training still imports these from here; every other test takes them from tests/paths.py and
# tests/shapes.py.
__all__ = ["LAYER_SHAPES", "REPO_ROOT", "mnist_data_dir"]


@pytest.fixture(scope="session")
def random_repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model repository holding one model, mnist_cnn version 1: a seeded, randomly initialised classic net."""
    import torch

    from training.architectures import build_model
    from training.export import export_to_repository

    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("repository")
    export_to_repository(build_model("classic"), root, name="mnist_cnn", version="1")
    return root


@pytest.fixture(scope="session")
def random_model(random_repository: Path) -> tuple[Path, Path]:
    """(model.onnx, card.json) of the random repository's one model version."""
    folder = random_repository / "mnist_cnn" / "1"
    return folder / "model.onnx", folder / "card.json"


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def settings(random_repository: Path) -> Settings:
    """The random test repository with every other setting at its default: the limits a real server has.

    A module whose tests need other limits overrides this fixture, and `client` follows.
    """
    from service.config import Settings

    return Settings(model_repository=random_repository)


@pytest.fixture
async def client(settings: Settings, anyio_backend: str) -> AsyncIterator[httpx.AsyncClient]:
    """An in-process client of an app built from `settings`, its lifespan (model loading) run."""
    from tests.service.clients import in_process_client

    async with in_process_client(settings) as client:
        yield client


@pytest.fixture(scope="session")
def live_service(random_repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveService]:
    """A real `python -m service` with the default settings, serving the random test repository on loopback."""
    from tests.reliability.processes import launched
    from tests.service.servers import service_env

    with launched(service_env(random_repository), tmp_path_factory.mktemp("live")) as service:
        yield service


@pytest.fixture
async def committed_client(anyio_backend: str) -> AsyncIterator[httpx.AsyncClient]:
    """An in-process client of an app serving the committed, trained models, every setting at its default."""
    from service.config import Settings
    from tests.service.clients import in_process_client

    async with in_process_client(Settings(model_repository=committed_repository())) as client:
        yield client


@pytest.fixture(scope="session")
def committed_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveService]:
    """A real `python -m service` with the default settings, serving the committed, trained models on loopback."""
    from tests.reliability.processes import launched
    from tests.service.servers import service_env

    with launched(service_env(committed_repository()), tmp_path_factory.mktemp("committed")) as service:
        yield service


@pytest.fixture(scope="session")
def digit_png() -> bytes:
    """A PNG of a 7."""
    from tests.service.images import draw_seven, encode

    return encode(draw_seven())


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    """In CI (CI=true) a skipped test is a failure: the model, the data and Chromium must all be there."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and os.environ.get("CI") and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, which must run every test: {report.longrepr}"
