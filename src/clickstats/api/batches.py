"""Storing the valid events of a batch and answering each item: shared by /analytics/events and
the UBI endpoints (their answer is a BatchResult)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import Request

from clickstats.bots import count_dropped
from clickstats.events import SearchImpression
from clickstats.store.base import AnyEvent, AppendStatus
from clickstats.telemetry import count_events
from clickstats.tracking import ClickTrackingService


@dataclass(slots=True)
class Stored:
    """Each item's result by its index (`{}` for the items the caller answers itself), and
    how many events were accepted and were duplicates."""

    results: list[dict[str, Any]]
    accepted: int
    duplicates: int


async def store_batch(
    request: Request,
    tracker: ClickTrackingService,
    good: Sequence[tuple[int, AnyEvent]],
    size: int,
    from_bot: bool,
) -> Stored:
    """Store the valid events (`good`: index in the batch, event) of a batch of `size` items;
    a known crawler's are counted and dropped, not stored."""
    events = [event for _, event in good]
    statuses: list[AppendStatus | None] = [None] * len(events)  # None: a crawler's, dropped
    if from_bot:
        count_dropped(request.app, len(events))
    else:
        statuses[:] = await tracker.append(events)
    count_events(request, events, statuses)
    results: list[dict[str, Any]] = [{} for _ in range(size)]
    for (index, event), status in zip(good, statuses, strict=True):
        result: dict[str, Any] = {
            "index": index,
            "status": status.value if status is not None else "dropped_bot",
            "event_id": event.event_id,
        }
        if isinstance(event, SearchImpression):
            result["search_id"] = event.search_id
        results[index] = result
    return Stored(
        results,
        accepted=sum(1 for s in statuses if s is AppendStatus.ACCEPTED),
        duplicates=sum(1 for s in statuses if s is AppendStatus.DUPLICATE),
    )
