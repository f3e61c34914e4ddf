"""The Open Inference Protocol (KServe V2) for every model in the repository: metadata, request parsing (JSON and
the binary tensor data extension), inference through each version's engine, response encoding. No HTTP types here.

Specs: kserve/kserve docs/predict-api/v2/required_api.md and, for binary tensors,
triton-inference-server/server docs/protocol/extension_binary_data.md.
"""

from __future__ import annotations

import importlib.metadata
import math
import zlib
from dataclasses import dataclass
from functools import cache
from typing import Any

import anyio.to_thread
import numpy as np
import orjson

from service.contract import IMAGE_SHAPE, Contract
from service.errors import BadRequest, PayloadTooLarge
from service.repository import ModelRepository

SERVER_NAME = "mnist-convnet-service"  # the distribution; its installed version is the server's
EXTENSIONS = ("binary_tensor_data",)
PLATFORM = "onnxruntime_onnx"
OUTPUT_DATATYPE = "FP32"  # every output of the contract is float32
# Input datatypes on the wire: FP32 in [0, 1] as the model takes it, or UINT8 pixels (0-255) scaled by 1/255.
INPUT_DTYPES: dict[str, np.dtype[Any]] = {"FP32": np.dtype("<f4"), "UINT8": np.dtype("u1")}
# Accepted image layouts by rank, after the batch dimension: canonical (N, 1, 28, 28); also (N, 28, 28) and
# (N, 784), which hold the same row-major pixels and cannot be read any other way.
IMAGE_LAYOUTS = {4: IMAGE_SHAPE, 3: IMAGE_SHAPE[1:], 2: (math.prod(IMAGE_SHAPE),)}
LAYOUTS_TEXT = "[N, 1, 28, 28] (or [N, 28, 28] or [N, 784])"


@dataclass(frozen=True, slots=True)
class InferRequest:
    """A parsed inference request: the images as the model takes them and the outputs to send back."""

    images: np.ndarray  # (N, 1, 28, 28) float32 in [0, 1]
    outputs: dict[str, bool]  # output name -> send as binary data, in the order asked
    id: str | None = None


@dataclass(frozen=True, slots=True)
class InferResponse:
    """An encoded inference response: JSON, then the binary tensors (if any) in output order."""

    body: bytes
    json_length: int | None  # bytes of JSON before the binary tensors; None when the body is all JSON


@cache
def server_metadata() -> dict[str, Any]:
    """`GET /v2`: name, version and extensions of this server."""
    try:
        version = importlib.metadata.version(SERVER_NAME)
    except importlib.metadata.PackageNotFoundError:  # run from a checkout that was never installed
        version = "unknown"
    return {"name": SERVER_NAME, "version": version, "extensions": list(EXTENSIONS)}


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# ---- the request -------------------------------------------------------------------------------------


