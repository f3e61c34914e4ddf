"""The drawing page at `GET /` in a real Chromium against a real server on the committed models.

The page names no layer and no model: every test reads them from GET /models, as the page does.
"""

from __future__ import annotations

import json
import os
import re
import statistics
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.browser.pages import (
    DOT,
    FOUR,
    ONE,
    SEVEN,
    PageProblems,
    choose_model,
    draw,
    draw_and_wait,
    finals,
    grid_names,
    grid_outputs,
    model_named,
    served,
    wait_for_answer,
    wait_until_ready,
)
from tests.browser.repositories import THIRD_MODEL
from tests.paths import REPO_ROOT, mnist_test_files
from tests.service.images import encode

sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the dev extra)")
expect = sync_api.expect
Page = sync_api.Page

STATIC_FILES = ["app.js", "layers.js", "answers.js", "explain.js", "style.css", "favicon.svg"]
MNIST_INDEX = 1  # a 2 in the MNIST test set
# An update takes ~30-50 ms on an idle machine and several times that on a busy one (Chromium, the server and
# other work share 2 cores). 1 s is 20-30x: it fails on an update slowed to a second, not on a loaded box;
# latency.json keeps the figures themselves.
LATENCY_BOUND_MS = 1000
BACKGROUND = (23, 26, 35)  # style.css' panel colour, behind and between a layer's tiles
EDGE_PX = 3  # a grid's tiles end this close to its frame's right edge: the 2 px gap, and rounding

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
# How a layer's grid fills its canvas: for each run of rows holding tiles (a row of tiles; a vector's strip is
# one run), where tile pixels start and end on its first line, against the panel colour between tiles.
GRID_ROWS = """(canvas, background) => {
  const { width, height } = canvas;
  const { data } = canvas.getContext("2d").getImageData(0, 0, width, height);
  const isTile = (x, y) => {
    const i = 4 * (y * width + x);
    return data[i] !== background[0] || data[i + 1] !== background[1] || data[i + 2] !== background[2];
  };
  const runs = [];
  let inRun = false;
  for (let y = 0; y < height; y++) {
    let first = -1, last = -1;
    for (let x = 0; x < width; x++) if (isTile(x, y)) { if (first < 0) first = x; last = x; }
    if (first >= 0 && !inRun) runs.push({ y, first, last });
    inRun = first >= 0;
  }
  const box = canvas.getBoundingClientRect();
  const frame = canvas.parentElement.getBoundingClientRect();
  return { width, runs, right: box.right, frameRight: frame.right, frameWidth: frame.width };
}"""


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


def shown_layers(page: Page) -> list[str]:
    canvases = page.get_by_test_id("feature-maps").locator("canvas")
    return canvases.evaluate_all("(all) => all.map((c) => c.dataset.layer)")


def assert_layers_painted(page: Page, names: list[str]) -> None:
    for layer in names:
        stats = canvas_stats(page, f"[data-testid=feature-maps] canvas[data-layer={layer}]")
        # Empty tiles are two flat colours; painted maps run through the colour map.
        assert stats["variance"] > 0 and stats["colours"] > 16, f"{layer}: {stats}"


def assert_on_screen(page: Page, test_id: str) -> None:
    """The whole element is inside the viewport (to a pixel: scrolling lands on fractions)."""
    box = page.get_by_test_id(test_id).bounding_box()
    size = page.viewport_size
    assert box is not None and size is not None, f"{test_id} is not shown"
    inside = box["x"] >= -1 and box["y"] >= -1 and box["x"] + box["width"] <= size["width"] + 1
    assert inside and box["y"] + box["height"] <= size["height"] + 1, f"{test_id} at {box} on a {size} screen"


def assert_grids_fill_their_rows(page: Page) -> None:
    """Every layer's canvas spans its frame, and every row of tiles but the last ends at the right edge."""
    for layer in shown_layers(page):
        grid = page.locator(f"canvas[data-layer={layer}]").evaluate(GRID_ROWS, list(BACKGROUND))
        assert grid["frameWidth"] > 100, f"{layer}: a frame {grid['frameWidth']} px wide"
        right, frame_right = grid["right"], grid["frameRight"]
        assert abs(right - frame_right) <= 1, f"{layer}: the canvas ends at {right}, its frame at {frame_right}"
        runs = grid["runs"]
        assert runs, f"{layer}: no tiles"
        full = runs[:-1] if len(runs) > 1 else runs  # the last row may be short, unless it is the only one
        for run in full:
            where = f"{layer}: the row of tiles at y={run['y']}"
            assert run["last"] >= grid["width"] - EDGE_PX, f"{where} ends at {run['last']} of {grid['width']}"
            assert run["first"] <= EDGE_PX, f"{where} starts at {run['first']}"


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
    listing = served(page)
    names = grid_names(model_named(listing, listing["default_model"]))
    draw_and_wait(page, SEVEN)
    assert shown_layers(page) == names
    assert_layers_painted(page, names)
    assert canvas_stats(page, "[data-testid=input-preview]")["variance"] > 0


