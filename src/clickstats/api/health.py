"""Liveness and store reachability."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from clickstats import __version__
from clickstats.api.deps import TrackerDep
from clickstats.api.errors import STORE_RESPONSES
from clickstats.bots import dropped

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: Literal["ok"] = "ok"
    store: str = Field(description="the store's backend: duckdb or mongodb")
    version: str
    bots_dropped: int = Field(
        description="events of known crawlers this server process dropped since it started"
    )


@router.get("/health", response_model=Health, responses=STORE_RESPONSES)
def health(request: Request, tracker: TrackerDep) -> Any:
    """200 with the store kind when the store answers; 503 otherwise. `bots_dropped`: events
    of known crawlers this server process dropped since it started (docs/SECURITY.md, Bots)."""
    kind = tracker.ping()
    return Health(store=kind, version=__version__, bots_dropped=dropped(request.app))
