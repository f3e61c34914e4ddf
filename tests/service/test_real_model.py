"""The committed, trained models (models/<name>/1/): served accuracy on all 10,000 MNIST test images matches each
card, and drawn digits in every format read right. Needs the committed models and the MNIST test files: without
them the tests skip, which CI (CI=true) counts as a failure (tests/conftest.py)."""

from __future__ import annotations

import gzip
import json

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.paths import COMMITTED_MODELS, mnist_test_files
from tests.service.images import IMAGE_KINDS, encode

pytestmark = pytest.mark.anyio

BATCH = 64  # files per /predict/batch: the default max_batch_files
TOLERANCE = 0.001  # 0.1 percentage points


def read_idx(name: str, header: int) -> np.ndarray:
    with gzip.open(mnist_test_files() / name) as f:
        return np.frombuffer(f.read(), np.uint8, offset=header)


@pytest.fixture(scope="module")
def mnist_test_set() -> tuple[list[bytes], np.ndarray]:
    """The 10,000 test images as PNG files, and their labels."""
    images = read_idx("t10k-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28)
    labels = read_idx("t10k-labels-idx1-ubyte.gz", 8)
    assert len(images) == len(labels) == 10_000
    return [encode(Image.fromarray(image), compress_level=1) for image in images], labels


@pytest.mark.parametrize("model", sorted(COMMITTED_MODELS))
async def test_predict_digits_on_mnist_test_set_matches_card_accuracy(
    committed_client: httpx.AsyncClient, mnist_test_set: tuple[list[bytes], np.ndarray], model: str
) -> None:
    expected = json.loads((COMMITTED_MODELS[model] / "card.json").read_text())["metrics"]["test_accuracy"]
    assert expected >= 0.995
    pngs, labels = mnist_test_set
    predicted: list[int] = []
    for start in range(0, len(pngs), BATCH):
        batch = pngs[start : start + BATCH]
        files = [("files", (f"{start + i}.png", data, "image/png")) for i, data in enumerate(batch)]
        response = await committed_client.post("/predict/batch", params={"model": model}, files=files)
        assert response.status_code == 200, response.text
        predictions = response.json()["predictions"]
        assert {item["model"]["name"] for item in predictions} == {model}
        predicted += [item["digit"] for item in predictions]
    accuracy = float(np.mean(np.array(predicted) == labels))
    assert abs(accuracy - expected) <= TOLERANCE, f"served accuracy {accuracy:.4f}, card says {expected:.4f}"


@pytest.mark.parametrize("model", sorted(COMMITTED_MODELS))
@pytest.mark.parametrize("kind", sorted(IMAGE_KINDS))
async def test_predict_digit_reads_a_drawn_seven(committed_client: httpx.AsyncClient, kind: str, model: str) -> None:
    files = {"file": (f"seven.{kind}", IMAGE_KINDS[kind]())}
    response = await committed_client.post("/predict", params={"model": model}, files=files)
    assert response.status_code == 200, response.text
    assert response.json()["digit"] == 7