def test_layers_are_labelled_with_name_shape_and_type(page: Page) -> None:
    listing = served(page)
    name = listing["default_model"]
    card = page.request.get(f"/models/{name}").json()
    types = {layer["name"]: layer["type"] for layer in card["layers"]}
    captions = page.get_by_test_id("feature-maps").locator("figcaption")
    outputs = grid_outputs(model_named(listing, name))
    expect(captions).to_have_count(len(outputs))
    for i, output in enumerate(outputs):
        expect(captions.nth(i)).to_contain_text(output["name"])
        expect(captions.nth(i)).to_contain_text(" × ".join(map(str, output["shape"])))
        expect(captions.nth(i)).to_contain_text(types[output["name"]])


def test_click_feature_map_enlarges_it_with_channel_and_range(page: Page) -> None:
    listing = served(page)
    layer = grid_outputs(model_named(listing, listing["default_model"]))[2]
    channels = layer["shape"][0]
    draw_and_wait(page, SEVEN)
    page.locator(f"canvas[data-layer={layer['name']}]").click(position={"x": 5, "y": 5})
    dialog = page.locator("dialog#detail")
    expect(dialog).to_be_visible()
    expect(dialog.locator("h3")).to_have_text(f"{layer['name']} · channel 1 of {channels}")
    expect(dialog).to_contain_text("Whole layer:")
    page.keyboard.press("ArrowRight")
    expect(dialog.locator("h3")).to_have_text(f"{layer['name']} · channel 2 of {channels}")
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()


# ---- models: the switch and compare -------------------------------------------------------------------


def test_switch_lists_every_model_with_the_default_chosen(page: Page) -> None:
    listing = served(page)
    select = page.get_by_test_id("model-select")
    options = select.locator("option").evaluate_all("(all) => all.map((o) => o.value)")
    assert options == [model["name"] for model in listing["models"]]
    expect(select).to_have_value(listing["default_model"])
    default = model_named(listing, listing["default_model"])
    about = page.get_by_test_id("model-about")
    expect(about).to_contain_text(default["architecture"]["description"])
    if default["test_accuracy"] is not None:
        expect(about).to_contain_text(f"{default['test_accuracy'] * 100:.2f}% right on the MNIST test set")


def test_switch_model_shows_its_layers_for_the_same_drawing(page: Page) -> None:
    listing = served(page)
    others = [m["name"] for m in listing["models"] if m["name"] != listing["default_model"]]
    assert others, "a second model is served"
    draw_and_wait(page, SEVEN)
    for name in [*others, listing["default_model"]]:
        before = finals(page)
        with page.expect_request(lambda request, name=name: f"model={name}&" in request.url):
            choose_model(page, name)  # the drawing on the pad is sent again, to the chosen model
        wait_for_answer(page, before + 1)
        assert shown_layers(page) == grid_names(model_named(listing, name)), name
        assert_layers_painted(page, grid_names(model_named(listing, name)))
        expect(page.get_by_test_id("prediction")).to_have_text(re.compile(r"^[0-9?]$"))


def test_model_choice_and_compare_survive_a_reload(page: Page) -> None:
    listing = served(page)
    other = next(m["name"] for m in listing["models"] if m["name"] != listing["default_model"])
    choose_model(page, other)
    page.get_by_test_id("compare").check()
    page.reload()
    wait_until_ready(page)
    expect(page.get_by_test_id("model-select")).to_have_value(other)
    expect(page.get_by_test_id("compare")).to_be_checked()
    assert shown_layers(page) == grid_names(model_named(listing, other))


