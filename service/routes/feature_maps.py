"""What each layer of the network makes of an image: as data, or as a picture."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from service.deps import check_query, model_of, read_image, settings_of
from service.featuremaps import MapFormat
from service.inference import check_png_layer, parse_layers
from service.routing import json_response
from service.schemas import FeatureMapsResponse, error_responses, image_request_body

router = APIRouter(prefix="/feature-maps", tags=["feature maps"])

LayersQuery = Annotated[
    str | None,
    Query(
        description="Comma-separated layer names of the model (GET /models lists each model's outputs); "
        "default all. `input` may be named too: the 28x28 input is in every answer.",
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
    responses=error_responses(400, 404, 413, 415, 422, 503),
    openapi_extra=image_request_body("file"),
)
async def read_feature_maps(request: Request, layers: LayersQuery = None, format: FormatQuery = "json") -> Response:
    """The prediction, the 28x28 input the model saw and the activations of the asked layers."""
    check_query(request, ("layers", "format", "model", "version"))  # a bad query fails before the body is read
    parse_layers(layers, model_of(request).contract)  # 400 or 404 before the body is read
    upload = await read_image(request, settings_of(request))
    with model_of(request) as model:  # the version serving now (a newer one may have other layers)
        asked = parse_layers(layers, model.contract)
        # NOTE: already plain JSON types; orjson skips re-validating and re-encoding ~40k floats the slow way
        return json_response(await model.predictor.feature_maps(upload, asked, format))


@router.post(
    "/{layer}.png",
    response_class=Response,
    responses={
        200: {"content": {"image/png": {}}, "description": "The layer as a picture."},
        **error_responses(400, 404, 413, 415, 422, 503),
    },
    openapi_extra=image_request_body("file"),
    summary="Draw a layer's feature maps as PNG",
    description="One layer of the model as a picture: `input`, or any of the model's outputs (GET /models).",
)
async def draw_feature_maps(request: Request, layer: str) -> Response:
    """One layer as a picture: channels as a viridis grid, vectors as a strip, class scores as bars."""
    check_query(request, ("model", "version"))
    check_png_layer(layer, model_of(request).contract)  # 404 before the body is read
    upload = await read_image(request, settings_of(request))
    with model_of(request) as model:
        check_png_layer(layer, model.contract)
        return Response(await model.predictor.layer_png(upload, layer), media_type="image/png")
