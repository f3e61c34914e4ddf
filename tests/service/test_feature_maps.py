"""POST /feature-maps (json and compact) and /feature-maps/{layer}.png, in-process."""

from __future__ import annotations

import base64
import io

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.shapes import LAYER_SHAPES as SHAPES

pytestmark = pytest.mark.anyio


def decode_compact(entry: dict) -> np.ndarray:
    codes = np.frombuffer(base64.b64decode(entry["data"]), np.uint8).reshape(entry["shape"])
    return entry["offset"] + entry["scale"] * codes.astype(np.float64)


async def feature_maps(client: httpx.AsyncClient, png: bytes, **params: str) -> dict:
    response = await client.post("/feature-maps", params=params, files={"file": ("d.png", png, "image/png")})
    assert response.status_code == 200, response.text
    return response.json()


async def test_read_feature_maps_json_gives_every_layer_with_its_shape(
    client: httpx.AsyncClient, digit_png: bytes
) -> None:
    body = await feature_maps(client, digit_png)
    assert [layer["name"] for layer in body["layers"]] == list(SHAPES)
    for layer in body["layers"]:
        values = np.array(layer["data"])
        assert list(values.shape) == layer["shape"] == SHAPES[layer["name"]]
        assert values.min() == pytest.approx(layer["min"]) and values.max() == pytest.approx(layer["max"])


async def test_read_feature_maps_includes_the_prediction(client: httpx.AsyncClient, digit_png: bytes) -> None:
    body = await feature_maps(client, digit_png, layers="probabilities")
    predicted = (await client.post("/predict", files={"file": ("d.png", digit_png)})).json()
    assert body["digit"] == predicted["digit"]
    np.testing.assert_allclose(body["layers"][0]["data"], predicted["probabilities"], atol=1e-6)


async def test_read_feature_maps_includes_the_input_the_model_saw(client: httpx.AsyncClient, digit_png: bytes) -> None:
    body = await feature_maps(client, digit_png, layers="logits")
    image = np.array(body["input"]["data"])
    assert body["input"]["name"] == "input" and image.shape == (1, 28, 28)
    assert image.min() >= 0.0 and image.max() <= 1.0
    assert image[0, 0, 0] == 0.0 and image.max() == 1.0  # white ink on black, like MNIST


async def test_read_feature_maps_compact_dequantises_close_to_json(client: httpx.AsyncClient, digit_png: bytes) -> None:
    exact = await feature_maps(client, digit_png, format="json")
    compact = await feature_maps(client, digit_png, format="compact")
    for layer_json, layer_compact in zip(
        [exact["input"], *exact["layers"]], [compact["input"], *compact["layers"]], strict=True
    ):
        assert layer_compact["shape"] == layer_json["shape"]
        values = np.array(layer_json["data"])
        error = np.abs(decode_compact(layer_compact) - values).max()
        assert error <= layer_compact["scale"] / 2 + 1e-6
        assert error <= (values.max() - values.min()) / 500 + 1e-6


async def test_read_feature_maps_keeps_only_asked_layers_in_graph_order(
    client: httpx.AsyncClient, digit_png: bytes
) -> None:
    body = await feature_maps(client, digit_png, layers="probabilities, conv1,pool2")
    assert [layer["name"] for layer in body["layers"]] == ["conv1", "pool2", "probabilities"]


async def test_read_feature_maps_accepts_raw_image_body(client: httpx.AsyncClient, digit_png: bytes) -> None:
    response = await client.post(
        "/feature-maps?layers=logits&format=compact", content=digit_png, headers={"Content-Type": "image/png"}
    )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("layer", ["input", *SHAPES])
async def test_draw_feature_maps_gives_a_png_that_is_not_blank(
    client: httpx.AsyncClient, digit_png: bytes, layer: str
) -> None:
    response = await client.post(f"/feature-maps/{layer}.png", files={"file": ("d.png", digit_png)})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    picture = Image.open(io.BytesIO(response.content))
    picture.load()
    assert picture.format == "PNG" and min(picture.size) >= 64
    pixels = np.asarray(picture.convert("RGB")).reshape(-1, 3)
    assert len(np.unique(pixels, axis=0)) > 8  # more than background and a few flat tiles


async def test_draw_feature_maps_tiles_every_channel(client: httpx.AsyncClient, digit_png: bytes) -> None:
    # conv1: 32 channels of 26x26 -> a 6x6 grid of tiles upscaled 3x with 2 px gaps
    response = await client.post("/feature-maps/conv1.png", files={"file": ("d.png", digit_png)})
    width, height = Image.open(io.BytesIO(response.content)).size
    assert (width, height) == (6 * (78 + 2) + 2, 6 * (78 + 2) + 2)


async def test_draw_feature_maps_accepts_raw_image_body(client: httpx.AsyncClient, digit_png: bytes) -> None:
    response = await client.post("/feature-maps/pool1.png", content=digit_png, headers={"Content-Type": "image/png"})
    assert response.status_code == 200, response.text


async def test_read_feature_maps_accepts_input_as_a_layer_name(client: httpx.AsyncClient, digit_png: bytes) -> None:
    body = await feature_maps(client, digit_png, layers="input,conv1")
    assert body["input"]["name"] == "input"  # in every answer; naming it is allowed, as for input.png
    assert [layer["name"] for layer in body["layers"]] == ["conv1"]


async def test_read_feature_maps_refuses_unknown_layer_with_400(client: httpx.AsyncClient, digit_png: bytes) -> None:
    response = await client.post("/feature-maps?layers=conv9", files={"file": ("d.png", digit_png)})
    assert response.status_code == 400
    assert "unknown layer 'conv9'" in response.json()["error"] and "input, conv1" in response.json()["error"]
