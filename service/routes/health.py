"""Liveness and readiness probes."""

from __future__ import annotations

from fastapi import APIRouter

from service.deps import RepositoryDep
from service.schemas import LiveResponse, ModelIdentity, ReadyResponse, error_responses

router = APIRouter(prefix="/health", tags=["health"])


@router.get("/live", response_model=LiveResponse)
async def check_live() -> LiveResponse:
    """200 while the process answers at all (the models may still be loading: see /health/ready)."""
    return LiveResponse(status="live")


@router.get("/ready", response_model=ReadyResponse, responses=error_responses(503))
async def check_ready(repository: RepositoryDep) -> ReadyResponse:
    """200 once every model in the repository is loaded and verified, naming them; 503 before."""
    models = [ModelIdentity(**model.identity) for model in repository.models()]
    return ReadyResponse(status="ready", default_model=repository.default_model, models=models)
