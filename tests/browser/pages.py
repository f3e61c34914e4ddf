"""A browser page that records what went wrong in it (console errors, uncaught exceptions, CSP violations), and
what the tests do on the drawing page: draw strokes, wait for the answer, read GET /models, switch the model."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.sync_api import Browser, ConsoleMessage, Page, ViewportSize

# Strokes in canvas units: (0, 0) top left, (1, 1) bottom right.
ONE = [[(0.5, 0.15), (0.5, 0.85)]]
SEVEN = [[(0.25, 0.2), (0.75, 0.2), (0.42, 0.85)]]
FOUR = [[(0.58, 0.14), (0.24, 0.6), (0.78, 0.6)], [(0.6, 0.36), (0.6, 0.88)]]
DOT = [[(0.5, 0.5)]]  # a tap: one round brush mark, no digit

DESKTOP: ViewportSize = {"width": 1280, "height": 900}
PHONE: ViewportSize = {"width": 390, "height": 844}

# True once the page has sent n stroke ends or files and answered the latest of them.
ANSWERED = "(n) => window.mnistPage.finals >= n && window.mnistPage.answered === window.mnistPage.finals"
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


# ---- the drawing page ---------------------------------------------------------------------------------


def draw(page: Page, strokes: list[list[tuple[float, float]]]) -> None:
    """Draw polylines with the mouse in many small steps, the way a hand moves (a one-point stroke is a tap)."""
    page.get_by_test_id("draw-canvas").scroll_into_view_if_needed()
    box = page.get_by_test_id("draw-canvas").bounding_box()
    assert box is not None

    def at(x: float, y: float) -> tuple[float, float]:
        return box["x"] + x * box["width"], box["y"] + y * box["height"]

    for stroke in strokes:
        page.mouse.move(*at(*stroke[0]))
        page.mouse.down()
        for point in stroke[1:]:
            page.mouse.move(*at(*point), steps=15)
        page.mouse.up()


def finals(page: Page) -> int:
    """How many stroke ends and files the page has sent so far."""
    return page.evaluate("() => window.mnistPage.finals")


def wait_for_answer(page: Page, count: int) -> None:
    """Wait until the page has sent `count` stroke ends or files and shown the answer to the last one."""
    page.wait_for_function(ANSWERED, arg=count)


def draw_and_wait(page: Page, strokes: list[list[tuple[float, float]]]) -> None:
    before = finals(page)
    draw(page, strokes)
    wait_for_answer(page, before + len(strokes))


def served(page: Page) -> dict:
    """GET /models: the default model's name and every model with its outputs in forward order."""
    return page.request.get("/models").json()


def model_named(listing: dict, name: str) -> dict:
    return next(model for model in listing["models"] if model["name"] == name)


def grid_outputs(model: dict) -> list[dict]:
    """The outputs the page draws as grids: all but the ten class scores (logits, probabilities), its bars."""
    return [o for o in model["outputs"] if not (o["kind"] in ("dense", "probabilities") and o["shape"] == [10])]


def grid_names(model: dict) -> list[str]:
    return [output["name"] for output in grid_outputs(model)]


def choose_model(page: Page, name: str) -> None:
    """Pick a model in the switch and wait for its layers to replace the grids."""
    from playwright.sync_api import expect

    page.get_by_test_id("model-select").select_option(name)
    expect(page.get_by_test_id("feature-maps").locator("canvas").first).to_have_attribute(
        "data-layer", grid_names(model_named(served(page), name))[0]
    )
