"""/docs and /redoc in a real Chromium with no internet: every request to another host is aborted and recorded."""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from tests.browser.pages import DESKTOP, PageProblems, new_page
from tests.reliability.processes import LiveService
from tests.service.images import draw_seven, encode

sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the dev extra)")
expect = sync_api.expect
Browser = sync_api.Browser
Locator = sync_api.Locator
Page = sync_api.Page
Route = sync_api.Route


@pytest.fixture
def blocked() -> list[str]:
    """The URLs the page asked for on hosts other than 127.0.0.1 (each request aborted)."""
    return []


@pytest.fixture
def offline_page(
    browser: Browser, committed_service: LiveService, problems: PageProblems, blocked: list[str]
) -> Iterator[Page]:
    """A blank page that reaches only the service: any other host fails as it would with no internet."""
    page = new_page(browser, committed_service.url, problems, DESKTOP)

    def only_loopback(route: Route) -> None:
        if urlsplit(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort("internetdisconnected")

    page.route("**/*", only_loopback)
    yield page
    page.context.close()


def assert_self_contained(page: Page, problems: PageProblems, blocked: list[str]) -> None:
    """Nothing asked of another host, nothing blocked by the CSP, no error in the console or the page."""
    assert blocked == []
    assert page.evaluate("() => window.__cspViolations") == []
    assert problems.console_errors == []
    assert problems.page_errors == []


def operation(page: Page, method: str, path: str) -> Locator:
    """Swagger UI's block for one operation."""
    return page.locator(f".opblock-{method}", has=page.locator(f'.opblock-summary-path[data-path="{path}"]'))


def test_docs_lists_every_operation_with_no_internet(
    offline_page: Page, problems: PageProblems, blocked: list[str]
) -> None:
    paths = offline_page.request.get("/openapi.json").json()["paths"]
    offline_page.goto("/docs")
    expect(operation(offline_page, "post", "/predict")).to_be_visible()
    expect(offline_page.locator(".opblock")).to_have_count(sum(len(operations) for operations in paths.values()))
    expect(offline_page.locator(".info .title")).to_contain_text("MNIST convnet")
    assert_self_contained(offline_page, problems, blocked)


def test_docs_try_it_out_predicts_an_uploaded_digit(
    offline_page: Page, problems: PageProblems, blocked: list[str]
) -> None:
    offline_page.goto("/docs")
    predict = operation(offline_page, "post", "/predict")
    predict.locator(".opblock-summary").click()
    predict.get_by_role("button", name="Try it out").click()
    digit = {"name": "seven.png", "mimeType": "image/png", "buffer": encode(draw_seven())}
    predict.locator("input[type=file]").set_input_files(files=[digit])
    with offline_page.expect_response(lambda response: urlsplit(response.url).path == "/predict") as answer:
        predict.get_by_role("button", name="Execute").click()

    assert answer.value.request.method == "POST"
    assert answer.value.status == 200
    assert answer.value.json()["digit"] == 7
    shown = predict.locator(".live-responses-table tr.response")  # what the page shows of that answer
    expect(shown.locator(".response-col_status")).to_have_text("200")
    expect(shown.locator(".response-col_description")).to_contain_text('"digit": 7')
    assert_self_contained(offline_page, problems, blocked)


def test_redoc_renders_and_searches_with_no_internet(
    offline_page: Page, problems: PageProblems, blocked: list[str]
) -> None:
    offline_page.goto("/redoc")
    expect(offline_page.get_by_role("heading", name="MNIST convnet")).to_be_visible()
    expect(offline_page.get_by_role("heading", name=re.compile(r"Predict Digit$"))).to_be_visible()
    offline_page.get_by_placeholder("Search...").fill("batch")  # answered by ReDoc's search worker
    results = offline_page.locator('[data-role="search:results"]')
    expect(results.get_by_role("menuitem", name="Predict Digits")).to_be_visible()
    expect(offline_page.get_by_alt_text("redocly logo")).to_be_visible()  # ReDoc's own asset, served here too
    assert_self_contained(offline_page, problems, blocked)
