"""Erasing a user's events, and keeping events only so long (retention).

Both go through the store's one writer, like every write: a deletion waits for the appends
queued before it, and caches of aggregates keyed by the store's generation see it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Protocol

from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from clickstats.events import utcnow
from clickstats.store.base import Deleted, StoreError
from clickstats.text import plural

# uvicorn's own application logger: `clickstats serve` shows its INFO lines beside uvicorn's.
log = logging.getLogger("uvicorn.error")

#: How often a running server applies its retention, after once at start.
RETENTION_INTERVAL_S = 24 * 3600.0


class DeletedCounts(BaseModel):
    clicks: int = Field(description="clicks deleted")
    impressions: int = Field(description="impressions (searches) deleted")
    conversions: int = Field(0, description="conversions deleted")
    actions: int = Field(0, description="other actions (views, ...) deleted")

    @classmethod
    def of(cls, deleted: Deleted) -> DeletedCounts:
        return cls(
            clicks=deleted.clicks,
            impressions=deleted.impressions,
            conversions=deleted.conversions,
            actions=deleted.actions,
        )


class UserDeletion(BaseModel):
    user_id: str
    deleted: DeletedCounts


def retention_cutoff(days: int, now: datetime | None = None) -> datetime:
    """Events before this are older than `days` days."""
    if days < 1:
        raise ValueError(f"retention_days must be at least 1, got {days}")
    return (now or utcnow()) - timedelta(days=days)


def describe(deleted: Deleted) -> str:
    """'3 events (2 impressions, 1 click)'."""
    total = plural(deleted.clicks + deleted.impressions, "event")
    return (
        f"{total} ({plural(deleted.impressions, 'impression')}, {plural(deleted.clicks, 'click')})"
    )


class Prunes(Protocol):
    """What retention needs of the service (tracking.ClickTrackingService)."""

    def prune(self, retention_days: int) -> Deleted: ...


@contextlib.asynccontextmanager
async def retention(
    service: Prunes, days: int | None, every_s: float = RETENTION_INTERVAL_S
) -> AsyncIterator[asyncio.Task[None] | None]:
    """While inside: delete events older than `days` days at once, then every `every_s`
    seconds, in the background (a start is not held up by a large deletion). None: nothing."""
    if days is None:
        yield None
        return
    task = asyncio.create_task(_prune_forever(service, days, every_s), name="retention")
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _prune_forever(service: Prunes, days: int, every_s: float) -> None:
    while True:
        try:
            deleted = await run_in_threadpool(service.prune, days)
            log.info("retention: deleted %s older than %d days", describe(deleted), days)
        except StoreError as exc:  # the store is away: try again at the next round
            log.warning("retention: could not delete events older than %d days: %s", days, exc)
        except Exception:  # a bug must not end retention silently, nor the server
            log.exception("retention: deleting events older than %d days failed", days)
        await asyncio.sleep(every_s)
