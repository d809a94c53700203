"""The Python client: batching, flush on exit, retries that keep event ids."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from clickstats.client import ClickStatsClient, ClickStatsError
from clickstats.store import open_store
from tests.conftest import LiveServer

ROOT = Path(__file__).resolve().parent.parent


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
        stats.log_action(user_id="svc-user", name="view", product_ids=["a"])
        assert stats.pending == 2
    # leaving the block flushed the last click and the view
    with ClickStatsClient(live_server.url) as reader:
        user = reader.get("/analytics/user/svc-user")
        overview = reader.get("/analytics/overview")
    assert (user["impressions"], user["clicks"]) == (1, 2)
    assert overview["actions"] == [{"name": "view", "events": 1, "users": 1, "products": 1}]


def stored_conversions(store_path: Path) -> list[dict[str, Any]]:
    """The conversions in a stopped server's store, as `clickstats export` writes them."""
    store = open_store(f"duckdb://{store_path}")
    store.open()
    try:
        return [row for rows in store.export() for row in rows if row["type"] == "conversion"]
    finally:
        store.close()


class LoseFirstAnswer(httpx.HTTPTransport):
    """Delivers every request, but the first answer is lost on the way back (a timeout after
    the server had stored the batch)."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[bytes] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        self.requests.append(request.content)
        if len(self.requests) == 1:
            response.read()
            response.close()
            raise httpx.ReadTimeout("the answer was lost", request=request)
        return response


def test_a_purchase_is_stored_once_however_often_it_is_sent(live_server: LiveServer) -> None:
    lossy = LoseFirstAnswer()
    with ClickStatsClient(live_server.url, transport=lossy, backoff_s=0) as stats:
        impression = stats.log_impression(user_id="buyer", query="boots", results=["a", "b"])
        stats.log_click(user_id="buyer", product_id="b", rank=2, search_id=impression.search_id)
        purchase = stats.log_conversion(
            user_id="buyer", subtype="purchase", product_ids=["b", "c"], prices=[30, 12.5],
            quantities=[1, 2], discounts=[5, 0], currency="EUR",
        )  # fmt: skip
        cart = stats.log_conversion(
            {"subtype": "add_to_cart", "product_ids": ["a"]}, user_id="buyer"
        )
        assert purchase.value == 50.0  # (30 - 5) x 1 + 12.5 x 2, known before it is sent
        # The first answer is lost: the batch is sent again with the same ids, and the server
        # answers for what it had already stored.
        first = stats.flush()
        assert len(lossy.requests) == 2 and lossy.requests[0] == lossy.requests[1]
        assert (first.accepted, first.duplicates, first.rejected) == (0, 4, [])
        stats.log_conversion(purchase)  # the same event once more
        again = stats.flush()
        assert (again.accepted, again.duplicates) == (0, 1)
    live_server.stop()
    rows = stored_conversions(live_server.store_path)
    assert sorted(row["event_id"] for row in rows) == sorted([purchase.event_id, cart.event_id])
    stored = {row["event_id"]: row for row in rows}
    row = stored[purchase.event_id]
    assert (row["subtype"], row["product_ids"], row["prices"], row["quantities"]) == (
        "purchase", ["b", "c"], [30.0, 12.5], [1, 2]
    )  # fmt: skip
    assert (row["discounts"], row["value"], row["currency"]) == ([5.0, 0.0], 50.0, "EUR")
    assert (row["user_id"], row["search_id"]) == ("buyer", None)  # attributed at query time
    assert (stored[cart.event_id]["subtype"], stored[cart.event_id]["value"]) == (
        "add_to_cart",
        None,
    )


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
    with pytest.raises(ValueError, match="currency"):  # an amount needs its currency
        stats.log_conversion(subtype="purchase", product_ids=["p"], prices=[9.5])
    with pytest.raises(ValueError, match="one entry per entry of product_ids"):
        stats.log_conversion(product_ids=["p", "q"], quantities=[1], currency="EUR")
    assert stats.pending == 0
    with pytest.raises(ValueError, match="batch_size"):
        ClickStatsClient(batch_size=5000)


def test_the_example_of_the_docs_runs() -> None:
    (example,) = re.findall(r"```python\n(.*?)```", (ROOT / "docs/CLIENT.md").read_text(), re.S)
    server = FlakyServer(0)

    def client(base_url: str, **options: Any) -> ClickStatsClient:
        return ClickStatsClient(base_url, transport=httpx.MockTransport(server), **options)

    code = example.replace("from clickstats.client import ClickStatsClient\n", "")
    exec(code, {"ClickStatsClient": client})  # its own assert included
    (body,) = server.bodies
    assert [e["type"] for e in body["events"]] == ["impression", "click", "conversion"]
