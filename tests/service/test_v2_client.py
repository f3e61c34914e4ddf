"""An off-the-shelf Open Inference Protocol client (tritonclient.http, with its defaults) against a real
`python -m service` serving the committed models: health, metadata, MNIST digits in JSON and binary, and the whole
test set through each model at its card's accuracy."""

from __future__ import annotations

import json
from collections.abc import Iterator

import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from tests.paths import COMMITTED_MODELS, mnist_test_files
from tests.reliability.processes import LiveService
from tests.shapes import LAYER_NAMES, OUTPUT_SHAPES

BATCH = 64


@pytest.fixture
def client(committed_service: LiveService) -> Iterator[triton.InferenceServerClient]:
    """tritonclient's HTTP client of the real server on the committed model (tests/conftest.py)."""
    client = triton.InferenceServerClient(f"127.0.0.1:{committed_service.port}")
    yield client
    client.close()


@pytest.fixture(scope="module")
def mnist() -> tuple[np.ndarray, np.ndarray]:
    """The first 64 MNIST test images as the model takes them, (64, 1, 28, 28) float32, and their labels."""
    from training.data import load_split

    split = load_split("test", mnist_test_files(), download=False)
    return (split.images[:BATCH, None] / np.float32(255.0)).astype(np.float32), split.labels[:BATCH]


def test_client_checks_liveness_and_readiness(client: triton.InferenceServerClient) -> None:
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("mnist_cnn")
    assert client.is_model_ready("mnist_cnn", model_version="1")
    assert not client.is_model_ready("mnist_cnn", model_version="2.0.0")
    assert not client.is_model_ready("fashion_mnist")


def test_client_reads_server_metadata(client: triton.InferenceServerClient) -> None:
    metadata = client.get_server_metadata()
    assert metadata["name"] == "mnist-convnet-service"
    assert "binary_tensor_data" in metadata["extensions"]


def test_client_reads_model_metadata(client: triton.InferenceServerClient) -> None:
    metadata = client.get_model_metadata("mnist_cnn")
    assert metadata["name"] == "mnist_cnn"
    assert metadata["versions"] == ["1"]
    assert metadata["inputs"] == [{"name": "image", "datatype": "FP32", "shape": [-1, 1, 28, 28]}]
    assert {output["name"]: output["shape"] for output in metadata["outputs"]} == {
        name: [-1, *shape] for name, shape in OUTPUT_SHAPES.items()
    }


@pytest.mark.parametrize("binary_output", [False, True], ids=["json-out", "binary-out"])
@pytest.mark.parametrize("binary_input", [False, True], ids=["json-in", "binary-in"])
def test_client_infers_mnist_digits(
    client: triton.InferenceServerClient,
    mnist: tuple[np.ndarray, np.ndarray],
    binary_input: bool,
    binary_output: bool,
) -> None:
    images, labels = mnist
    image = triton.InferInput("image", list(images.shape), "FP32")
    image.set_data_from_numpy(images, binary_data=binary_input)
    outputs = [triton.InferRequestedOutput("probabilities", binary_data=binary_output)]
    result = client.infer("mnist_cnn", [image], outputs=outputs, request_id="digits")
    probabilities = result.as_numpy("probabilities")
    assert probabilities.shape == (BATCH, 10)
    np.testing.assert_array_equal(probabilities.argmax(axis=1), labels)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    response = result.get_response()
    assert (response["model_name"], response["model_version"], response["id"]) == ("mnist_cnn", "1", "digits")


def test_client_infers_every_output_by_default(
    client: triton.InferenceServerClient, mnist: tuple[np.ndarray, np.ndarray]
) -> None:
    images, labels = mnist
    image = triton.InferInput("image", [4, 1, 28, 28], "FP32")
    image.set_data_from_numpy(images[:4])
    result = client.infer("mnist_cnn", [image], model_version="1")  # no outputs: all, as binary
    for name in LAYER_NAMES:
        assert result.as_numpy(name).shape == (4, *OUTPUT_SHAPES[name])
    np.testing.assert_array_equal(result.as_numpy("logits").argmax(axis=1), labels[:4])


def test_client_infers_uint8_pixels(client: triton.InferenceServerClient, mnist: tuple[np.ndarray, np.ndarray]) -> None:
    images, labels = mnist
    pixels = np.rint(images * 255).astype(np.uint8)
    image = triton.InferInput("image", list(pixels.shape), "UINT8")
    image.set_data_from_numpy(pixels)
    result = client.infer("mnist_cnn", [image], outputs=[triton.InferRequestedOutput("probabilities")])
    np.testing.assert_array_equal(result.as_numpy("probabilities").argmax(axis=1), labels)


def test_client_sees_a_bad_request_as_an_error(client: triton.InferenceServerClient) -> None:
    image = triton.InferInput("image", [1, 3, 28, 28], "FP32")
    image.set_data_from_numpy(np.zeros((1, 3, 28, 28), np.float32))
    with pytest.raises(InferenceServerException) as raised:
        client.infer("mnist_cnn", [image])
    assert raised.value.status() == "400"
    assert "shape [1, 3, 28, 28]" in raised.value.message()


@pytest.mark.parametrize("model", sorted(COMMITTED_MODELS))
def test_client_reads_the_whole_mnist_test_set_at_the_card_accuracy(
    client: triton.InferenceServerClient, model: str
) -> None:
    from training.data import load_split

    split = load_split("test", mnist_test_files(), download=False)
    expected = json.loads((COMMITTED_MODELS[model] / "card.json").read_text())["metrics"]["test_accuracy"]
    predicted = []
    for start in range(0, len(split.labels), BATCH):
        images = (split.images[start : start + BATCH, None] / np.float32(255.0)).astype(np.float32)
        image = triton.InferInput("image", list(images.shape), "FP32")
        image.set_data_from_numpy(images, binary_data=True)
        result = client.infer(model, [image], outputs=[triton.InferRequestedOutput("probabilities")])
        assert result.get_response()["model_name"] == model
        predicted.append(result.as_numpy("probabilities").argmax(axis=1))
    accuracy = float((np.concatenate(predicted) == split.labels).mean())
    assert accuracy >= 0.995 and abs(accuracy - expected) <= 0.001, (accuracy, expected)
