"""POST /ubi_queries and /ubi_events: the published UBI samples are stored and reported; a
browser on another origin can send them as ubi.js does; bad records are named."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import time_machine
from fastapi.testclient import TestClient

from clickstats.app import create_app
from clickstats.keys import create_key
from clickstats.settings import Settings
from clickstats.state import open_state
from tests.conftest import BACKENDS, store_url

SAMPLES = Path(__file__).parent / "ubi_samples"
#: The samples were recorded in 2024 and January 2025; the clock is set just after them, so
#: that they are stored unchanged and fall in the reports' window (at most 365 days).
AFTER_THE_SAMPLES = datetime(2025, 1, 25, tzinfo=UTC)
SHOP = "https://shop.example"


def published_samples() -> tuple[list[Any], list[Any]]:
    """(query records, event records): the spec's two samples and SRW's slice, verbatim."""
    queries: list[Any] = [json.loads((SAMPLES / "query-opensearch.json").read_text())]
    events: list[Any] = [json.loads((SAMPLES / "event-opensearch.json").read_text())]
    lines = (SAMPLES / "srw_ubi_queries_events_slice.ndjson").read_text().splitlines()
    for action, document in zip(lines[::2], lines[1::2], strict=True):
        index = json.loads(action)["index"]["_index"]
        (queries if index == "ubi_queries" else events).append(json.loads(document))
    return queries, events


@contextmanager
def serving(url: str, tmp_path: Path, **options: Any) -> Iterator[TestClient]:
    options.setdefault("max_event_age_days", 0)  # the samples are from 2024 and 2025
    settings = Settings(store=url, experiments=str(tmp_path / "experiments.json"), **options)
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_published_samples_are_stored_and_reported(backend: str, tmp_path: Path) -> None:
    queries, events = published_samples()
    assert (len(queries), len(events)) == (4, 27)
    with (
        time_machine.travel(AFTER_THE_SAMPLES, tick=True),
        store_url(backend, tmp_path) as url,
        serving(url, tmp_path) as client,
    ):
        stored = client.post("/ubi_queries", json=queries)
        assert stored.status_code == 200, stored.text
        answer = stored.json()
        # SRW's three records of "tv remote" (one query_id) are one search: the one with hits.
        assert (answer["accepted"], answer["duplicates"], answer["rejected"]) == (2, 2, 0)
        assert [r["status"] for r in answer["results"]] == [
            "accepted", "duplicate", "duplicate", "accepted"
        ]  # fmt: skip
        sent = client.post("/ubi_events", json=events)
        assert sent.status_code == 200, sent.text
        assert (sent.json()["accepted"], sent.json()["rejected"]) == (27, 0)
        again = client.post("/ubi_events", json=events).json()  # a retry is stored once
        assert (again["accepted"], again["duplicates"]) == (0, 27)

        ctr = client.get("/analytics/ctr", params={"days": 365}).json()
        assert (ctr["total_impressions"], ctr["total_clicks"]) == (2, 3)
        overview = client.get("/analytics/overview", params={"days": 365}).json()
        assert overview["totals"]["searches"] == 2
        assert overview["totals"]["clicks"] == 3
        # The spec's sample query sends no hit ids: how many results it found is unknown, so
        # it counts in no zero-result or abandonment figure (it is not "no results").
        assert overview["totals"]["zero_results"] == 0
        conversions = overview["conversions"]["totals"]
        assert (conversions["add_to_carts"], conversions["purchases"]) == (3, 1)
        assert conversions["attributed"] == 3  # the add_to_carts of "tv remote"
        actions = {a["name"]: (a["events"], a["products"]) for a in overview["actions"]}
        assert actions == {
            "impression": (14, 14),
            "page_exit": (2, 1),  # the spec's sample names no object; SRW's names one
            "search": (1, 0),
            "on_search": (1, 0),
            "product_hover": (1, 1),
            "404_redirect": (1, 1),
        }
        rank = client.get("/analytics/rank-metrics", params={"days": 365}).json()
        # The clicks' ordinals 4, 8 and 13 (0-based) are ranks 5, 9 and 14.
        assert rank["clicks_by_rank"] == {"5": 1, "9": 1, "14": 1}


def test_a_browser_on_another_origin_posts_as_ubi_js_does(tmp_path: Path) -> None:
    with store_url("duckdb", tmp_path) as url, serving(url, tmp_path) as client:
        for path in ("/ubi_queries", "/ubi_events"):
            preflight = client.options(
                path,
                headers={
                    "Origin": SHOP,
                    "Access-Control-Request-Method": "POST",
                    "Access-Control-Request-Headers": "content-type,accept",
                },
            )
            assert preflight.status_code == 204
            assert preflight.headers["access-control-allow-origin"] == "*"
            assert "POST" in preflight.headers["access-control-allow-methods"]
        # ubi.js: JSON.stringify([query]) with Content-type application/json.
        query = {"query_id": "q1", "user_query": "tent", "client_id": "c1"}
        headers = {"Origin": SHOP, "Content-Type": "application/json"}
        posted = client.post("/ubi_queries", content=json.dumps([query]), headers=headers)
        assert posted.status_code == 200
        assert posted.headers["access-control-allow-origin"] == "*"

        _, secret = create_key(open_state(url), scope="ingest", name="shop")
        client.app.state.keys.load()  # type: ignore[attr-defined]
        event = {"action_name": "view", "timestamp": datetime.now(UTC).isoformat()}
        assert client.post("/ubi_events", json=[event], headers=headers).status_code == 401
        keyed = client.post("/ubi_events", params={"key": secret}, json=[event], headers=headers)
        assert keyed.status_code == 200
        assert keyed.headers["access-control-allow-origin"] == "*"


def test_bad_bodies_and_records_are_answered_with_the_index_and_field(tmp_path: Path) -> None:
    with store_url("duckdb", tmp_path) as url, serving(url, tmp_path) as client:
        for body, problem in [
            (b"[{", "not valid JSON"),
            (b"[]", "at least one"),
            (b"3", "JSON array"),
            (json.dumps([{"user_query": "a"}] * 1001).encode(), "at most 1000"),
        ]:
            answer = client.post("/ubi_queries", content=body)
            assert answer.status_code == 422
            assert problem in answer.json()["detail"][0]["msg"]
        view = {"action_name": "view", "timestamp": "2026-11-28T17:50:58Z"}
        bad = [
            view,
            {"action_name": "click"},
            {**view, "event_attributes": {"position": {"ordinal": "first"}}},
        ]
        rejected = client.post("/ubi_events", json=bad)
        assert rejected.status_code == 422  # all or nothing: the good record is not stored
        assert [e["loc"] for e in rejected.json()["detail"]] == [
            ["body", 1, "timestamp"],
            ["body", 2, "event_attributes", "position", "ordinal"],
        ]
        single = client.post("/ubi_queries", json={"query_id": "q"})
        assert [e["loc"] for e in single.json()["detail"]] == [["body", "user_query"]]
        assert client.post("/ubi_events", json=[view]).json()["accepted"] == 1


def test_old_records_are_refused_as_on_every_ingestion_path_and_the_header_names_the_user(
    tmp_path: Path,
) -> None:
    _, events = published_samples()
    with (
        store_url("duckdb", tmp_path) as url,
        serving(url, tmp_path, max_event_age_days=7) as client,
    ):
        old = client.post("/ubi_events", json=events[:2])
        assert old.status_code == 422
        assert {tuple(e["loc"]) for e in old.json()["detail"]} == {
            ("body", 0, "timestamp"),
            ("body", 1, "timestamp"),
        }
        assert "max_event_age_days" in old.json()["detail"][0]["msg"]
        anonymous = {"action_name": "share", "timestamp": datetime.now(UTC).isoformat()}
        sent = client.post("/ubi_events", json=anonymous, headers={"X-User-ID": "u7"})
        assert sent.status_code == 200
        mine = client.get("/analytics/overview", params={"user_id": "u7"}).json()["actions"]
        assert [(a["name"], a["events"]) for a in mine] == [("share", 1)]
