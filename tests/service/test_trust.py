"""unsure and unsure_reasons: ink that is no digit (a click, a dash, a blob, a scribble) and answers the model is
unsure of are flagged; drawn and MNIST digits are not.

The random test model's probabilities are near uniform, so the tests on `client` read only the ink's reasons;
the committed models answer the rest (`committed_client`).
"""

from __future__ import annotations

import re

import httpx
import numpy as np
import pytest
from PIL import Image, ImageDraw

from service import trust
from service.config import Settings
from service.preprocess import mnist_recipe_with_ink, prepare_digit_with_ink
from tests.service.images import (
    IMAGE_KINDS,
    draw_seven,
    encode,
    pad_blob,
    pad_click,
    pad_dash,
    pad_drawing,
    pad_scribble,
    read_mnist_test_images,
)

pytestmark = pytest.mark.anyio

DEFAULT_MAX_PIXELS: int = Settings.model_fields["max_image_pixels"].default

INK_REASONS = {"too little ink", "a blob, not a digit", "a line, not a digit", "a scribble, not a digit"}
LOW_CONFIDENCE = re.compile(r"low confidence \((0\.\d\d|1\.00)\)")
NOT_DIGITS = {
    "click": (pad_click, "too little ink"),
    "dash": (pad_dash, "a line, not a digit"),
    "blob": (pad_blob, "a blob, not a digit"),
    "scribble": (pad_scribble, "a scribble, not a digit"),
}
COMMITTED_MODELS = ("mnist_cnn", "mnist_modern")


def ink_of(image: Image.Image) -> trust.InkStats:
    return prepare_digit_with_ink(encode(image), max_pixels=DEFAULT_MAX_PIXELS)[1]


def ink_reasons_only(reasons: list[str]) -> list[str]:
    return [reason for reason in reasons if not LOW_CONFIDENCE.fullmatch(reason)]


# --- the reasons are the documented strings (the page shows them) ----------------------------------------------


def test_reasons_are_the_documented_strings() -> None:
    assert {trust.TOO_LITTLE_INK, trust.BLOB, trust.LINE, trust.SCRIBBLE} == INK_REASONS
    assert trust.LOW_CONFIDENCE.format(0.41) == "low confidence (0.41)"


def test_reasons_name_low_confidence_with_its_value() -> None:
    ink = ink_of(draw_seven())  # digit ink: only the confidence speaks against it
    probabilities = np.array([0.41, 0.39, 0.2, 0, 0, 0, 0, 0, 0, 0], np.float32)
    assert trust.reasons(ink, probabilities)[-1] == "low confidence (0.41)"


def test_reasons_trust_confident_answer_on_digit_ink() -> None:
    ink = ink_of(draw_seven())
    assert trust.reasons(ink, np.array([0.99] + [0.001] * 9, np.float32)) == []


# --- the measurements, on shapes whose answer is known ---------------------------------------------------------


def test_measure_ink_finds_a_disc_thick_and_round() -> None:
    ink = ink_of(pad_blob(120, 120))
    assert 0.35 < ink.thickness < 0.42 and ink.elongation < 1.1


def test_measure_ink_counts_the_loops_of_a_ring_and_an_eight() -> None:
    ring, eight = Image.new("L", (200, 200), 255), Image.new("L", (200, 200), 255)
    ImageDraw.Draw(ring).ellipse([40, 20, 160, 180], outline=0, width=14)
    ImageDraw.Draw(eight).ellipse([60, 10, 140, 100], outline=0, width=14)
    ImageDraw.Draw(eight).ellipse([50, 90, 150, 190], outline=0, width=14)
    assert (ink_of(ring).loops, ink_of(eight).loops) == (1, 2)


@pytest.mark.parametrize(
    ("stroke", "tilt"),
    [([(160, 40), (160, 280)], 0.0), ([(40, 160), (280, 160)], 90.0), ([(40, 40), (280, 280)], 45.0)],
    ids=["upright", "across", "diagonal"],
)
def test_measure_ink_reads_a_bar_tilt_from_vertical(stroke: list[tuple[float, float]], tilt: float) -> None:
    ink = ink_of(pad_drawing(stroke))
    assert ink.elongation > 3 and abs(ink.tilt - tilt) < 2


# --- ink alone: non-digits flagged, digits not ------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(NOT_DIGITS))
def test_ink_reasons_name_what_a_non_digit_is(kind: str) -> None:
    make, reason = NOT_DIGITS[kind]
    assert trust.ink_reasons(ink_of(make())) == [reason]


