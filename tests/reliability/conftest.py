"""Reliability fixtures: the service fixtures of tests/service, plus one real server whose memory we read."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from service.config import Settings
from tests.reliability.processes import LiveService, launched

# The in-process app and the test images: the fixtures of tests/service, shared.
from tests.service.conftest import anyio_backend, client, digit_png  # noqa: F401
from tests.service.servers import service_env


@pytest.fixture
def settings(random_model: tuple[Path, Path]) -> Settings:
    """The random test model with every other setting at its default: the limits a real server has."""
    return Settings(model_path=random_model[0], card_path=random_model[1])


@pytest.fixture(scope="session")
def live_service(random_model: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveService]:
    """A real `python -m service` with the default settings, serving the random test model on loopback."""
    with launched(service_env(*random_model), tmp_path_factory.mktemp("live")) as service:
        yield service