def decompress(body: bytes, encoding: str | None, limit: int) -> bytes:
    """The body before its Content-Encoding (gzip, deflate or none), never inflated past limit bytes."""
    coding = (encoding or "identity").strip().lower()
    if coding == "identity":
        return body
    wbits = {"gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}.get(coding)
    if wbits is None:
        raise BadRequest(f"Content-Encoding {_short(encoding)} is not supported: send gzip, deflate or none")
    inflater = zlib.decompressobj(wbits)
    try:
        data = inflater.decompress(body, limit + 1)
    except zlib.error as err:
        raise BadRequest(f"the body is not valid {coding} data: {err}") from None
    if len(data) > limit:
        raise PayloadTooLarge(f"the request body inflates past the limit of {limit:,} bytes: send fewer images")
    if not inflater.eof:
        raise BadRequest(f"the {coding} body is truncated")
    return data


def json_length(body: bytes, header_length: str | None) -> int:
    """How many leading bytes of the body are JSON, by Inference-Header-Content-Length; without it, all."""
    if header_length is None:
        return len(body)
    text = header_length.strip()
    if not (text.isascii() and text.isdigit()):
        raise BadRequest(f"Inference-Header-Content-Length {_short(header_length)} is not a non-negative integer")
    if int(text) > len(body):
        raise BadRequest(
            f"Inference-Header-Content-Length {int(text):,} is more than the {len(body):,} bytes of the body"
        )
    return int(text)


def split_body(body: bytes, header_length: str | None) -> tuple[bytes, bytes | None]:
    """(JSON, the binary tensor bytes after it) by Inference-Header-Content-Length; without it, all JSON."""
    if header_length is None:
        return body, None
    length = json_length(body, header_length)
    return body[:length], body[length:]


def _load_json(header: bytes) -> dict[str, Any]:
    try:
        request = orjson.loads(header)
    except orjson.JSONDecodeError as err:
        raise BadRequest(f"the inference request is not valid JSON: {err}") from None
    if not isinstance(request, dict):
        raise BadRequest("the inference request must be a JSON object with 'inputs'")
    return request


def _parameters(value: object, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadRequest(f"'parameters' of {where} must be a JSON object")
    return value


def _flag(parameters: dict[str, Any], key: str, default: bool, where: str) -> bool:
    value = parameters.get(key, default)
    if not isinstance(value, bool):
        raise BadRequest(f"parameter '{key}' of {where} must be true or false, got {_short(value)}")
    return value


def _checked_shape(shape: object, max_batch: int, input_name: str) -> list[int]:
    """The input's shape: one of the accepted layouts, with 1 to max_batch images."""
    if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
        raise BadRequest(f"'shape' of input '{input_name}' must be a list of integers >= 0, got {_short(shape)}")
    if len(shape) not in IMAGE_LAYOUTS or tuple(shape[1:]) != IMAGE_LAYOUTS[len(shape)]:
        raise BadRequest(f"input '{input_name}' has shape {_short(shape)}: send {LAYOUTS_TEXT}")
    count = shape[0]
    if count == 0:
        raise BadRequest(f"input '{input_name}' has shape {shape}: send at least one image")
    if count > max_batch:
        raise PayloadTooLarge(f"{count} images in one request is over the limit of {max_batch}: split them up")
    return shape


def _json_values(data: object, count: int, datatype: str, input_name: str) -> np.ndarray:
    """The elements of a JSON `data` array (flat or nested, row-major), checked to be count numbers."""
    if not isinstance(data, list):
        raise BadRequest(
            f"input '{input_name}' needs 'data' (a JSON array, flat or nested, row-major) or "
            "parameters.binary_data_size with the tensor's bytes after the JSON"
        )
    try:
        values = np.asarray(data)
    except (ValueError, TypeError, OverflowError):
        raise BadRequest(f"'data' of input '{input_name}' is not a regular array of numbers") from None
    kinds = "iu" if datatype == "UINT8" else "iuf"
    if values.dtype.kind not in kinds:
        wanted = "integers 0-255" if datatype == "UINT8" else "numbers"
        raise BadRequest(f"'data' of input '{input_name}' ({datatype}) must hold only {wanted}")
    if values.size != count:
        raise BadRequest(f"input '{input_name}' has {values.size:,} values in 'data', its shape needs {count:,}")
    return values.reshape(-1)


def _binary_values(size: object, binary: bytes | None, count: int, datatype: str, input_name: str) -> np.ndarray:
    """The elements of a binary input: `size` bytes, all of those after the JSON, little-endian."""
    if type(size) is not int or size < 0:
        raise BadRequest(f"binary_data_size of input '{input_name}' must be a non-negative integer, got {_short(size)}")
    if binary is None:
        raise BadRequest(
            f"input '{input_name}' has binary_data_size but the request has no Inference-Header-Content-Length "
            "header to say where the JSON ends"
        )
    if size != len(binary):
        raise BadRequest(
            f"binary_data_size of input '{input_name}' is {size:,} but {len(binary):,} bytes follow the JSON"
        )
    dtype = INPUT_DTYPES[datatype]
    if size != count * dtype.itemsize:
        needed = f"{count * dtype.itemsize:,} ({count:,} {datatype})"
        raise BadRequest(f"input '{input_name}' has {size:,} bytes of binary data, its shape needs {needed}")
    return np.frombuffer(binary, dtype)


def _to_images(values: np.ndarray, datatype: str, count: int, input_name: str) -> np.ndarray:
    """Checked values (flat) -> (N, 1, 28, 28) float32 in [0, 1]."""
    if datatype == "UINT8":
        if values.min() < 0 or values.max() > 255:
            raise BadRequest(f"input '{input_name}' is UINT8: values must be 0-255")
        images = values.astype(np.float32) / np.float32(255.0)  # as training scales pixels: x / 255
    else:
        # NOTE: checked before the cast to float32, which would turn 1e39 into inf (with a warning).
        if not np.isfinite(values).all():
            raise BadRequest(f"input '{input_name}' has NaN or infinite values")
        low, high = values.min(), values.max()
        if low < 0 or high > 1:
            raise BadRequest(
                f"input '{input_name}' (FP32) must lie in [0, 1], found {float(low):g} to {float(high):g}: "
                "scale 0-255 pixels by 1/255 and don't normalise (the model does), or send UINT8"
            )
        images = values.astype(np.float32, copy=False)
    return images.reshape(count, *IMAGE_SHAPE)


def _parse_images(inputs: object, binary: bytes | None, max_batch: int, input_name: str) -> np.ndarray:
    if not isinstance(inputs, list) or not inputs or not all(isinstance(item, dict) for item in inputs):
        raise BadRequest(f"'inputs' must be a list of tensors: the model takes one, '{input_name}'")
    names = [item.get("name") for item in inputs]
    if names != [input_name]:
        raise BadRequest(f"inputs {_short(names)} do not match the model's one input, '{input_name}'")
    tensor = inputs[0]
    datatype = tensor.get("datatype")
    if not isinstance(datatype, str) or datatype not in INPUT_DTYPES:
        raise BadRequest(
            f"datatype {_short(datatype)} of input '{input_name}' is not supported: "
            "send FP32 (values in [0, 1]) or UINT8 (0-255)"
        )
    shape = _checked_shape(tensor.get("shape"), max_batch, input_name)
    count = math.prod(shape)  # elements
    parameters = _parameters(tensor.get("parameters"), f"input '{input_name}'")
    if "binary_data_size" in parameters:
        if "data" in tensor:
            raise BadRequest(f"input '{input_name}' has both 'data' and binary_data_size: send one")
        values = _binary_values(parameters["binary_data_size"], binary, count, datatype, input_name)
    elif binary:
        raise BadRequest(
            f"{len(binary):,} bytes follow the JSON but input '{input_name}' has no binary_data_size parameter"
        )
    else:
        values = _json_values(tensor.get("data"), count, datatype, input_name)
    return _to_images(values, datatype, shape[0], input_name)


def _parse_outputs(outputs: object, binary_default: bool, names: tuple[str, ...]) -> dict[str, bool]:
    """Requested output name -> as binary; none asked means all the model's, in graph order."""
    if outputs is None or outputs == []:
        return dict.fromkeys(names, binary_default)
    if not isinstance(outputs, list) or not all(isinstance(item, dict) for item in outputs):
        raise BadRequest('\'outputs\' must be a list of objects like {"name": "probabilities"}')
    asked: dict[str, bool] = {}
    for item in outputs:
        name = item.get("name")
        if not isinstance(name, str) or name not in names:
            raise BadRequest(f"unknown output {_short(name)}: choose from {', '.join(names)}")
        if name in asked:
            raise BadRequest(f"output '{name}' is asked for twice")
        where = f"output '{name}'"
        asked[name] = _flag(_parameters(item.get("parameters"), where), "binary_data", binary_default, where)
    return asked


# Most JSON bytes one pixel value may take ("0.0039215686274509803, " and brackets), plus room for the rest.
JSON_BYTES_PER_VALUE = 32
JSON_OVERHEAD_BYTES = 64 * 1024


def check_json_size(header: bytes, max_batch: int) -> None:
    """PayloadTooLarge for a JSON part bigger than max_batch images could need.

    NOTE: parsed JSON costs ~16x its size in Python objects; without this cap a 20 MB body took +330 MiB.
    """
    limit = max_batch * math.prod(IMAGE_SHAPE) * JSON_BYTES_PER_VALUE + JSON_OVERHEAD_BYTES
    if len(header) > limit:
        raise PayloadTooLarge(
            f"the JSON part of the request is {len(header):,} bytes, more than the {limit:,} that {max_batch} "
            "images need: send fewer images, or the tensor as binary data (binary_data_size)"
        )


def parse_infer_request(body: bytes, header_length: str | None, *, max_batch: int, contract: Contract) -> InferRequest:
    """Parse and check a V2 inference request (JSON, then any binary tensors); BadRequest says what is wrong."""
    header, binary = split_body(body, header_length)
    check_json_size(header, max_batch)
    request = _load_json(header)
    request_id = request.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise BadRequest(f"'id' must be a string, got {_short(request_id)}")
    images = _parse_images(request.get("inputs"), binary, max_batch, contract.input.name)
    parameters = _parameters(request.get("parameters"), "the request")
    binary_default = _flag(parameters, "binary_data_output", False, "the request")
    outputs = _parse_outputs(request.get("outputs"), binary_default, contract.output_names)
    return InferRequest(images, outputs, request_id)


# ---- the response ------------------------------------------------------------------------------------


def encode_infer_response(model: dict[str, str], request: InferRequest, values: dict[str, np.ndarray]) -> InferResponse:
    """The response object as JSON (FP32 data as flat row-major lists), then binary outputs' raw bytes."""
    outputs, blobs = [], []
    for name, binary in request.outputs.items():
        array = values[name]  # (N, ...) float32
        tensor: dict[str, Any] = {"name": name, "datatype": OUTPUT_DATATYPE, "shape": list(array.shape)}
        if binary:
            blobs.append(np.ascontiguousarray(array, "<f4").tobytes())
            tensor["parameters"] = {"binary_data_size": len(blobs[-1])}
        else:
            # NOTE: orjson writes a float32 array ~15x faster than json + tolist(), in its shortest form.
            tensor["data"] = np.ascontiguousarray(array).reshape(-1)
        outputs.append(tensor)
    response: dict[str, Any] = {"model_name": model["name"], "model_version": model["version"]}
    if request.id is not None:
        response["id"] = request.id
    response["outputs"] = outputs
    header = orjson.dumps(response, option=orjson.OPT_SERIALIZE_NUMPY)
    if not blobs:
        return InferResponse(header, None)
    return InferResponse(b"".join([header, *blobs]), len(header))


# ---- the data plane ----------------------------------------------------------------------------------

# Small requests are parsed and answered on the event loop: one image's JSON (~4-5 KB) parses in ~60 us and its
# probabilities encode in ~3 us, less than a hop to a worker thread and back (which also contends for the GIL).
# The JSON's size, not the body's, sets the cost: binary tensor bytes are read with one np.frombuffer.
INLINE_MAX_JSON_BYTES = 16 * 1024
INLINE_MAX_OUTPUT_VALUES = 8192


class OpenInference:
    """The V2 data plane over the repository: metadata, and inference through each model version's engine."""

    def __init__(self, repository: ModelRepository, *, max_batch: int, max_bytes: int) -> None:
        self.repository = repository
        self.max_batch = max_batch  # images per request
        self.max_bytes = max_bytes  # request body, before and after Content-Encoding

    def check_model(self, name: str, version: str | None = None) -> None:
        """NotFound (404) unless the model (and version, if given) is served."""
        self.repository.resolve(name, version)

    def model_metadata(self, name: str, version: str | None = None) -> dict[str, Any]:
        """`GET /v2/models/{name}`: versions, platform, and each tensor's datatype and shape (-1: batch)."""
        contract = self.repository.resolve(name, version).contract

        def tensor(tensor_name: str, shape: tuple[int, ...]) -> dict[str, Any]:
            return {"name": tensor_name, "datatype": OUTPUT_DATATYPE, "shape": [-1, *shape]}

        return {
            "name": name,
            "versions": self.repository.versions(name),
            "platform": PLATFORM,
            "inputs": [tensor(contract.input.name, contract.input.shape)],
            "outputs": [tensor(spec.name, spec.shape) for spec in contract.outputs],
        }

    async def infer(
        self, name: str, version: str | None, body: bytes, *, header_length: str | None, content_encoding: str | None
    ) -> InferResponse:
        """Run one V2 inference request (the body as received) and encode the response.

        header_length is the Inference-Header-Content-Length header, content_encoding the Content-Encoding.
        """
        with self.repository.resolve(name, version) as model:  # the one version this request runs on, held
            contract = model.contract
            if content_encoding is None and json_length(body, header_length) <= INLINE_MAX_JSON_BYTES:
                request = self._parse(body, header_length, None, contract)  # small: cheaper than a thread hop
            else:
                request = await anyio.to_thread.run_sync(self._parse, body, header_length, content_encoding, contract)
            values = await model.engine.infer(request.images, tuple(request.outputs))
        if sum(values[name].size for name in request.outputs) <= INLINE_MAX_OUTPUT_VALUES:
            return encode_infer_response(model.identity, request, values)
        return await anyio.to_thread.run_sync(encode_infer_response, model.identity, request, values)

    def _parse(
        self, body: bytes, header_length: str | None, content_encoding: str | None, contract: Contract
    ) -> InferRequest:
        body = decompress(body, content_encoding, self.max_bytes)
        return parse_infer_request(body, header_length, max_batch=self.max_batch, contract=contract)

    def is_ready(self, name: str, version: str | None = None) -> bool:
        """Whether the model (that version) serves now; NotFound (404) if the repository does not know it."""
        return self.repository.is_ready(name, version)
