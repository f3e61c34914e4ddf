"""Property-based fuzzing (hypothesis) of what parses untrusted bytes: image preprocessing and the V2 decoder.

The properties: whatever comes in, the answer is a ServiceError with a 4xx status (a message for the client),
or a valid value; never another exception (which the service would turn into a 500).
CI runs the `ci` profile (a few hundred examples in all); HYPOTHESIS_PROFILE=deep runs 20x more.
"""

from __future__ import annotations

import io
import json
import os
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image

from service.contract import Contract
from service.errors import ServiceError, UnusableImage
from service.preprocess import mnist_recipe, prepare_digit
from service.v2 import decompress, parse_infer_request
from tests.service.images import IMAGE_KINDS
from tests.shapes import LAYER_NAMES, LAYER_SHAPES

settings.register_profile(
    "ci", max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
settings.register_profile("deep", parent=settings.get_profile("ci"), max_examples=1200)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:PIL")  # Pillow warns of the damage we made

MAX_PIXELS = 1_000_000
# A valid file of every format and mode we read, for the mutations to start from (that each is read, so that
# the properties test something, is test_predict_digit_reads_image_kind's to pin).
SEEDS = {name: make() for name, make in IMAGE_KINDS.items()}


def assert_valid_digit(digit: np.ndarray) -> None:
    assert digit.shape == (28, 28) and digit.dtype == np.float32
    assert np.isfinite(digit).all() and digit.min() >= 0.0 and digit.max() <= 1.0


def assert_client_error(error: ServiceError) -> None:
    assert 400 <= error.status_code < 500 and str(error)


# ---- preprocessing -----------------------------------------------------------------------------------


@given(st.binary(max_size=4096))
def test_prepare_digit_of_arbitrary_bytes_is_a_digit_or_a_service_error(data: bytes) -> None:
    try:
        assert_valid_digit(prepare_digit(data, max_pixels=MAX_PIXELS))
    except ServiceError as error:
        assert_client_error(error)


@st.composite
def mutated_images(draw: st.DrawFn) -> bytes:
    """A valid image file of some format and mode with a few bytes changed, cut short or spliced in."""
    data = bytearray(SEEDS[draw(st.sampled_from(sorted(SEEDS)))])
    for _ in range(draw(st.integers(0, 8))):
        position = draw(st.integers(0, len(data) - 1))
        action = draw(st.sampled_from(["flip", "insert", "delete"]))
        if action == "flip":
            data[position] = draw(st.integers(0, 255))
        elif action == "insert":
            data[position:position] = draw(st.binary(min_size=1, max_size=16))
        else:
            del data[position : position + draw(st.integers(1, 16))]
        if not data:
            break
    if data and draw(st.booleans()):
        data = data[: draw(st.integers(1, len(data)))]
    return bytes(data)


@given(mutated_images())
def test_prepare_digit_of_damaged_image_is_a_digit_or_a_service_error(data: bytes) -> None:
    try:
        assert_valid_digit(prepare_digit(data, max_pixels=MAX_PIXELS))
    except ServiceError as error:
        assert_client_error(error)


# Modes Pillow builds from arrays: (mode, dtype, channels), and the formats each can be saved in.
ARRAY_MODES = {
    "L": (np.uint8, 0, ("PNG", "BMP", "TIFF", "WEBP", "GIF", "JPEG")),
    "LA": (np.uint8, 2, ("PNG", "TIFF")),
    "RGB": (np.uint8, 3, ("PNG", "BMP", "TIFF", "WEBP", "JPEG")),
    "RGBA": (np.uint8, 4, ("PNG", "TIFF", "WEBP")),
    "I;16": (np.uint16, 0, ("PNG", "TIFF")),
    "I": (np.int32, 0, ("TIFF",)),
    "F": (np.float32, 0, ("TIFF",)),
}


@st.composite
def encoded_arrays(draw: st.DrawFn) -> bytes:
    """A small random picture of any mode we accept, saved in a format that holds that mode."""
    mode = draw(st.sampled_from(sorted(ARRAY_MODES)))
    dtype, channels, formats = ARRAY_MODES[mode]
    shape = (draw(st.integers(1, 40)), draw(st.integers(1, 40)), *((channels,) if channels else ()))
    if dtype is np.float32:
        elements = st.floats(width=32, allow_nan=True, allow_infinity=True)
    else:
        info = np.iinfo(dtype)
        elements = st.integers(int(info.min), int(info.max))
    pixels = draw(arrays(dtype, shape, elements=elements))
    image = Image.fromarray(pixels.astype("<u2") if mode == "I;16" else pixels)  # the mode follows the array
    buffer = io.BytesIO()
    image.save(buffer, draw(st.sampled_from(formats)))
    return buffer.getvalue()


@given(encoded_arrays())
def test_prepare_digit_of_any_small_picture_is_a_digit_or_unusable(data: bytes) -> None:
    try:
        assert_valid_digit(prepare_digit(data, max_pixels=MAX_PIXELS))
    except UnusableImage as error:  # blank, or nearly uniform
        assert_client_error(error)


@given(arrays(np.float32, st.tuples(st.integers(1, 64), st.integers(1, 64)), elements=st.floats(0, 1, width=32)))
def test_mnist_recipe_of_any_grayscale_is_a_digit_or_unusable(gray: np.ndarray) -> None:
    try:
        assert_valid_digit(mnist_recipe(gray))
    except UnusableImage as error:
        assert_client_error(error)


# ---- the V2 decoder ----------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=6) | st.dictionaries(st.text(max_size=8), children, max_size=6),
    max_leaves=30,
)
DIMENSIONS = st.integers(-2, 3) | st.sampled_from([28, 784, 2**40]) | st.floats(0, 2) | st.text(max_size=3)


