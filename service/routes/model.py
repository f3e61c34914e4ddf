"""The model card of the model being served."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from service.deps import PredictorDep
from service.schemas import ModelCardResponse, error_responses

router = APIRouter(prefix="/model", tags=["model"])


@router.get("", response_model=ModelCardResponse, responses=error_responses(503))
async def read_model_card(predictor: PredictorDep) -> Any:
    """The card written at export: identity, input/output contract, layer table, training and metrics."""
    return predictor.engine.runtime.card
