"""Shared fixtures: a randomly initialised convnet exported to a temporary ONNX file plays the model; apps and a
real server built on it for the service and reliability suites.

NOTE: the service's imports stay inside the fixtures, so that the training suite runs without the serve extra.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    import httpx

    from service.config import Settings
    from tests.reliability.processes import LiveService

REPO_ROOT = Path(__file__).resolve().parents[1]

# The contract both halves meet at: each named output's shape without the batch dimension.
LAYER_SHAPES = {
    "conv1": [32, 26, 26],
    "pool1": [32, 13, 13],
    "conv2": [64, 11, 11],
    "pool2": [64, 5, 5],
    "conv3": [128, 3, 3],
    "flatten": [1152],
    "logits": [10],
    "probabilities": [10],
}


def mnist_data_dir() -> Path:
    """Where the MNIST IDX files are: MNIST_DATA_DIR, else the shared copy beside the checkout, else the
    per-user cache (training.data downloads into it when the files are missing)."""
    if env := os.environ.get("MNIST_DATA_DIR"):
        return Path(env)
    shared = REPO_ROOT.parent / "shared" / "datasets" / "mnist"
    if shared.is_dir():
        return shared
    from training.data import default_data_dir

    return default_data_dir()


@pytest.fixture(scope="session")
def random_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(onnx_path, card_path) of a seeded, randomly initialised MnistCNN with a valid card."""
    import torch

    from training.export import export_model
    from training.model import MnistCNN

    torch.manual_seed(0)
    directory = tmp_path_factory.mktemp("model")
    return export_model(MnistCNN(), directory / "mnist_cnn.onnx", version="0.0.0-test")


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def settings(random_model: tuple[Path, Path]) -> Settings:
    """The random test model with every other setting at its default: the limits a real server has.

    A module whose tests need other limits overrides this fixture, and `client` follows.
    """
    from service.config import Settings

    return Settings(model_path=random_model[0], card_path=random_model[1])


@pytest.fixture
async def client(settings: Settings, anyio_backend: str) -> AsyncIterator[httpx.AsyncClient]:
    """An in-process client of an app built from `settings`, its lifespan (model loading) run."""
    from tests.service.clients import in_process_client

    async with in_process_client(settings) as client:
        yield client


@pytest.fixture(scope="session")
def live_service(random_model: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveService]:
    """A real `python -m service` with the default settings, serving the random test model on loopback."""
    from tests.reliability.processes import launched
    from tests.service.servers import service_env

    with launched(service_env(*random_model), tmp_path_factory.mktemp("live")) as service:
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
