"""Browser fixtures: the real service on a loopback port, Debian's headless Chromium driven by Playwright,
and a page that records every console error, page error and CSP violation."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.service.servers import REPO_ROOT, running_service, service_env

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

MODEL = REPO_ROOT / "models" / "mnist_cnn.onnx"
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
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}

# Collects, inside the page, what a blocked inline script or style would raise: CSP violation events.
RECORD_CSP_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolations.push(`${event.violatedDirective} blocked ${event.blockedURI || "inline"}`);
});
"""


@dataclass
class PageProblems:
    """Console errors and uncaught exceptions seen by one page."""

    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)


@pytest.fixture(scope="session")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real `python -m service` serving the committed model on a free loopback port."""
    if not (MODEL.exists() and MODEL.with_suffix(".json").exists()):
        pytest.skip(f"the trained model is not committed: {MODEL} and its card are needed")
    with running_service(service_env(MODEL), tmp_path_factory.mktemp("web-server")) as running:
        yield running.url


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


def _open_page(browser: Browser, base_url: str, problems: PageProblems, viewport: dict[str, int]) -> Iterator[Page]:
    context = browser.new_context(viewport=viewport, base_url=base_url)
    context.add_init_script(RECORD_CSP_VIOLATIONS)
    page = context.new_page()
    page.on("console", lambda message: message.type == "error" and problems.console_errors.append(message.text))
    page.on("pageerror", lambda error: problems.page_errors.append(str(error)))
    page.goto("/")
    yield page
    context.close()


@pytest.fixture
def page(browser: Browser, base_url: str, problems: PageProblems) -> Iterator[Page]:
    """The drawing page at desktop size, loaded."""
    yield from _open_page(browser, base_url, problems, DESKTOP)


@pytest.fixture
def phone_page(browser: Browser, base_url: str, problems: PageProblems) -> Iterator[Page]:
    """The drawing page on a 390 px wide phone screen, loaded."""
    yield from _open_page(browser, base_url, problems, PHONE)


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """Where screenshots and measurements go: BROWSER_ARTIFACTS_DIR, else artifacts/browser (git-ignored)."""
    directory = Path(os.environ.get("BROWSER_ARTIFACTS_DIR", REPO_ROOT / "artifacts" / "browser"))
    directory.mkdir(parents=True, exist_ok=True)
    return directory
