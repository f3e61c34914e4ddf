"""The models served: a list for choosing, and each version's card (what it is, how it was trained, how good)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from service.deps import RepositoryDep
from service.schemas import ModelCardResponse, ModelsResponse, error_responses

router = APIRouter(tags=["models"])


@router.get("/models", response_model=ModelsResponse, responses=error_responses(503))
async def list_models(repository: RepositoryDep) -> Any:
    """Every model served: its versions, architecture, parameters, test accuracy and outputs (its layers)."""
    models = []
    for name in repository.names:
        versions = repository.versions(name)
        newest = repository.resolve(name, versions[0]).summary()
        models.append({**newest, "versions": versions, "ready": True})
    return {"default_model": repository.default_model, "models": models}


@router.get("/models/{model_name}", response_model=ModelCardResponse, responses=error_responses(404, 503))
async def read_model_card(model_name: str, repository: RepositoryDep) -> Any:
    """The card of the model's newest version served."""
    return repository.resolve(model_name).runtime.card


@router.get(
    "/models/{model_name}/versions/{model_version}",
    response_model=ModelCardResponse,
    responses=error_responses(404, 503),
)
async def read_model_version_card(model_name: str, model_version: str, repository: RepositoryDep) -> Any:
    """The card of one version of the model."""
    return repository.resolve(model_name, model_version).runtime.card


@router.get("/model", response_model=ModelCardResponse, responses=error_responses(404, 503))
async def read_default_model_card(repository: RepositoryDep) -> Any:
    """The default model's card: identity, input/output contract, layer table, training and metrics (404 while
    the default model is unloaded)."""
    return repository.resolve().runtime.card
