"""Liveness and store reachability."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from clickstats import __version__
from clickstats.api.deps import TrackerDep

router = APIRouter(tags=["health"])


@router.get("/health")
def health(tracker: TrackerDep) -> dict[str, Any]:
    """200 with the store kind when the store answers; 503 otherwise."""
    tracker.store.ping()
    return {"status": "ok", "store": tracker.store.kind, "version": __version__}
