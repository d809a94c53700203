"""GET /metrics (clickstats.telemetry, api/prometheus.py): scraped and parsed as Prometheus
would, on every backend, with each counter's exact value."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from clickstats.app import create_app
from clickstats.keys import create_key
from clickstats.settings import Settings
from clickstats.state import open_state
from tests.conftest import store_url

GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
IMPRESSION = {"type": "impression", "query": "shoes", "event_id": "imp-1", "results": ["p1"]}
CLICK = {"type": "click", "product_id": "p1", "rank": 1, "search_id": "imp-1", "event_id": "c-1"}
ALGOLIA_CLICK = {
    "eventType": "click",
    "eventName": "Hit Clicked",
    "index": "docs",
    "queryID": "0123456789abcdef0123456789abcdef",
    "objectIDs": ["a", "b"],
    "positions": [1, 2],
    "userToken": "anonymous-9d51d098",
}


def scrape(client: TestClient, **headers: str) -> list[Sample]:
    answer = client.get("/metrics", headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    families = text_string_to_metric_families(answer.text)
    return [sample for family in families for sample in family.samples]


def value(samples: list[Sample], name: str, **labels: str) -> float | None:
    """The one sample of this name whose labels include these, or None."""
    found = [s.value for s in samples if s.name == name and labels.items() <= s.labels.items()]
    assert len(found) <= 1, (name, labels, found)
    return found[0] if found else None


def events(samples: list[Sample], route: str) -> dict[tuple[str, str], float]:
    """clickstats_events_total of a route, by (type, outcome)."""
    return {
        (s.labels["type"], s.labels["outcome"]): s.value
        for s in samples
        if s.name == "clickstats_events_total" and s.labels["route"] == route
    }


def test_events_by_outcome_the_writer_and_the_requests_are_counted(client: TestClient) -> None:
    batch = [IMPRESSION, CLICK, IMPRESSION, {"type": "click", "rank": 1}]  # a repeat, no product
    answer = client.post("/analytics/events", json={"events": batch}).json()
    assert (answer["accepted"], answer["duplicates"], answer["rejected"]) == (2, 1, 1)
    crawled = {"events": [{**IMPRESSION, "event_id": "imp-bot"}]}
    answer = client.post("/analytics/events", json=crawled, headers={"User-Agent": GOOGLEBOT})
    assert answer.json()["results"][0]["status"] == "dropped_bot"
    assert client.post("/analytics/log-click", json={"rank": 1}).status_code == 422
    assert client.post("/analytics/log-click", json=CLICK).json()["duplicate"] is True
    assert client.get("/experiments/search_ranking/results").status_code == 200

    samples = scrape(client)
    assert events(samples, "/analytics/events") == {
        ("impression", "accepted"): 1,
        ("impression", "duplicate"): 1,
        ("click", "accepted"): 1,
        ("click", "rejected"): 1,
        ("impression", "dropped_bot"): 1,
    }
    assert events(samples, "/analytics/log-click") == {
        ("click", "rejected"): 1,
        ("click", "duplicate"): 1,
    }
    # Two group writes: the batch (its repeat included) and the single click.
    assert value(samples, "clickstats_writer_batch_events_count") == 2
    assert value(samples, "clickstats_writer_batch_events_sum") == 3 + 1
    assert value(samples, "clickstats_writer_batch_events_bucket", le="2.0") == 1
    assert value(samples, "clickstats_writer_commit_seconds_count") == 2
    assert value(samples, "clickstats_writer_queue_depth") == 0

    duration = "clickstats_http_request_duration_seconds_count"
    results = {"route": "/experiments/{name}/results", "method": "GET", "status": "2xx"}
    assert value(samples, duration, **results) == 1
    posted = {"route": "/analytics/events", "method": "POST", "status": "2xx"}
    assert value(samples, duration, **posted) == 2
    assert value(samples, duration, route="/analytics/log-click", status="4xx") == 1
    assert not [s for s in samples if "search_ranking" in s.labels.get("route", "")]

    store = client.app.state.tracker.store  # type: ignore[attr-defined]
    size = value(samples, "clickstats_store_size_bytes")
    if store.kind == "duckdb":
        assert size is not None and size > 0
    elif store.uri.startswith("mongomock"):
        assert size is None  # mongomock keeps no storage statistics (docs/OPERATIONS.md)
    else:
        assert size is not None and size > 0


def test_algolia_and_ubi_events_are_counted_by_their_route(client: TestClient) -> None:
    posted = client.post("/1/events", content=json.dumps({"events": [ALGOLIA_CLICK]}))
    assert posted.status_code == 200
    bad = {"events": [ALGOLIA_CLICK, {**ALGOLIA_CLICK, "eventType": "hover"}]}
    assert client.post("/1/events", content=json.dumps(bad)).status_code == 422
    query = {"query_id": "q1", "user_query": "tent", "client_id": "c1"}
    assert client.post("/ubi_queries", json=[query, query]).json()["duplicates"] == 1
    assert client.post("/ubi_queries", json=[query, {"query_id": "q2"}]).status_code == 422

    samples = scrape(client)
    assert events(samples, "/1/events") == {("click", "accepted"): 2, ("unknown", "rejected"): 1}
    assert events(samples, "/ubi_queries") == {
        ("impression", "accepted"): 1,
        ("impression", "duplicate"): 1,
        ("impression", "rejected"): 1,
    }


def test_labels_stay_few_whatever_the_path_or_method(tmp_path: Path) -> None:
    with store_url("duckdb", tmp_path) as url, TestClient(create_app(Settings(store=url))) as c:
        assert c.get("/no/such/page-123").status_code == 404
        assert c.request("BREW", "/analytics/ctr").status_code == 405
        samples = scrape(c)
    routes = {s.labels["route"] for s in samples if "route" in s.labels}
    assert "unrouted" in routes and not any("page-123" in r for r in routes)
    assert (
        value(
            samples,
            "clickstats_http_request_duration_seconds_count",
            route="/analytics/ctr",
            method="other",
            status="4xx",
        )
        == 1
    )


def test_with_keys_on_a_scrape_needs_a_read_key(tmp_path: Path) -> None:
    with store_url("duckdb", tmp_path) as url:
        read = create_key(open_state(url), scope="read", name="prometheus")[1]
        ingest = create_key(open_state(url), scope="ingest", name="site")[1]
        with TestClient(create_app(Settings(store=url))) as client:
            assert client.get("/metrics").status_code == 401
            bearer = {"Authorization": f"Bearer {ingest}"}
            assert client.get("/metrics", headers=bearer).status_code == 403
            samples = scrape(client, Authorization=f"Bearer {read}")
            assert value(samples, "clickstats_writer_commit_seconds_count") == 0


def test_each_app_has_its_own_registry(tmp_path: Path) -> None:
    first, second = (create_app(Settings(store=f"duckdb://{tmp_path}/{n}.duckdb")) for n in "ab")
    assert first.state.telemetry.registry is not second.state.telemetry.registry
