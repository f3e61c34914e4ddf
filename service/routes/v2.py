"""The Open Inference Protocol (KServe V2) over REST, with Triton's binary tensor data extension."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from service.errors import ModelNotReady
from service.routing import LeanRoute
from service.schemas import ErrorResponse
from service.uploads import read_body
from service.v2 import InferResponse, OpenInference, server_metadata

router = APIRouter(prefix="/v2", tags=["Open Inference Protocol (V2)"])

HEADER_LENGTH = "Inference-Header-Content-Length"


# NOTE: `async def`, as in service/deps.py: a plain `def` dependency costs every V2 request (health too) a
# thread hop. The data plane itself is built once, in the lifespan, beside the predictor it runs on.
async def get_open_inference(request: Request) -> OpenInference:
    """The V2 data plane; ModelNotReady (503) until the lifespan has loaded the model."""
    plane: OpenInference | None = request.app.state.open_inference
    if plane is None:
        raise ModelNotReady("the model is not loaded yet: retry in a moment (watch /v2/health/ready)")
    return plane


async def find_open_inference(request: Request) -> OpenInference | None:
    """The data plane, or None while the model is not loaded (health answers false, not 503)."""
    plane: OpenInference | None = request.app.state.open_inference
    return plane


OpenInferenceDep = Annotated[OpenInference, Depends(get_open_inference)]
MaybeOpenInference = Annotated[OpenInference | None, Depends(find_open_inference)]


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": ErrorResponse} for code in codes}


# The protocol's health answers: 200 for true, 400 for false, and no body.
HEALTH_ANSWERS: dict[int | str, dict[str, Any]] = {200: {"description": "True."}, 400: {"description": "False."}}
INFER_ANSWERS: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The inference response; binary outputs' bytes follow the JSON "
        f"(application/octet-stream, {HEADER_LENGTH} gives the JSON's length).",
        "content": {"application/json": {}, "application/octet-stream": {}},
    },
    **_errors(400, 404, 413, 503),
}
MODEL_HEALTH_ANSWERS = {**HEALTH_ANSWERS, **_errors(404)}
INFER_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": f"A V2 inference request: JSON, then any binary inputs' bytes ({HEADER_LENGTH} "
        "gives the JSON's length). Input 'image': FP32 [N, 1, 28, 28] in [0, 1], or UINT8 0-255.",
        "content": {
            "application/json": {
                "example": {
                    "id": "42",
                    "inputs": [{"name": "image", "shape": [1, 784], "datatype": "UINT8", "data": [0] * 784}],
                    "outputs": [{"name": "probabilities"}],
                }
            },
            "application/octet-stream": {},
        },
    }
}


def _health(true: bool) -> Response:
    return Response(status_code=200 if true else 400)


def _encoded(result: InferResponse) -> Response:
    if result.json_length is None:
        return Response(result.body, media_type="application/json")
    headers = {HEADER_LENGTH: str(result.json_length)}
    return Response(result.body, media_type="application/octet-stream", headers=headers)


async def _infer(request: Request, plane: OpenInference, name: str, version: str | None) -> Response:
    plane.check_model(name, version)  # 404 before the body is read
    body = await read_body(request, plane.max_bytes)
    headers = request.headers
    result = await plane.infer(
        name, version, body, header_length=headers.get(HEADER_LENGTH), content_encoding=headers.get("content-encoding")
    )
    return _encoded(result)


@router.get("")
async def read_server_metadata() -> dict[str, Any]:
    """Server name, version and extensions (`binary_tensor_data`)."""
    return server_metadata()


@router.get("/health/live", response_class=Response, responses=HEALTH_ANSWERS)
async def check_server_live() -> Response:
    """200 while the server answers at all."""
    return _health(True)


@router.get("/health/ready", response_class=Response, responses=HEALTH_ANSWERS)
async def check_server_ready(plane: MaybeOpenInference) -> Response:
    """200 once the models are loaded and the default model serves; 400 otherwise."""
    return _health(plane is not None and plane.repository.ready)


@router.get("/models/{model_name}", responses=_errors(404, 503))
async def read_model_metadata(model_name: str, plane: OpenInferenceDep) -> dict[str, Any]:
    """The model's versions, platform, and each input and output tensor's datatype and shape (-1: any batch)."""
    return plane.model_metadata(model_name)


@router.get("/models/{model_name}/versions/{model_version}", responses=_errors(404, 503))
async def read_model_version_metadata(model_name: str, model_version: str, plane: OpenInferenceDep) -> dict[str, Any]:
    """The metadata of one version of the model."""
    return plane.model_metadata(model_name, model_version)


@router.get("/models/{model_name}/ready", response_class=Response, responses=MODEL_HEALTH_ANSWERS)
async def check_model_ready(model_name: str, plane: MaybeOpenInference) -> Response:
    """200 while a version of the model serves; 400 while none does (loading, unloaded, refused); 404 unknown."""
    return _health(plane is not None and plane.is_ready(model_name))


@router.get(
    "/models/{model_name}/versions/{model_version}/ready", response_class=Response, responses=MODEL_HEALTH_ANSWERS
)
async def check_model_version_ready(model_name: str, model_version: str, plane: MaybeOpenInference) -> Response:
    """200 while that version serves; 400 while it does not; 404 for a model or version the server does not know."""
    return _health(plane is not None and plane.is_ready(model_name, model_version))


# NOTE: the hot path, as /predict: LeanRoute (no dependency injection, no router scan: service/routing.py).
# The endpoints read their path parameters themselves; _path_parameters documents them.
infer_router = APIRouter(prefix="/v2", tags=["Open Inference Protocol (V2)"], route_class=LeanRoute)


def _path_parameters(*names: str) -> dict[str, Any]:
    return {
        "parameters": [{"name": name, "in": "path", "required": True, "schema": {"type": "string"}} for name in names]
    }


async def _infer_request(request: Request) -> Response:
    plane = await get_open_inference(request)  # a lean route resolves its dependency itself
    params = request.path_params
    return await _infer(request, plane, params["model_name"], params.get("model_version"))


@infer_router.post(
    "/models/{model_name}/infer",
    response_class=Response,
    responses=INFER_ANSWERS,
    openapi_extra={**INFER_BODY, **_path_parameters("model_name")},
)
async def infer_model(request: Request) -> Response:
    """Run the model on a V2 inference request, in JSON or with binary tensors."""
    return await _infer_request(request)


@infer_router.post(
    "/models/{model_name}/versions/{model_version}/infer",
    response_class=Response,
    responses=INFER_ANSWERS,
    openapi_extra={**INFER_BODY, **_path_parameters("model_name", "model_version")},
)
async def infer_model_version(request: Request) -> Response:
    """Run one version of the model on a V2 inference request."""
    return await _infer_request(request)
