"""Response bodies, with the examples /docs shows."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

EXAMPLE_MODEL: dict[str, Any] = {"name": "mnist_cnn", "version": "1.0.0", "sha256": "9f2c…e41a"}
EXAMPLE_PROBABILITIES = [1e-06, 2e-06, 3e-05, 1e-06, 4e-07, 1e-06, 1e-08, 0.99991, 2e-06, 5e-05]
EXAMPLE_TIMINGS: dict[str, Any] = {"decode_preprocess": 0.41, "inference": 0.12, "total": 0.61}
EXAMPLE_PREDICTION: dict[str, Any] = {
    "digit": 7,
    "confidence": 0.99991,
    "probabilities": EXAMPLE_PROBABILITIES,
    "unsure": False,
    "unsure_reasons": [],
    "model": EXAMPLE_MODEL,
    "timings_ms": EXAMPLE_TIMINGS,
}


class ErrorResponse(BaseModel):
    """Every non-2xx answer: what is wrong and what to do about it."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"error": "request body is over the limit"}]})

    error: str = Field(description="What went wrong and how to fix the request.")


class ModelIdentity(BaseModel):
    """Which model answered."""

    name: str
    version: str
    sha256: str = Field(description="SHA-256 of the ONNX file, as checked at start-up.")


class Timings(BaseModel):
    """Server-side milliseconds spent on this answer after the body was read."""

    decode_preprocess: float = Field(description="Decoding the image and the MNIST preprocessing.")
    inference: float = Field(description="The onnxruntime run (for a batch: the whole batch's run).")
    total: float = Field(description="Everything above plus bookkeeping (for a batch: the whole batch).")


class PredictResponse(BaseModel):
    """The digit the model sees in the image."""

    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLE_PREDICTION]})

    digit: int = Field(ge=0, le=9, description="The most probable digit.")
    confidence: float = Field(description="Its probability.")
    probabilities: list[float] = Field(description="Probability of each digit 0-9, summing to 1.")
    unsure: bool = Field(
        description="True when the answer should not be trusted: the ink does not look like a digit, or the "
        "model is unsure. Show the digit as a guess, or ask for another image (docs/trust.md)."
    )
    unsure_reasons: list[str] = Field(
        description="Why, in words a person reads; empty when sure. At most one of 'too little ink', "
        "'a blob, not a digit', 'a line, not a digit', 'a scribble, not a digit' (the ink's shape before "
        "scaling), then 'low confidence (0.41)' (the answer's confidence) when it is under 0.5.",
        examples=[["a blob, not a digit", "low confidence (0.41)"]],
    )
    model: ModelIdentity
    timings_ms: Timings


class BatchPredictResponse(BaseModel):
    """One prediction per uploaded file, in upload order."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"predictions": [EXAMPLE_PREDICTION]}]})

    predictions: list[PredictResponse]


class FeatureMap(BaseModel):
    """One layer's activations for the image, without the batch dimension."""

    name: str = Field(description="Layer name, or 'input' for the 28x28 image the model saw.")
    kind: str = Field(description="conv, pool, block (maps C x H x W); flatten, gap, dense, probabilities (vectors).")
    shape: list[int] = Field(description="Shape of the values, e.g. [32, 26, 26].")
    min: float
    max: float
    data: Any = Field(
        description="format=json: nested lists of floats in `shape`. format=compact: base64 of uint8 "
        "codes q in C order, value ≈ offset + scale * q."
    )
    scale: float | None = Field(None, description="compact only: value step per code.")
    offset: float | None = Field(None, description="compact only: the value of code 0.")


EXAMPLE_MAP: dict[str, Any] = {
    "name": "logits",
    "shape": [10],
    "min": -3.2,
    "max": 9.1,
    "data": "AAoUHig8UGR4jA==",
    "scale": 0.048,
    "offset": -3.2,
}


class FeatureMapsResponse(PredictResponse):
    """The prediction, the input the model saw and the asked layers' activations."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    **EXAMPLE_PREDICTION,
                    "input": {**EXAMPLE_MAP, "name": "input", "shape": [1, 28, 28], "data": "AAAA…"},
                    "layers": [EXAMPLE_MAP],
                }
            ]
        }
    )

    input: FeatureMap
    layers: list[FeatureMap]


class Attribution(BaseModel):
    """A (28, 28) map over the input: positive where the pixels are evidence for the target class."""

    shape: list[int]
    data: list[list[float]]


class ExplainResponse(BaseModel):
    """Where the model looks for one class: the prediction, the attribution map and the input it covers."""

    digit: int
    confidence: float
    target: int = Field(description="The class explained: the one asked for, else the predicted digit.")
    target_probability: float
    method: Literal["occlusion", "gradcam"]
    parameters: dict[str, Any] = Field(
        description="occlusion: patch, stride, copies (images in its one batched run); gradcam: layer."
    )
    attribution: Attribution
    input: FeatureMap = Field(description="The 28x28 input the model saw, as /feature-maps gives it.")
    model: ModelIdentity
    timings_ms: Timings


class LiveResponse(BaseModel):
    """The process answers; says nothing about the model (that is readiness)."""

    status: Literal["live"]


class ReadyResponse(BaseModel):
    """The models are loaded and the default model serves: every model version serving now."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"status": "ready", "default_model": "mnist_cnn", "models": [EXAMPLE_MODEL]}]}
    )

    status: Literal["ready"]
    default_model: str = Field(description="The model a request without ?model= gets.")
    models: list[ModelIdentity] = Field(description="Every model version served.")


class RepositoryIndexEntry(BaseModel):
    """One model version in the repository index."""

    name: str
    version: str
    state: Literal["READY", "LOADING", "UNAVAILABLE"]
    reason: str = Field(description="Why it is not READY (empty when it is), in words a person can act on.")


