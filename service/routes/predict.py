"""Digit predictions for one image or a batch."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from service.deps import check_query, model_of, read_image, read_images, settings_of
from service.routing import LeanRoute, json_response
from service.schemas import BatchPredictResponse, PredictResponse, error_responses, image_request_body

# NOTE: the hot path. LeanRoute: no dependency injection or response validation; the handlers read the
# query and body with our own code. openapi_extra and response_model keep /docs exact.
MODEL_QUERY = ("model", "version")
router = APIRouter(prefix="/predict", tags=["predict"], route_class=LeanRoute)


@router.post(
    "",
    response_model=PredictResponse,
    responses=error_responses(400, 404, 413, 415, 422, 503),
    openapi_extra=image_request_body("file"),
)
async def predict_digit(request: Request) -> Response:
    """The digit in one image (form field `file`, or the raw image body), by `?model=` (default model)."""
    check_query(request, MODEL_QUERY)
    model_of(request)  # 404 before the body is read
    upload = await read_image(request, settings_of(request))
    with model_of(request) as model:  # the version serving now, held until its answer is computed
        return json_response((await model.predictor.predict([upload]))[0])


@router.post(
    "/batch",
    response_model=BatchPredictResponse,
    responses=error_responses(400, 404, 413, 415, 422, 503),
    openapi_extra=image_request_body("files", many=True),
)
async def predict_digits(request: Request) -> Response:
    """The digit in each image (repeated form field `files`), in upload order, from one model run.

    If any image is bad, the whole request fails, and the error names the file by index and file name.
    """
    check_query(request, MODEL_QUERY)
    model_of(request)
    uploads = await read_images(request, settings_of(request))
    with model_of(request) as model:
        return json_response({"predictions": await model.predictor.predict(uploads, name_files=True)})
