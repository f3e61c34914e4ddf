"""Digit predictions for one image or a batch."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from service.deps import ImageUpload, ImageUploads, PredictorDep
from service.schemas import BatchPredictResponse, PredictResponse, error_responses, image_request_body

router = APIRouter(prefix="/predict", tags=["predict"])


@router.post(
    "",
    response_model=PredictResponse,
    responses=error_responses(400, 413, 415, 422, 503),
    openapi_extra=image_request_body("file"),
)
async def predict_digit(upload: ImageUpload, predictor: PredictorDep) -> Any:
    """The digit in one image (form field `file`, or the raw image body)."""
    return (await predictor.predict([upload]))[0]


@router.post(
    "/batch",
    response_model=BatchPredictResponse,
    responses=error_responses(400, 413, 415, 422, 503),
    openapi_extra=image_request_body("files", many=True),
)
async def predict_digits(uploads: ImageUploads, predictor: PredictorDep) -> Any:
    """The digit in each image (repeated form field `files`), in upload order, from one model run.

    If any image is bad, the whole request fails, and the error names the file by index and file name.
    """
    return {"predictions": await predictor.predict(uploads, name_files=True)}