def test_compare_shows_every_models_digit_and_bars_for_one_drawing(page: Page) -> None:
    listing = served(page)
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url) if request.method == "POST" else None)
    page.get_by_test_id("compare").check()
    draw_and_wait(page, SEVEN)
    for model in listing["models"]:
        card = page.locator(f".answer-card[data-model={model['name']}]")
        expect(card).to_be_visible()
        expect(card.locator(".card-name")).to_contain_text(model["name"])
        expect(card.locator(".digit")).to_have_text(re.compile(r"^[0-9?]$"))
        bars = card.locator(".bars li")
        expect(bars).to_have_count(10)
        values = bars.locator(".bar-value").all_inner_texts()
        assert all(value.endswith("%") for value in values), f"{model['name']}: {values}"
        assert any(f"model={model['name']}" in url for url in asked), f"nothing was sent to {model['name']}"
    # Only the default model is known to be trained here (the dev repository's second one is random).
    expect(page.locator(f".answer-card[data-model={listing['default_model']}] .digit")).to_have_text("7")
    said = re.compile(r"^(Both|All \d+) models say \d\.$|^They differ: |^(Neither|No) model is sure\.$")
    expect(page.get_by_test_id("agreement")).to_have_text(said)


def test_compare_off_shows_only_the_chosen_model(page: Page) -> None:
    listing = served(page)
    draw_and_wait(page, SEVEN)
    cards = page.locator(".answer-card")
    expect(cards).to_have_count(len(listing["models"]))
    expect(page.locator(".answer-card:visible")).to_have_count(1)
    expect(page.locator(f".answer-card[data-model={listing['default_model']}]")).to_be_visible()
    expect(page.get_by_test_id("agreement")).to_be_hidden()


def test_a_model_with_other_layer_names_renders(three_model_page: Page) -> None:
    page = three_model_page
    listing = served(page)
    assert len(listing["models"]) == 3
    third = model_named(listing, THIRD_MODEL)
    seen = {name for model in listing["models"] if model is not third for name in grid_names(model)}
    assert not seen & set(grid_names(third)), "the third model's layers are named as another's"
    choose_model(page, THIRD_MODEL)
    assert shown_layers(page) == grid_names(third)
    draw_and_wait(page, SEVEN)
    assert_layers_painted(page, grid_names(third))
    assert_grids_fill_their_rows(page)
    before = finals(page)
    page.get_by_test_id("compare").check()
    wait_for_answer(page, before + 1)
    expect(page.locator(".answer-card:visible")).to_have_count(3)
    expect(page.locator(f".answer-card[data-model={THIRD_MODEL}] .bars li")).to_have_count(10)


# ---- layout -------------------------------------------------------------------------------------------


def test_layer_grids_fill_their_rows_at_desktop_width(page: Page) -> None:
    for model in served(page)["models"]:
        choose_model(page, model["name"])
        assert_grids_fill_their_rows(page)


def test_layer_grids_fill_their_rows_on_a_phone(phone_page: Page) -> None:
    for model in served(phone_page)["models"]:
        choose_model(phone_page, model["name"])
        assert_grids_fill_their_rows(phone_page)


def test_phone_shows_the_answer_in_view_while_drawing(phone_page: Page) -> None:
    canvas = phone_page.get_by_test_id("draw-canvas")
    answer = phone_page.get_by_test_id("pad-answer")
    draw_and_wait(phone_page, SEVEN)
    expect(answer).to_contain_text("7")
    for block in ("start", "end"):  # the canvas at the top of the screen, then at the bottom
        canvas.evaluate("(element, block) => element.scrollIntoView({ block })", block)
        assert_on_screen(phone_page, "draw-canvas")
        assert_on_screen(phone_page, "pad-answer")


def test_phone_hides_the_drop_hint_and_keeps_the_file_picker(phone_page: Page) -> None:
    expect(phone_page.get_by_test_id("drop-hint")).to_be_hidden()
    expect(phone_page.get_by_text("Choose an image…")).to_be_visible()


def test_desktop_shows_the_drop_hint(page: Page) -> None:
    expect(page.get_by_test_id("drop-hint")).to_be_visible()
    expect(page.get_by_test_id("pad-answer")).to_be_hidden()


# ---- an unsure answer ---------------------------------------------------------------------------------


