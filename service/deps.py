"""Dependencies as Annotated aliases, so a handler's signature reads like a sentence."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import Annotated

from fastapi import Depends, Request

from service.config import Settings
from service.errors import BadRequest, ModelNotReady
from service.metrics import Metrics
from service.repository import ModelRepository, ServedModel
from service.uploads import Upload, read_uploads


def settings_of(request: Request) -> Settings:
    """The app's settings (for handlers that read their request themselves)."""
    return request.app.state.settings


def repository_of(request: Request) -> ModelRepository:
    """The app's model repository; ModelNotReady (503) until the lifespan has loaded the models."""
    repository: ModelRepository | None = request.app.state.repository
    if repository is None:
        raise ModelNotReady("the models are not loaded yet: retry in a moment (watch /health/ready)")
    return repository


def model_of(request: Request) -> ServedModel:
    """The model version a request asks for with ?model= and ?version= (default: the default model, newest).

    `with model_of(request) as model:` holds that version while the request uses it: replaced meanwhile,
    it finishes this request before it is released.
    """
    repository = repository_of(request)
    if not request.scope["query_string"]:  # the usual request: nothing to parse
        return repository.resolve()
    query = request.query_params
    return repository.resolve(query.get("model"), query.get("version"))


# NOTE: dependencies are `async def` on purpose: FastAPI runs a plain `def` dependency on a worker thread,
# a thread hop per dependency per request for what is an attribute lookup.
async def get_settings_of_app(request: Request) -> Settings:
    return settings_of(request)


async def get_metrics(request: Request) -> Metrics:
    return request.app.state.metrics


async def get_repository(request: Request) -> ModelRepository:
    return repository_of(request)


SettingsDep = Annotated[Settings, Depends(get_settings_of_app)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
RepositoryDep = Annotated[ModelRepository, Depends(get_repository)]


def check_query(request: Request, allowed: Sequence[str]) -> None:
    """BadRequest (400) for a query parameter the endpoint does not take, naming the likely one: a misspelt
    `?layer=` would otherwise be ignored silently and the answer would not be what was asked for."""
    if not request.scope["query_string"]:  # the usual request: nothing to parse
        return
    for name in request.query_params:
        if name not in allowed:
            raise BadRequest(_unknown_query(name, request.url.path, allowed))


def _unknown_query(name: str, path: str, allowed: Sequence[str]) -> str:
    shown = repr(name if len(name) <= 40 else name[:40] + "...")
    if not allowed:
        return f"unknown query parameter {shown}: {path[:100]} takes no query parameters"
    close = difflib.get_close_matches(name, allowed, n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    return f"unknown query parameter {shown}: {hint}{path[:100]} takes {', '.join(allowed)}"


async def read_image(request: Request, settings: SettingsDep) -> Upload:
    """The one image of a request: form field `file`, or the raw image/* body."""
    limit = settings.max_upload_bytes
    uploads = await read_uploads(request, field="file", max_files=2, max_bytes=limit, max_file_bytes=limit)
    if len(uploads) > 1:
        raise BadRequest("more than one file in field 'file': send one image here, or several to /predict/batch")
    return uploads[0]


async def read_images(request: Request, settings: SettingsDep) -> list[Upload]:
    """The images of a batch: repeated form field `files` (or one raw image/* body), in upload order."""
    return await read_uploads(
        request,
        field="files",
        max_files=settings.max_batch_files,
        max_bytes=settings.max_batch_upload_bytes,
        max_file_bytes=settings.max_upload_bytes,
    )
