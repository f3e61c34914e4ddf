"""What each layer of the network makes of an image: as data, or as a picture."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, Response

from service.deps import ImageUpload, PngLayer, PredictorDep
from service.featuremaps import MapFormat
from service.inference import PNG_LAYERS, parse_layers
from service.runtime import LAYER_NAMES
from service.schemas import FeatureMapsResponse, error_responses, image_request_body

router = APIRouter(prefix="/feature-maps", tags=["feature maps"])

LayersQuery = Annotated[
    str | None,
    Query(
        description=f"Comma-separated layer names from {', '.join(LAYER_NAMES)}; default all.",
        examples=["conv1,pool2,probabilities"],
    ),
]
FormatQuery = Annotated[
    MapFormat,
    Query(description="json: nested float lists; compact: base64 uint8 codes with scale and offset."),
]


@router.post(
    "",
    response_model=FeatureMapsResponse,
    responses=error_responses(400, 413, 415, 422, 503),
    openapi_extra=image_request_body("file"),
)
async def read_feature_maps(
    upload: ImageUpload, predictor: PredictorDep, layers: LayersQuery = None, format: FormatQuery = "json"
) -> Any:
    """The prediction, the 28x28 input the model saw and the activations of the asked layers."""
    result = await predictor.feature_maps(upload, parse_layers(layers), format)
    return JSONResponse(result)  # NOTE: already plain JSON types; skips re-validating ~40k floats


@router.post(
    "/{layer}.png",
    response_class=Response,
    responses={
        200: {"content": {"image/png": {}}, "description": "The layer as a picture."},
        **error_responses(400, 404, 413, 415, 422, 503),
    },
    openapi_extra=image_request_body("file"),
    summary="Draw a layer's feature maps as PNG",
    description=f"One layer as a picture. Layers: {', '.join(PNG_LAYERS)}.",
)
async def draw_feature_maps(layer: PngLayer, upload: ImageUpload, predictor: PredictorDep) -> Response:
    """One layer as a picture: channels as a viridis grid, `flatten` as a strip, scores as bars."""
    return Response(await predictor.layer_png(upload, layer), media_type="image/png")
