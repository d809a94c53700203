"""A Python client for backend search services: queue events, send them in batches, retry safely.

    with ClickStatsClient("http://127.0.0.1:8000") as stats:
        impression = stats.log_impression(user_id="u1", query="shoes", variant="search_v2",
                                          results=["sku-1", "sku-2"], results_count=2)
        stats.log_click(user_id="u1", product_id="sku-2", rank=2,
                        search_id=impression.search_id, variant="search_v2")
        stats.log_conversion(user_id="u1", subtype="purchase", product_ids=["sku-2"],
                             prices=[19.9], quantities=[2], currency="EUR")
    # leaving the block flushes: the three events are stored (or an error was raised)

Every event gets its event_id when it is created, so a batch that is retried after a timeout
or a 5xx is recognised by the server and never counted twice.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import httpx

from clickstats.events import (
    MAX_BATCH_EVENTS,
    ActionEvent,
    AnyEvent,
    ClickEvent,
    ConversionEvent,
    SearchImpression,
)

#: Answers worth retrying: the server or something in front of it is overloaded or restarting.
RETRY_STATUS = frozenset({429, 502, 503, 504})


class ClickStatsError(RuntimeError):
    """The server refused a batch for good, or stayed unreachable through every retry."""


@dataclass
class FlushResult:
    accepted: int = 0
    duplicates: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)

    def add(self, answer: Mapping[str, Any], batch: list[AnyEvent]) -> None:
        self.accepted += int(answer["accepted"])
        self.duplicates += int(answer["duplicates"])
        for result in answer["results"]:
            if result["status"] == "rejected":
                event = batch[result["index"]]
                self.rejected.append({"event_id": event.event_id, "errors": result["errors"]})


class ClickStatsClient:
    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8000",
        *,
        batch_size: int = 200,
        max_retries: int = 5,
        backoff_s: float = 0.2,
        timeout_s: float = 10.0,
        transport: httpx.BaseTransport | None = None,
        key: str | None = None,
    ) -> None:
        """`key`: an API key (docs/SECURITY.md), sent as `Authorization: Bearer`; an ingest
        key sends events, a read key reads reports, an admin key does both."""
        if not 1 <= batch_size <= MAX_BATCH_EVENTS:
            raise ValueError(f"batch_size must be between 1 and {MAX_BATCH_EVENTS}")
        self.batch_size = batch_size
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        headers = {"Authorization": f"Bearer {key}"} if key else None
        self._http = httpx.Client(
            base_url=base_url, timeout=timeout_s, transport=transport, headers=headers
        )
        self._pending: list[AnyEvent] = []
        self._lock = threading.Lock()

    # -- events ----------------------------------------------------------------------------

    def log_impression(
        self, event: SearchImpression | Mapping[str, Any] | None = None, **fields: Any
    ) -> SearchImpression:
        """Queue an impression; its search_id is known at once, for the clicks to cite."""
        impression = SearchImpression.coerce(event, **fields)
        self._queue(impression)
        return impression

    def log_click(
        self, event: ClickEvent | Mapping[str, Any] | None = None, **fields: Any
    ) -> ClickEvent:
        """Queue a click (validated here, so a bad one fails at the call, not at the flush)."""
        click = ClickEvent.coerce(event, **fields)
        self._queue(click)
        return click

    def log_conversion(
        self, event: ConversionEvent | Mapping[str, Any] | None = None, **fields: Any
    ) -> ConversionEvent:
        """Queue a conversion: subtype "add_to_cart", "purchase" or the site's own name. Its
        value is computed here when prices are given without one, so it is known at once."""
        conversion = ConversionEvent.coerce(event, **fields)
        self._queue(conversion)
        return conversion

    def log_action(
        self, event: ActionEvent | Mapping[str, Any] | None = None, **fields: Any
    ) -> ActionEvent:
        """Queue another action under its name: "view" (a product page seen), a hover, a share."""
        action = ActionEvent.coerce(event, **fields)
        self._queue(action)
        return action

    def _queue(self, event: AnyEvent) -> None:
        with self._lock:
            self._pending.append(event)
            full = len(self._pending) >= self.batch_size
        if full:
            self.flush()

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._pending)

    def flush(self) -> FlushResult:
        """Send every queued event. Raises ClickStatsError if the server cannot take them;
        the events then stay queued, so a later flush retries them with the same ids."""
        result = FlushResult()
        while True:
            with self._lock:
                batch = self._pending[: self.batch_size]
            if not batch:
                return result
            result.add(self._send(batch), batch)
            with self._lock:
                del self._pending[: len(batch)]

    def _send(self, batch: list[AnyEvent]) -> dict[str, Any]:
        body = {"events": [event.to_dict() for event in batch]}
        error: Exception | None = None
        for attempt in range(self.max_retries + 1):
            if attempt:
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
            try:
                response = self._http.post("/analytics/events", json=body)
            except httpx.TransportError as exc:  # timeouts, refused connections, resets
                error = exc
                continue
            if response.status_code in RETRY_STATUS:
                error = ClickStatsError(f"{response.status_code}: {response.text[:200]}")
                continue
            if response.status_code in (200, 422) and "results" in response.text:
                answer: dict[str, Any] = response.json()
                return answer
            raise ClickStatsError(f"batch refused: {response.status_code} {response.text[:500]}")
        raise ClickStatsError(f"no answer after {self.max_retries + 1} attempts: {error}")

    # -- reports ---------------------------------------------------------------------------

    def get(self, path: str, **params: Any) -> Any:
        """GET a report, e.g. get("/analytics/ctr", days=30, variant="search_v2")."""
        response = self._http.get(path, params={k: v for k, v in params.items() if v is not None})
        response.raise_for_status()
        return response.json()

    # -- lifecycle -------------------------------------------------------------------------

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self._http.close()

    def __enter__(self) -> ClickStatsClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
