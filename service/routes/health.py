"""Liveness and readiness probes."""

from __future__ import annotations

from fastapi import APIRouter

from service.deps import PredictorDep
from service.schemas import HealthResponse, ModelIdentity, error_responses

router = APIRouter(prefix="/health", tags=["health"])


@router.get("/live", response_model=HealthResponse)
async def check_live() -> HealthResponse:
    """200 while the process answers at all."""
    return HealthResponse(status="live")


@router.get("/ready", response_model=HealthResponse, responses=error_responses(503))
async def check_ready(predictor: PredictorDep) -> HealthResponse:
    """200 once the model is loaded and verified; 503 before."""
    return HealthResponse(status="ready", model=ModelIdentity(**predictor.model))