class ModelControlResponse(BaseModel):
    """What a load or unload did to one model."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"name": "mnist_cnn", "loaded": ["2"], "unloaded": ["1"], "serving": ["2"]}]}
    )

    name: str
    loaded: list[str] = Field(description="Versions loaded (new, or reloaded because their files changed).")
    unloaded: list[str] = Field(description="Versions that stopped serving, drained and were released.")
    serving: list[str] = Field(description="Versions served now, newest first.")


class LayerSpec(BaseModel):
    """One output of a model: a layer whose activations the feature-map routes return."""

    name: str
    kind: str = Field(description="conv, pool, block (maps C x H x W); flatten, gap, dense, probabilities (vectors).")
    shape: list[int] = Field(description="Per image, without the batch dimension.")


class ModelSummary(ModelIdentity):
    """A model as GET /models lists it (its newest version served)."""

    versions: list[str] = Field(description="Versions served, newest first.")
    ready: bool
    architecture: Any = Field(None, description="From the card: which architecture, in a few words.")
    parameters: int | None = None
    test_accuracy: float | None = Field(None, description="MNIST test-set accuracy recorded in the card.")
    outputs: list[LayerSpec] = Field(description="Every output in graph order: the model's layers.")
    explanations: list[str] = Field(description="The /explain methods this model supports (occlusion, gradcam).")


class ModelsResponse(BaseModel):
    """The models served and the default one."""

    default_model: str
    models: list[ModelSummary]


class ModelCardResponse(BaseModel):
    """The model card written at export: identity, contract, layer table, training and metrics."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    **EXAMPLE_MODEL,
                    "input": {"name": "image", "dtype": "float32", "shape": ["N", 1, 28, 28]},
                    "layers": [
                        {
                            "name": "conv1",
                            "type": "Conv2d(1, 32, 3) + ReLU",
                            "output_shape": ["N", 32, 26, 26],
                            "parameters": 320,
                        },
                    ],
                    "metrics": {"test_accuracy": 0.9921},
                }
            ]
        },
    )

    name: str
    version: str
    sha256: str
    layers: list[dict[str, Any]] = Field(default_factory=list, description="name, type, output_shape, parameters.")


# ---- OpenAPI documentation of what routes read themselves --------------------------------------------

IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/bmp", "image/webp", "image/tiff")
_BINARY = {"type": "string", "format": "binary"}

ERROR_EXAMPLES = {
    400: (
        "Malformed request",
        "no file in form field 'file': send multipart/form-data with the image in ...",
    ),
    401: ("No valid API key", "this endpoint needs an API key: send it as 'Authorization: Bearer <key>' or ..."),
    403: ("Model control is off", "model control is off (MNIST_MODEL_CONTROL=none): the repository is read only ..."),
    404: ("Unknown model, version or layer", "unknown model 'mnist_cnn9': this server serves mnist_cnn, mnist_modern"),
    413: (
        "Too large",
        "request body (6,291,456 bytes) is over the limit of 5,242,880 bytes: send a smaller image",
    ),
    415: (
        "Not a supported image",
        "not a readable image: the upload is not PNG, JPEG, GIF, BMP, WebP or TIFF ...",
    ),
    422: (
        "Image cannot be used (or, for a load, a model version refused)",
        "no digit found: the image is blank or nearly uniform; upload a picture ...",
    ),
    503: ("Model not loaded yet", "the model is not loaded yet: retry in a moment (watch /health/ready)"),
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` entries documenting error answers, each with an example body."""
    return {
        code: {
            "model": ErrorResponse,
            "description": ERROR_EXAMPLES[code][0],
            "content": {"application/json": {"example": {"error": ERROR_EXAMPLES[code][1]}}},
        }
        for code in codes
    }


MODEL_PARAMETERS: list[dict[str, Any]] = [
    {
        "name": "model",
        "in": "query",
        "required": False,
        "schema": {"type": "string"},
        "description": "The model to run (GET /models lists them); default: the server's default model.",
        "examples": {"classic": {"value": "mnist_cnn"}, "modern": {"value": "mnist_modern"}},
    },
    {
        "name": "version",
        "in": "query",
        "required": False,
        "schema": {"type": "string"},
        "description": "The model version; default: the newest one served.",
    },
]


def image_request_body(field: str, *, many: bool = False) -> dict[str, Any]:
    """`openapi_extra` for a route that reads its own body: multipart field(s) or one raw image.

    It declares the ?model= and ?version= query parameters too, which these routes read themselves.
    """
    if many:
        part = {"type": "array", "items": _BINARY, "minItems": 1, "description": "Images, one per digit, in order."}
        curl = f"curl -F {field}=@three.png -F {field}=@seven.png http://localhost:8000/predict/batch"
    else:
        part = {**_BINARY, "description": "An image of one digit: PNG, JPEG, GIF, BMP, WebP or TIFF."}
        curl = f"curl -F {field}=@digit.png http://localhost:8000/predict"
    return {
        "parameters": MODEL_PARAMETERS,
        "requestBody": {
            "required": True,
            "description": (
                f"multipart/form-data with field `{field}`, or the raw image as the body with its image/* "
                f"Content-Type. Example: `{curl}` or "
                "`curl --data-binary @digit.png -H 'Content-Type: image/png' http://localhost:8000/predict`"
            ),
            "content": {
                "multipart/form-data": {
                    "schema": {"type": "object", "required": [field], "properties": {field: part}},
                    "encoding": {field: {"contentType": ", ".join(IMAGE_TYPES)}},
                },
                **{media_type: {"schema": _BINARY} for media_type in IMAGE_TYPES},
            },
        },
    }
