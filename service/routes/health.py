"""Liveness and readiness probes."""

from __future__ import annotations

from fastapi import APIRouter

from service.deps import RepositoryDep
from service.errors import ModelNotReady
from service.schemas import LiveResponse, ModelIdentity, ReadyResponse, error_responses

router = APIRouter(prefix="/health", tags=["health"])


@router.get("/live", response_model=LiveResponse)
async def check_live() -> LiveResponse:
    """200 while the process answers at all (the models may still be loading: see /health/ready)."""
    return LiveResponse(status="live")


@router.get("/ready", response_model=ReadyResponse, responses=error_responses(503))
async def check_ready(repository: RepositoryDep) -> ReadyResponse:
    """200 once the repository's models are loaded and the default model serves, naming every version serving;
    503 before, or while the default model serves no version (it was unloaded)."""
    if not repository.ready:
        raise ModelNotReady(f"the default model is not serving: {repository.why_not(repository.default_model)}")
    models = [ModelIdentity(**model.identity) for model in repository.models()]
    return ReadyResponse(status="ready", default_model=repository.default_model, models=models)
