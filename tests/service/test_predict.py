"""POST /predict and /predict/batch, in-process, with every image format and mode we promise to read."""

from __future__ import annotations

import io

import httpx
import numpy as np
import pytest
from PIL import Image

from service.config import Settings
from tests.service.images import IMAGE_KINDS, draw_seven, encode

pytestmark = pytest.mark.anyio


def assert_prediction(body: dict) -> None:
    assert set(body) == {"digit", "confidence", "probabilities", "unsure", "unsure_reasons", "model", "timings_ms"}
    assert 0 <= body["digit"] <= 9
    assert len(body["probabilities"]) == 10
    assert sum(body["probabilities"]) == pytest.approx(1.0, abs=1e-4)
    assert body["confidence"] == max(body["probabilities"])
    assert body["probabilities"][body["digit"]] == body["confidence"]
    assert set(body["model"]) == {"name", "version", "sha256"}
    assert set(body["timings_ms"]) == {"decode_preprocess", "inference", "total"}
    assert body["timings_ms"]["total"] >= body["timings_ms"]["inference"] > 0


@pytest.mark.parametrize("kind", sorted(IMAGE_KINDS))
async def test_predict_digit_reads_image_kind(client: httpx.AsyncClient, kind: str) -> None:
    response = await client.post("/predict", files={"file": (f"digit.{kind}", IMAGE_KINDS[kind]())})
    assert response.status_code == 200, response.text
    assert_prediction(response.json())


async def test_predict_digit_reads_first_frame_of_animated_gif(client: httpx.AsyncClient) -> None:
    frames = [draw_seven(), Image.new("L", (140, 140), 255)]
    gif = io.BytesIO()
    frames[0].save(gif, "GIF", save_all=True, append_images=frames[1:], duration=100)
    response = await client.post("/predict", files={"file": ("anim.gif", gif.getvalue(), "image/gif")})
    assert response.status_code == 200, response.text


async def test_predict_digit_accepts_raw_image_body(client: httpx.AsyncClient, digit_png: bytes) -> None:
    response = await client.post("/predict", content=digit_png, headers={"Content-Type": "image/png"})
    assert response.status_code == 200, response.text
    assert_prediction(response.json())


async def test_predict_digit_agrees_between_multipart_and_raw_body(client: httpx.AsyncClient, digit_png: bytes) -> None:
    raw = await client.post("/predict", content=digit_png, headers={"Content-Type": "image/png"})
    form = await client.post("/predict", files={"file": ("d.png", digit_png, "image/png")})
    assert raw.json()["probabilities"] == form.json()["probabilities"]


async def test_predict_digit_ignores_other_form_fields(client: httpx.AsyncClient, digit_png: bytes) -> None:
    response = await client.post("/predict", data={"note": "hello"}, files={"file": ("d.png", digit_png, "image/png")})
    assert response.status_code == 200, response.text


async def test_predict_digit_names_model_from_card(client: httpx.AsyncClient, digit_png: bytes) -> None:
    card = (await client.get("/model")).json()
    body = (await client.post("/predict", files={"file": ("d.png", digit_png)})).json()
    assert body["model"] == {"name": card["name"], "version": card["version"], "sha256": card["sha256"]}


async def test_predict_digits_answers_in_upload_order(client: httpx.AsyncClient) -> None:
    pngs = [encode(draw_seven(size)) for size in (60, 140, 300)]
    singles = [(await client.post("/predict", files={"file": ("d.png", p)})).json() for p in pngs]
    files = [("files", (f"{i}.png", p, "image/png")) for i, p in enumerate(pngs)]
    response = await client.post("/predict/batch", files=files)
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    assert len(predictions) == len(pngs)
    for single, item in zip(singles, predictions, strict=True):
        assert_prediction(item)
        np.testing.assert_allclose(item["probabilities"], single["probabilities"], atol=1e-6)


async def test_predict_digits_accepts_the_limit(
    client: httpx.AsyncClient, settings: Settings, digit_png: bytes
) -> None:
    files = [("files", (f"{i}.png", digit_png, "image/png")) for i in range(settings.max_batch_files)]
    response = await client.post("/predict/batch", files=files)
    assert response.status_code == 200, response.text
    assert len(response.json()["predictions"]) == settings.max_batch_files


async def test_predict_digits_accepts_one_raw_image(client: httpx.AsyncClient, digit_png: bytes) -> None:
    response = await client.post("/predict/batch", content=digit_png, headers={"Content-Type": "image/png"})
    assert response.status_code == 200, response.text
    assert len(response.json()["predictions"]) == 1
