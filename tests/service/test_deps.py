"""Request checks shared by the image endpoints: a query parameter an endpoint does not take is a 400."""

from __future__ import annotations

import httpx
import pytest

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("path", "hint"),
    [
        ("/feature-maps?layer=conv1", "did you mean 'layers'? /feature-maps takes layers, format, model, version"),
        ("/feature-maps?layers=conv1&fromat=compact", "did you mean 'format'?"),
        ("/feature-maps/conv1.png?layers=conv1", "/feature-maps/conv1.png takes model, version"),
        ("/predict?modle=mnist_cnn", "did you mean 'model'? /predict takes model, version"),
        ("/predict/batch?x=1", "/predict/batch takes model, version"),
    ],
)
async def test_image_endpoint_refuses_unknown_query_parameter(
    client: httpx.AsyncClient, digit_png: bytes, path: str, hint: str
) -> None:
    field = "files" if "batch" in path else "file"
    response = await client.post(path, files={field: ("d.png", digit_png, "image/png")})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error.startswith("unknown query parameter") and hint in error


async def test_image_endpoint_takes_its_own_query_parameters(client: httpx.AsyncClient, digit_png: bytes) -> None:
    response = await client.post("/feature-maps?layers=logits&format=compact", files={"file": ("d.png", digit_png)})
    assert response.status_code == 200
