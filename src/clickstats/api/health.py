"""Liveness and store reachability."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from clickstats import __version__
from clickstats.api.deps import TrackerDep
from clickstats.api.errors import STORE_RESPONSES
from clickstats.bots import dropped

router = APIRouter(tags=["health"])


@router.get("/health", responses=STORE_RESPONSES)
def health(request: Request, tracker: TrackerDep) -> dict[str, Any]:
    """200 with the store kind when the store answers; 503 otherwise. `bots_dropped`: events
    of known crawlers this server process dropped since it started (docs/SECURITY.md, Bots)."""
    tracker.store.ping()
    return {
        "status": "ok",
        "store": tracker.store.kind,
        "version": __version__,
        "bots_dropped": dropped(request.app),
    }
