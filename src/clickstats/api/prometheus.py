"""`GET /metrics`: the app's metrics in Prometheus' text format (docs/OPERATIONS.md)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, generate_latest

from clickstats.api.auth import AUTH_RESPONSES, Authorized
from clickstats.telemetry import Telemetry

# A GET: a read key when keys are on (api/auth.py); a scrape config sends it as a bearer token.
router = APIRouter(tags=["operations"], dependencies=[Authorized], responses=AUTH_RESPONSES)

_TEXT: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Every metric in Prometheus' text exposition format 0.0.4",
        "content": {"text/plain": {"schema": {"type": "string"}}},
    }
}


@router.get("/metrics", response_class=Response, responses=_TEXT)
async def metrics(request: Request) -> Response:
    """The server's metrics (every process's, under `serve --workers N`): events by outcome,
    the writer's batches, commits and queue, request latency per route, the store's size."""
    telemetry: Telemetry = request.app.state.telemetry
    # In a thread: the store's size may be a MongoDB command.
    body = await run_in_threadpool(generate_latest, telemetry.exposition)
    return Response(body, media_type=CONTENT_TYPE_PLAIN_0_0_4)
