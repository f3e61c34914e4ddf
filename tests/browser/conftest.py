"""Browser fixtures: Debian's headless Chromium driven by Playwright, and pages of the real service on the
committed model (`committed_service`, tests/conftest.py) that record every console error, page error and CSP
violation (tests/browser/pages.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.browser.pages import DESKTOP, PHONE, PageProblems, new_page, wait_until_ready
from tests.browser.repositories import THIRD_MODEL, repository_with_a_third_model
from tests.paths import REPO_ROOT, committed_repository

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, ViewportSize

    from tests.reliability.processes import LiveService

CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
# As root on a closed network: no sandbox, and none of Chromium's own calls home (each would fail).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]


# NOTE: module scope, not session: Playwright's sync API keeps an asyncio loop running in this thread
# while it is open, which breaks every later test that starts its own loop (anyio, asyncio.run).
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Headless Debian Chromium; the suite is skipped where Playwright or Chromium is missing."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the dev extra)")
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM}: apt-get install -y chromium (or set CHROMIUM_PATH)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def problems() -> PageProblems:
    return PageProblems()


def _drawing_page(browser: Browser, url: str, problems: PageProblems, viewport: ViewportSize) -> Iterator[Page]:
    page = new_page(browser, url, problems, viewport)
    page.goto("/")
    wait_until_ready(page)
    yield page
    page.context.close()


@pytest.fixture
def page(browser: Browser, committed_service: LiveService, problems: PageProblems) -> Iterator[Page]:
    """The drawing page at desktop size, loaded: its models listed and the default model's layers shown."""
    yield from _drawing_page(browser, committed_service.url, problems, DESKTOP)


@pytest.fixture
def phone_page(browser: Browser, committed_service: LiveService, problems: PageProblems) -> Iterator[Page]:
    """The drawing page on a 390 px wide phone screen, loaded."""
    yield from _drawing_page(browser, committed_service.url, problems, PHONE)


@pytest.fixture(scope="session")
def three_model_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveService]:
    """A real `python -m service` on the committed models plus THIRD_MODEL: mnist_modern, every layer renamed."""
    from tests.reliability.processes import launched
    from tests.service.servers import service_env

    root = tmp_path_factory.mktemp("three-models")
    repository_with_a_third_model(committed_repository(), root, "mnist_modern", THIRD_MODEL)
    with launched(service_env(root), tmp_path_factory.mktemp("three-live")) as service:
        yield service


@pytest.fixture
def three_model_page(browser: Browser, three_model_service: LiveService, problems: PageProblems) -> Iterator[Page]:
    """The drawing page at desktop size, served the committed models and THIRD_MODEL."""
    yield from _drawing_page(browser, three_model_service.url, problems, DESKTOP)


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """Where screenshots and measurements go: BROWSER_ARTIFACTS_DIR, else artifacts/browser (git-ignored)."""
    directory = Path(os.environ.get("BROWSER_ARTIFACTS_DIR", REPO_ROOT / "artifacts" / "browser"))
    directory.mkdir(parents=True, exist_ok=True)
    return directory
