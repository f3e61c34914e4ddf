"""Prometheus scrape endpoint."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from service.deps import MetricsDep

router = APIRouter(tags=["metrics"])


@router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
async def read_metrics(metrics: MetricsDep) -> Response:
    """Request counts and latencies by route, batch sizes and the model's identity, as Prometheus text."""
    return Response(metrics.render(), media_type=metrics.content_type)
