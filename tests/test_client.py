"""The Python client: batching, flush on exit, retries that keep event ids."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from clickstats.client import ClickStatsClient, ClickStatsError
from tests.conftest import LiveServer


def test_round_trip_against_a_real_server(live_server: LiveServer) -> None:
    with ClickStatsClient(live_server.url, batch_size=3) as stats:
        impression = stats.log_impression(
            user_id="svc-user", query="shoes", variant="search_v2", results=["a", "b"]
        )
        click = stats.log_click(
            user_id="svc-user", product_id="b", rank=2, search_id=impression.search_id,
            variant="search_v2",
        )  # fmt: skip
        stats.log_click(click)  # the same event again: stored once
        assert stats.pending == 0  # the third event filled a batch and flushed it
        stats.log_click(user_id="svc-user", product_id="a", rank=1, variant="search_v2")
        assert stats.pending == 1
    # leaving the block flushed the last click
    with ClickStatsClient(live_server.url) as reader:
        user = reader.get("/analytics/user/svc-user")
    assert (user["impressions"], user["clicks"]) == (1, 2)


class FlakyServer:
    """Fails the first `failures` requests (a dropped connection, then 503s), then accepts."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.bodies: list[dict[str, Any]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.bodies.append(body)
        if len(self.bodies) == 1 and self.failures:
            raise httpx.ConnectError("connection refused", request=request)
        if len(self.bodies) <= self.failures:
            return httpx.Response(503, json={"detail": "store unavailable"})
        results = [
            {"index": i, "status": "accepted", "event_id": e["event_id"]}
            for i, e in enumerate(body["events"])
        ]
        return httpx.Response(
            200, json={"accepted": len(results), "duplicates": 0, "rejected": 0, "results": results}
        )


def client_for(server: FlakyServer, **options: Any) -> ClickStatsClient:
    return ClickStatsClient(
        "http://clickstats.test", transport=httpx.MockTransport(server), backoff_s=0, **options
    )


def test_retries_resend_the_same_event_ids() -> None:
    server = FlakyServer(failures=3)
    with client_for(server) as stats:
        stats.log_click(product_id="p", rank=1)
        stats.log_impression(query="q")
        result = stats.flush()
    assert result.accepted == 2
    assert len(server.bodies) == 4
    ids = [[e["event_id"] for e in body["events"]] for body in server.bodies]
    assert all(attempt == ids[0] for attempt in ids)


def test_unreachable_server_keeps_events_for_later() -> None:
    server = FlakyServer(failures=100)
    stats = client_for(server, max_retries=2)
    stats.log_click(product_id="p", rank=1)
    with pytest.raises(ClickStatsError, match="3 attempts"):
        stats.flush()
    assert stats.pending == 1
    server.failures = 0
    assert stats.flush().accepted == 1
    assert stats.pending == 0
    first, last = server.bodies[0]["events"][0], server.bodies[-1]["events"][0]
    assert first["event_id"] == last["event_id"]


def test_refusals_are_not_retried() -> None:
    calls: list[httpx.Request] = []

    def refuse(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(413, json={"detail": "Request Entity Too Large"})

    stats = ClickStatsClient("http://x", transport=httpx.MockTransport(refuse), backoff_s=0)
    stats.log_click(product_id="p", rank=1)
    with pytest.raises(ClickStatsError, match="413"):
        stats.flush()
    assert len(calls) == 1


def test_bad_events_fail_at_the_call() -> None:
    stats = ClickStatsClient("http://x", transport=httpx.MockTransport(FlakyServer(0)))
    with pytest.raises(ValueError, match="rank"):
        stats.log_click(product_id="p", rank=0)
    assert stats.pending == 0
    with pytest.raises(ValueError, match="batch_size"):
        ClickStatsClient(batch_size=5000)
