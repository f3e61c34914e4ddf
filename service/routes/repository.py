"""Model control over HTTP (Triton's model-repository extension): the index, and load or unload a model."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Request

from service.control import ModelControl
from service.deps import RepositoryDep, settings_of
from service.errors import BadRequest, Forbidden, ModelNotReady
from service.schemas import (
    ModelControlResponse,
    RepositoryIndexEntry,
    error_responses,
)
from service.uploads import read_body

router = APIRouter(prefix="/v2/repository", tags=["model repository"])

MAX_CONTROL_BODY = 64 * 1024  # bytes: a control request is at most a small JSON object


async def get_model_control(request: Request) -> ModelControl:
    """The model control; Forbidden (403) with MNIST_MODEL_CONTROL=none, ModelNotReady (503) while starting."""
    if settings_of(request).model_control == "none":
        raise Forbidden(
            "model control is off (MNIST_MODEL_CONTROL=none): the repository is read only at start-up; "
            "restart the server with MNIST_MODEL_CONTROL=explicit or poll to load and unload models"
        )
    control: ModelControl | None = request.app.state.model_control
    if control is None:
        raise ModelNotReady("the models are not loaded yet: retry in a moment (watch /health/ready)")
    return control


ControlDep = Annotated[ModelControl, Depends(get_model_control)]


async def read_options(request: Request, allowed: tuple[str, ...] = ()) -> dict[str, Any]:
    """The optional JSON object body of a repository request; BadRequest for anything else or unknown keys."""
    body = await read_body(request, MAX_CONTROL_BODY)
    if not body.strip():
        return {}
    try:
        options = orjson.loads(body)
    except orjson.JSONDecodeError as err:
        raise BadRequest(f"the body must be empty or a JSON object: {err}") from None
    if not isinstance(options, dict):
        raise BadRequest("the body must be empty or a JSON object")
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        takes = f"takes only {', '.join(allowed)}" if allowed else "takes no options"
        raise BadRequest(
            f"unknown option '{unknown[0]:.40}': {request.url.path[:100]} {takes} "
            "(to load new files, copy them into the repository first)"
        )
    return options


@router.post("/index", response_model=list[RepositoryIndexEntry], responses=error_responses(400, 503))
async def read_repository_index(request: Request, repository: RepositoryDep) -> Any:
    """Every model version found or served: READY, LOADING or UNAVAILABLE, and why when not READY.

    Body (optional): `{"ready": true}` lists only the versions that are READY.
    """
    options = await read_options(request, ("ready",))
    only_ready = options.get("ready", False)
    if not isinstance(only_ready, bool):
        raise BadRequest("option 'ready' must be true or false")
    rows = repository.index()
    return [row for row in rows if row["state"] == "READY"] if only_ready else rows


@router.post(
    "/models/{model_name}/load",
    response_model=ModelControlResponse,
    responses=error_responses(400, 401, 403, 404, 422, 503),
)
async def load_model(request: Request, model_name: str, control: ControlDep) -> Any:
    """Re-read the model's folder and apply its version policy: new or changed versions are verified, warmed up
    and take traffic; versions removed or no longer selected finish their requests and are released. Answers
    when done; 422 if a version was refused (what served before keeps serving)."""
    await read_options(request)
    return (await control.load(model_name)).describe()


@router.post(
    "/models/{model_name}/unload",
    response_model=ModelControlResponse,
    responses=error_responses(400, 401, 403, 404, 503),
)
async def unload_model(request: Request, model_name: str, control: ControlDep) -> Any:
    """Stop serving the model: it finishes the requests it holds and is released; it stays unloaded (SIGHUP and
    polling leave it so) until it is loaded again."""
    await read_options(request, ("unload_dependents",))
    return (await control.unload(model_name)).describe()
