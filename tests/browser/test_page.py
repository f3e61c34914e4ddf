"""The drawing page at `GET /` in a real Chromium against a real server on the committed model."""

from __future__ import annotations

import json
import os
import re
import statistics
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.browser.pages import PageProblems
from tests.paths import REPO_ROOT, mnist_test_files
from tests.service.images import encode

sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the dev extra)")
expect = sync_api.expect
Page = sync_api.Page

# Strokes in canvas units: (0, 0) top left, (1, 1) bottom right.
ONE = [[(0.5, 0.15), (0.5, 0.85)]]
SEVEN = [[(0.25, 0.2), (0.75, 0.2), (0.42, 0.85)]]
FOUR = [[(0.58, 0.14), (0.24, 0.6), (0.78, 0.6)], [(0.6, 0.36), (0.6, 0.88)]]
LAYERS = ["conv1", "pool1", "conv2", "pool2", "conv3", "flatten"]
MNIST_INDEX = 1  # a 2 in the MNIST test set
# An update takes ~30-50 ms on an idle machine and several times that on a busy one (Chromium, the server and
# other work share 2 cores). 1 s is 20-30x: it fails on an update slowed to a second, not on a loaded box;
# latency.json keeps the figures themselves.
LATENCY_BOUND_MS = 1000

# True once the page has sent n stroke ends or files and answered the latest of them.
ANSWERED = "(n) => window.mnistPage.finals >= n && window.mnistPage.answered === window.mnistPage.finals"
# Pixel statistics of a canvas: variance of R+G+B, and the number of distinct colours.
CANVAS_STATS = """(canvas) => {
  const { data } = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height);
  let sum = 0, squares = 0;
  const colours = new Set();
  for (let i = 0; i < data.length; i += 4) {
    const v = data[i] + data[i + 1] + data[i + 2];
    sum += v;
    squares += v * v;
    colours.add((data[i] << 16) | (data[i + 1] << 8) | data[i + 2]);
  }
  const n = data.length / 4;
  return { variance: squares / n - (sum / n) ** 2, colours: colours.size };
}"""


def draw(page: Page, strokes: list[list[tuple[float, float]]]) -> None:
    """Draw polylines with the mouse in many small steps, the way a hand moves."""
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


def upload_and_wait(page: Page, name: str, mime_type: str, data: bytes) -> None:
    before = finals(page)
    page.get_by_test_id("file-input").set_input_files(files=[{"name": name, "mimeType": mime_type, "buffer": data}])
    wait_for_answer(page, before + 1)


def canvas_stats(page: Page, selector: str) -> dict[str, float]:
    return page.locator(selector).evaluate(CANVAS_STATS)


def mnist_png(index: int) -> tuple[bytes, int]:
    """A test-set digit as a PNG, and its label."""
    from training.data import load_split

    split = load_split("test", mnist_test_files(), download=False)
    return encode(Image.fromarray(split.images[index])), int(split.labels[index])


def blank_png() -> bytes:
    return encode(Image.fromarray(np.zeros((64, 64), np.uint8)))


# ---- predictions -------------------------------------------------------------------------------------


def test_draw_one_predicts_1(page: Page) -> None:
    draw_and_wait(page, ONE)
    expect(page.get_by_test_id("prediction")).to_have_text("1")


def test_draw_seven_predicts_7(page: Page) -> None:
    draw_and_wait(page, SEVEN)
    expect(page.get_by_test_id("prediction")).to_have_text("7")


def test_upload_mnist_digit_predicts_its_label(page: Page) -> None:
    data, label = mnist_png(MNIST_INDEX)
    upload_and_wait(page, "digit.png", "image/png", data)
    expect(page.get_by_test_id("prediction")).to_have_text(str(label))
    assert canvas_stats(page, "[data-testid=input-preview]")["variance"] > 0


def test_probabilities_show_ten_bars_with_the_prediction_highlighted(page: Page) -> None:
    draw_and_wait(page, SEVEN)
    bars = page.get_by_test_id("probabilities").locator("li")
    expect(bars).to_have_count(10)
    expect(bars.nth(7)).to_have_class(re.compile(r"\bbest\b"))
    percent = float(bars.nth(7).locator(".bar-value").inner_text().rstrip("%"))
    assert percent > 50


# ---- feature maps ------------------------------------------------------------------------------------


def test_every_layer_renders_non_blank_maps(page: Page) -> None:
    draw_and_wait(page, SEVEN)
    canvases = page.get_by_test_id("feature-maps").locator("canvas")
    assert canvases.evaluate_all("(all) => all.map((c) => c.dataset.layer)") == LAYERS
    for layer in LAYERS:
        stats = canvas_stats(page, f"[data-testid=feature-maps] canvas[data-layer={layer}]")
        # Empty tiles are two flat colours; painted maps run through the colour map.
        assert stats["variance"] > 0 and stats["colours"] > 16, f"{layer}: {stats}"
    assert canvas_stats(page, "[data-testid=input-preview]")["variance"] > 0


def test_layers_are_labelled_with_name_and_shape(page: Page) -> None:
    captions = page.get_by_test_id("feature-maps").locator("figcaption")
    expect(captions.nth(0)).to_contain_text("conv1")
    expect(captions.nth(0)).to_contain_text("32 × 26 × 26")
    expect(captions.nth(5)).to_contain_text("flatten")
    expect(captions.nth(5)).to_contain_text("1152")