def test_dot_is_shown_as_unsure(page: Page) -> None:
    before = finals(page)
    with page.expect_response(lambda response: "/feature-maps" in response.url and response.ok) as answer:
        draw(page, DOT)
    wait_for_answer(page, before + 1)
    body = answer.value.json()
    if "unsure" not in body:
        pytest.xfail("the service does not flag answers yet: no `unsure` in POST /feature-maps' answer")
    assert body["unsure"] is True, f"a dot is answered {body['digit']} ({body['confidence']:.2f}) and not flagged"
    prediction = page.get_by_test_id("prediction")
    expect(prediction).to_have_text("?")
    expect(prediction).to_have_attribute("data-unsure", "true")
    reasons = body["unsure_reasons"]
    expect(page.locator(".answer-card:visible .confidence")).to_contain_text(f"Not sure — {', '.join(reasons)}")


# ---- controls ----------------------------------------------------------------------------------------


def test_clear_resets_prediction_and_canvas(page: Page) -> None:
    draw_and_wait(page, SEVEN)
    page.get_by_test_id("clear").click()
    expect(page.get_by_test_id("prediction")).to_have_text("")
    assert canvas_stats(page, "[data-testid=draw-canvas]")["variance"] == 0
    assert canvas_stats(page, "[data-testid=input-preview]")["variance"] == 0
    for layer in shown_layers(page):
        assert canvas_stats(page, f"canvas[data-layer={layer}]")["colours"] <= 2, layer


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
    for path in ("/", *(f"/static/{name}" for name in STATIC_FILES)):
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


def test_csp_blocks_nothing_while_drawing_uploading_enlarging_and_comparing(page: Page, problems: PageProblems) -> None:
    listing = served(page)
    draw_and_wait(page, SEVEN)
    data, _ = mnist_png(MNIST_INDEX)
    upload_and_wait(page, "digit.png", "image/png", data)
    page.get_by_test_id("feature-maps").locator("canvas").first.click(position={"x": 5, "y": 5})
    page.keyboard.press("Escape")
    others = [m["name"] for m in listing["models"] if m["name"] != listing["default_model"]]
    for name in [*others, listing["default_model"]]:
        before = finals(page)
        choose_model(page, name)
        wait_for_answer(page, before + 1)
    before = finals(page)
    page.get_by_test_id("compare").check()
    wait_for_answer(page, before + 1)
    page.get_by_test_id("clear").click()
    assert page.evaluate("() => window.__cspViolations") == []
    assert problems.console_errors == []
    assert problems.page_errors == []


def stroke_timings(page: Page) -> list[float]:
    """Milliseconds from stroke end to painted answer for five drawings, after a warm-up one."""
    draw_and_wait(page, ONE)  # warm-up: the first request pays for connections and JIT
    timings = []
    for strokes in (SEVEN, ONE, SEVEN, ONE, SEVEN):
        page.get_by_test_id("clear").click()
        draw_and_wait(page, strokes)
        timings.append(page.evaluate("() => window.mnistPage.lastUpdateMs"))
    return timings


def test_update_after_stroke_end_is_fast(page: Page, artifacts_dir: Path) -> None:
    timings = stroke_timings(page)
    page.get_by_test_id("clear").click()
    page.get_by_test_id("compare").check()
    compared = stroke_timings(page)  # every model's answer painted, the chosen one's layers too
    median, median_compared = statistics.median(timings), statistics.median(compared)
    figures = {"stroke_end_to_render_ms": timings, "median": median}
    figures |= {"compare_ms": compared, "compare_median": median_compared}
    (artifacts_dir / "latency.json").write_text(json.dumps(figures))
    print(f"update after stroke end: median {median:.1f} ms, all {[round(t, 1) for t in timings]}")
    print(f"comparing every model: median {median_compared:.1f} ms, all {[round(t, 1) for t in compared]}")
    assert median < LATENCY_BOUND_MS
    assert median_compared < LATENCY_BOUND_MS


def test_screenshot_compares_the_models_on_a_drawn_digit(page: Page, artifacts_dir: Path) -> None:
    listing = served(page)
    other = next(m["name"] for m in listing["models"] if m["name"] != listing["default_model"])
    choose_model(page, other)  # the second model's layers, with every model's answer
    page.get_by_test_id("compare").check()
    draw_and_wait(page, FOUR)
    expect(page.locator(f".answer-card[data-model={listing['default_model']}] .digit")).to_have_text("4")
    path = artifacts_dir / "page.png"
    page.screenshot(path=path, full_page=True)
    assert path.stat().st_size > 10_000
    if os.environ.get("UPDATE_DOCS_SCREENSHOT"):  # the README's picture: UPDATE_DOCS_SCREENSHOT=1 pytest -k screenshot
        page.screenshot(path=REPO_ROOT / "docs" / "screenshot.png", full_page=True)