@pytest.mark.parametrize("kind", sorted(IMAGE_KINDS))
def test_ink_reasons_find_nothing_against_drawn_seven(kind: str) -> None:
    ink = prepare_digit_with_ink(IMAGE_KINDS[kind](), max_pixels=DEFAULT_MAX_PIXELS)[1]
    assert trust.ink_reasons(ink) == []


def test_ink_reasons_pass_nearly_every_mnist_test_digit() -> None:
    # bench/trust.py: 10 of the 10,000 (0.1%); the aim is well under 1%.
    images = read_mnist_test_images(10_000).astype(np.float32) / 255
    flagged = sum(bool(trust.ink_reasons(mnist_recipe_with_ink(image)[1])) for image in images)
    assert flagged <= 20


# --- through the routes -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(NOT_DIGITS))
async def test_predict_digit_flags_non_digit_with_its_reason(client: httpx.AsyncClient, kind: str) -> None:
    make, reason = NOT_DIGITS[kind]
    response = await client.post("/predict", files={"file": (f"{kind}.png", encode(make()))})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["unsure"] is True
    assert body["unsure_reasons"][0] == reason


async def test_predict_digit_gives_drawn_seven_no_ink_reason(client: httpx.AsyncClient, digit_png: bytes) -> None:
    body = (await client.post("/predict", files={"file": ("7.png", digit_png)})).json()
    assert ink_reasons_only(body["unsure_reasons"]) == []


async def test_predict_digit_names_random_model_low_confidence(client: httpx.AsyncClient, digit_png: bytes) -> None:
    body = (await client.post("/predict", files={"file": ("7.png", digit_png)})).json()
    assert body["confidence"] < trust.MIN_CONFIDENCE  # near uniform: about 0.1
    assert (body["unsure"], body["unsure_reasons"]) == (True, [f"low confidence ({body['confidence']:.2f})"])


async def test_predict_digits_flags_each_file_on_its_own(client: httpx.AsyncClient, digit_png: bytes) -> None:
    files = [("files", ("7.png", digit_png)), ("files", ("click.png", encode(pad_click())))]
    seven, click = (await client.post("/predict/batch", files=files)).json()["predictions"]
    assert ink_reasons_only(seven["unsure_reasons"]) == []
    assert click["unsure_reasons"][0] == "too little ink"


async def test_read_feature_maps_flags_dash(client: httpx.AsyncClient) -> None:
    response = await client.post("/feature-maps?layers=probabilities", files={"file": ("-.png", encode(pad_dash()))})
    body = response.json()
    assert (body["unsure"], body["unsure_reasons"][0]) == (True, "a line, not a digit")


async def test_openapi_documents_unsure_fields(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()["components"]["schemas"]["PredictResponse"]
    assert {"unsure", "unsure_reasons"} <= set(schema["required"])
    assert "too little ink" in schema["properties"]["unsure_reasons"]["description"]


# --- with the committed, trained models -------------------------------------------------------------------------


@pytest.mark.parametrize("model", COMMITTED_MODELS)
@pytest.mark.parametrize("kind", sorted(IMAGE_KINDS))
async def test_predict_digit_trusts_drawn_seven_with_committed_model(
    committed_client: httpx.AsyncClient, model: str, kind: str
) -> None:
    body = (await committed_client.post(f"/predict?model={model}", files={"file": ("7", IMAGE_KINDS[kind]())})).json()
    assert (body["digit"], body["unsure"], body["unsure_reasons"]) == (7, False, [])


@pytest.mark.parametrize("model", COMMITTED_MODELS)
async def test_predict_digits_trusts_mnist_test_digits_with_committed_model(
    committed_client: httpx.AsyncClient, model: str
) -> None:
    # The first 64 test digits (a full batch): none flagged by either model (bench/trust.py: 0.44% and 0.16%
    # of all 10,000).
    images = read_mnist_test_images(64)
    files = [("files", (f"{i}.png", encode(Image.fromarray(image)))) for i, image in enumerate(images)]
    predictions = (await committed_client.post(f"/predict/batch?model={model}", files=files)).json()["predictions"]
    assert [p["unsure_reasons"] for p in predictions if p["unsure"]] == []


@pytest.mark.parametrize("model", COMMITTED_MODELS)
@pytest.mark.parametrize("kind", sorted(NOT_DIGITS))
async def test_predict_digit_flags_non_digit_with_committed_model(
    committed_client: httpx.AsyncClient, model: str, kind: str
) -> None:
    make, reason = NOT_DIGITS[kind]
    body = (await committed_client.post(f"/predict?model={model}", files={"file": (kind, encode(make()))})).json()
    assert body["unsure"] is True and body["unsure_reasons"][0] == reason
