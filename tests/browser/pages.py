"""A browser page that records what went wrong in it: console errors, uncaught exceptions, CSP violations."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.sync_api import Browser, ConsoleMessage, Page, ViewportSize

DESKTOP: ViewportSize = {"width": 1280, "height": 900}
PHONE: ViewportSize = {"width": 390, "height": 844}

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


def new_page(browser: Browser, base_url: str, problems: PageProblems, viewport: ViewportSize) -> Page:
    """A blank page in a context of its own, its CSP violations in window.__cspViolations and its console
    errors and uncaught exceptions in problems; close it with page.context.close()."""
    context = browser.new_context(viewport=viewport, base_url=base_url)
    context.add_init_script(RECORD_CSP_VIOLATIONS)
    page = context.new_page()

    def record_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            problems.console_errors.append(message.text)

    page.on("console", record_console)
    page.on("pageerror", lambda error: problems.page_errors.append(str(error)))
    return page


def wait_until_ready(page: Page) -> None:
    """Wait until the drawing page has read GET /models and the cards and shows the chosen model's layers."""
    page.wait_for_function("() => window.mnistPage && window.mnistPage.ready === true")
