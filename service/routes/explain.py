"""Where the model looks: the attribution of one class over the input, as numbers or as a picture."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from service.deps import check_query, model_of, read_image, settings_of
from service.explain import DEFAULT_PATCH, DEFAULT_STRIDE, METHODS
from service.routing import json_response
from service.schemas import ExplainResponse, error_responses, image_request_body

router = APIRouter(prefix="/explain", tags=["explanations"])

QUERY = ("method", "target", "patch", "stride", "model", "version")
MethodQuery = Annotated[
    str,
    Query(description=f"{' or '.join(METHODS)}; GET /models lists what each model supports.", examples=["gradcam"]),
]
TargetQuery = Annotated[
    str | None, Query(description="The class to explain (0-9); default the predicted one.", examples=["1"])
]
PatchQuery = Annotated[int, Query(description="occlusion: side of the blanked square, in input pixels (1-28).")]
StrideQuery = Annotated[int, Query(description="occlusion: pixels between patch positions (1-28).")]
ANSWERS = error_responses(400, 404, 413, 415, 422, 503)


@dataclass(frozen=True, slots=True)
class ExplainQuery:
    """What both routes take in the query (FastAPI reads and documents each field)."""

    method: MethodQuery = "occlusion"
    target: TargetQuery = None
    patch: PatchQuery = DEFAULT_PATCH
    stride: StrideQuery = DEFAULT_STRIDE


ExplainDep = Annotated[ExplainQuery, Depends()]


async def _explained(request: Request, asked: ExplainQuery, *, picture: bool) -> Response:
    check_query(request, QUERY)
    method, patch, stride = asked.method, asked.patch, asked.stride
    model_of(request).explainer.check(method, asked.target, patch, stride)  # 400 or 404 before the body is read
    upload = await read_image(request, settings_of(request))
    with model_of(request) as model:  # the version serving now, held until its answer is computed
        target = model.explainer.check(method, asked.target, patch, stride)
        explainer = model.explainer
        if picture:
            return Response(await explainer.picture(upload, method, target, patch, stride), media_type="image/png")
        return json_response(await explainer.explain(upload, method, target, patch, stride))


@router.post("", response_model=ExplainResponse, responses=ANSWERS, openapi_extra=image_request_body("file"))
async def explain_digit(request: Request, asked: ExplainDep) -> Response:
    """Which pixels made the model answer (or not answer) the target class: positive is evidence for it."""
    return await _explained(request, asked, picture=False)


@router.post(
    ".png",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}, "description": "The heatmap over the input."}, **ANSWERS},
    openapi_extra=image_request_body("file"),
)
async def draw_explanation(request: Request, asked: ExplainDep) -> Response:
    """The attribution as a heatmap over the input the model saw: red for the target, blue against, a legend."""
    return await _explained(request, asked, picture=True)