@st.composite
def tensors(draw: st.DrawFn) -> dict[str, Any]:
    """An input tensor that is nearly right: each field valid, missing or wrong."""
    count = draw(st.integers(0, 3))
    layout = draw(st.sampled_from([[count, 1, 28, 28], [count, 28, 28], [count, 784]]))
    shape = draw(st.just(layout) | st.lists(DIMENSIONS, max_size=5) | json_values)
    datatype = draw(st.sampled_from(["FP32", "UINT8", "INT32", "FP64", "BYTES", None]) | json_values)
    values = draw(
        st.lists(st.floats(-1, 2) | st.integers(-5, 300), min_size=count * 784, max_size=count * 784)
        if draw(st.booleans())
        else json_values
    )
    tensor: dict[str, Any] = {
        "name": draw(st.sampled_from(["image", "input", ""]) | json_values),
        "shape": shape,
        "datatype": datatype,
    }
    if draw(st.booleans()):
        tensor["data"] = values
    if draw(st.booleans()):
        tensor["parameters"] = draw(
            st.fixed_dictionaries({"binary_data_size": st.integers(-1, 8000) | json_values}) | json_values
        )
    return tensor


@st.composite
def infer_bodies(draw: st.DrawFn) -> tuple[bytes, str | None]:
    """(body, Inference-Header-Content-Length): a request near the protocol, maybe with binary bytes after."""
    request: Any = {"inputs": draw(st.lists(tensors(), max_size=2) | json_values)}
    if draw(st.booleans()):
        request["outputs"] = draw(
            st.lists(
                st.fixed_dictionaries(
                    {"name": st.sampled_from([*LAYER_NAMES, "conv9"]) | json_values},
                    optional={"parameters": st.fixed_dictionaries({"binary_data": json_values}) | json_values},
                ),
                max_size=3,
            )
            | json_values
        )
    if draw(st.booleans()):
        request["parameters"] = draw(st.fixed_dictionaries({"binary_data_output": json_values}) | json_values)
    if draw(st.booleans()):
        request["id"] = draw(json_values)
    if draw(st.integers(0, 9)) == 0:
        request = draw(json_values)  # not an object at all
    header = json.dumps(request).encode()
    if draw(st.integers(0, 9)) == 0:
        header = header[: draw(st.integers(0, len(header)))]  # cut JSON
    binary = draw(st.sampled_from([b"", b"\0" * 784, b"\0" * 3136, np.full(784, np.nan, "<f4").tobytes()]))
    binary += draw(st.binary(max_size=16))
    length = draw(st.none() | st.just(str(len(header))) | st.text(max_size=6) | st.integers(-5, 10**6).map(str))
    return header + (binary if length is not None else b""), length


# The classic net's contract, as its card describes it.
KINDS = {"conv": "conv", "pool": "pool", "flatten": "flatten", "logits": "dense", "probabilities": "probabilities"}
CONTRACT = Contract.from_card(
    {
        "input": {"name": "image", "shape": ["N", 1, 28, 28]},
        "outputs": [
            {"name": name, "shape": ["N", *shape], "kind": KINDS[name.rstrip("123")]}
            for name, shape in LAYER_SHAPES.items()
        ],
    },
    "the classic net's card",
)


@given(infer_bodies())
@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large])
def test_parse_infer_request_is_images_or_a_service_error(case: tuple[bytes, str | None]) -> None:
    body, header_length = case
    try:
        request = parse_infer_request(body, header_length, max_batch=4, contract=CONTRACT)
    except ServiceError as error:
        assert_client_error(error)
        return
    images = request.images
    assert images.dtype == np.float32 and images.shape[1:] == (1, 28, 28) and 1 <= len(images) <= 4
    assert np.isfinite(images).all() and images.min() >= 0 and images.max() <= 1
    assert set(request.outputs) <= set(LAYER_NAMES) and all(isinstance(b, bool) for b in request.outputs.values())


@given(
    st.binary(max_size=2048), st.none() | st.sampled_from(["gzip", "deflate", "br", "GZIP", ""]) | st.text(max_size=8)
)
def test_decompress_is_bytes_within_the_limit_or_a_service_error(body: bytes, encoding: str | None) -> None:
    try:
        data = decompress(body, encoding, 1000)
    except ServiceError as error:
        assert_client_error(error)
        return
    assert len(data) <= max(1000, len(body))
