"""Liveness and readiness probes."""

from __future__ import annotations

from fastapi import APIRouter

from service.deps import PredictorDep
from service.schemas import LiveResponse, ModelIdentity, ReadyResponse, error_responses

router = APIRouter(prefix="/health", tags=["health"])


@router.get("/live", response_model=LiveResponse)
async def check_live() -> LiveResponse:
    """200 while the process answers at all (the model may still be loading: see /health/ready)."""
    return LiveResponse(status="live")


@router.get("/ready", response_model=ReadyResponse, responses=error_responses(503))
async def check_ready(predictor: PredictorDep) -> ReadyResponse:
    """200 once the model is loaded and verified, naming it; 503 before."""
    return ReadyResponse(status="ready", model=ModelIdentity(**predictor.model))