def test_click_feature_map_enlarges_it_with_channel_and_range(page: Page) -> None:
    draw_and_wait(page, SEVEN)
    page.locator("canvas[data-layer=conv2]").click(position={"x": 5, "y": 5})
    dialog = page.locator("dialog#detail")
    expect(dialog).to_be_visible()
    expect(dialog.locator("h3")).to_have_text("conv2 · channel 1 of 64")
    expect(dialog).to_contain_text("Whole layer: 0.00 to")
    page.keyboard.press("ArrowRight")
    expect(dialog.locator("h3")).to_have_text("conv2 · channel 2 of 64")
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()


# ---- controls ----------------------------------------------------------------------------------------


def test_clear_resets_prediction_and_canvas(page: Page) -> None:
    draw_and_wait(page, SEVEN)
    page.get_by_test_id("clear").click()
    expect(page.get_by_test_id("prediction")).to_have_text("")
    assert canvas_stats(page, "[data-testid=draw-canvas]")["variance"] == 0
    assert canvas_stats(page, "[data-testid=input-preview]")["variance"] == 0
    assert canvas_stats(page, "canvas[data-layer=conv1]")["colours"] <= 2


def test_clear_is_reachable_by_keyboard(page: Page) -> None:
    draw_and_wait(page, SEVEN)
    for _ in range(10):
        page.keyboard.press("Tab")
        if page.evaluate("() => document.activeElement.dataset.testid") == "clear":
            break
    else:
        pytest.fail("Tab never reached the clear button")
    outline = page.evaluate("() => getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none", "the focused button shows no focus ring"
    page.keyboard.press("Enter")
    expect(page.get_by_test_id("prediction")).to_have_text("")


def test_phone_width_has_no_horizontal_overflow(phone_page: Page) -> None:
    draw_and_wait(phone_page, SEVEN)
    expect(phone_page.get_by_test_id("prediction")).to_have_text("7")
    widths = phone_page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1], f"page is {widths[0]} px wide on a {widths[1]} px screen"


# ---- errors ------------------------------------------------------------------------------------------


def test_non_image_file_shows_the_api_message(page: Page) -> None:
    upload_and_wait(page, "notes.txt", "text/plain", b"not a picture")
    status = page.get_by_test_id("status")
    expect(status).to_contain_text("Not a readable image")
    expect(status).to_have_class(re.compile(r"\berror\b"))
    expect(page.get_by_test_id("prediction")).to_have_text("")


def test_blank_image_says_no_digit_found(page: Page) -> None:
    upload_and_wait(page, "blank.png", "image/png", blank_png())
    expect(page.get_by_test_id("status")).to_contain_text("No digit found")


# ---- security and speed ------------------------------------------------------------------------------


def test_page_and_static_files_carry_the_security_headers(page: Page) -> None:
    for path in ("/", "/static/app.js", "/static/style.css", "/static/favicon.svg"):
        headers = page.request.get(path).headers
        assert headers["content-security-policy"].startswith("default-src 'self'"), path
        assert headers["x-content-type-options"] == "nosniff", path
        assert headers["referrer-policy"] == "no-referrer", path


def test_page_markup_has_no_inline_script_style_or_handlers(page: Page) -> None:
    html = page.request.get("/").text()
    assert not re.search(r"<script(?![^>]*\bsrc=)", html), "inline <script>"
    assert "<style" not in html
    assert not re.search(r"\sstyle=", html), "style attribute"
    assert not re.search(r"\son[a-z]+=", html), "inline event handler"


def test_csp_blocks_nothing_while_drawing_uploading_and_enlarging(page: Page, problems: PageProblems) -> None:
    draw_and_wait(page, SEVEN)
    data, _ = mnist_png(MNIST_INDEX)
    upload_and_wait(page, "digit.png", "image/png", data)
    page.locator("canvas[data-layer=conv1]").click(position={"x": 5, "y": 5})
    page.keyboard.press("Escape")
    page.get_by_test_id("clear").click()
    assert page.evaluate("() => window.__cspViolations") == []
    assert problems.console_errors == []
    assert problems.page_errors == []


def test_update_after_stroke_end_is_fast(page: Page, artifacts_dir: Path) -> None:
    draw_and_wait(page, ONE)  # warm-up: the first request pays for connections and JIT
    timings = []
    for strokes in (SEVEN, ONE, SEVEN, ONE, SEVEN):
        page.get_by_test_id("clear").click()
        draw_and_wait(page, strokes)
        timings.append(page.evaluate("() => window.mnistPage.lastUpdateMs"))
    median = statistics.median(timings)
    (artifacts_dir / "latency.json").write_text(json.dumps({"stroke_end_to_render_ms": timings, "median": median}))
    print(f"update after stroke end: median {median:.1f} ms, all {[round(t, 1) for t in timings]}")
    assert median < LATENCY_BOUND_MS


def test_screenshot_shows_a_drawn_digit_with_every_layer(page: Page, artifacts_dir: Path) -> None:
    draw_and_wait(page, FOUR)
    expect(page.get_by_test_id("prediction")).to_have_text("4")
    path = artifacts_dir / "page.png"
    page.screenshot(path=path, full_page=True)
    assert path.stat().st_size > 10_000
    if os.environ.get("UPDATE_DOCS_SCREENSHOT"):  # the README's picture: UPDATE_DOCS_SCREENSHOT=1 pytest -k screenshot
        page.screenshot(path=REPO_ROOT / "docs" / "screenshot.png", full_page=True)
