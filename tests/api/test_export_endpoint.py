"""GET /analytics/export on every backend: the file `clickstats export` writes, streamed."""

from __future__ import annotations

import io
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from clickstats.app import create_app
from clickstats.events import utcnow
from clickstats.keys import create_key
from clickstats.settings import Settings
from clickstats.state import open_state
from clickstats.transfer import export_file, iso_millis


def events(days_ago: int, n: int = 4) -> list[dict[str, Any]]:
    """Searches with clicks, a purchase and a view, `days_ago` days old."""
    at = iso_millis(utcnow() - timedelta(days=days_ago))
    out: list[dict[str, Any]] = []
    for i in range(n):
        sid, user = f"s{days_ago}-{i}", f"u{i % 3}"
        common = {"user_id": user, "timestamp": at}
        out.append(
            {"type": "impression", "event_id": f"i-{sid}", "search_id": sid, "query": "shoes",
             "results": ["p1", "p2", "p3"], "results_count": 3, "response_time_ms": 8.25,
             **common}
        )  # fmt: skip
        out.append(
            {"type": "click", "event_id": f"c-{sid}", "search_id": sid, "product_id": "p2",
             "rank": 2, **common}
        )  # fmt: skip
        out.append({"type": "action", "event_id": f"a-{sid}", "name": "view", "search_id": sid,
                    "product_ids": ["p2"], **common})  # fmt: skip
    out.append(
        {"type": "conversion", "event_id": f"o-{days_ago}", "subtype": "purchase",
         "search_id": f"s{days_ago}-0", "product_ids": ["p2"], "prices": [19.9],
         "currency": "EUR", "user_id": "u0", "timestamp": at}
    )  # fmt: skip
    return out


@pytest.fixture
def filled(client: TestClient) -> TestClient:
    for days_ago in (1, 10):
        answer = client.post("/analytics/events", json={"events": events(days_ago)})
        assert answer.json()["accepted"] == 13, answer.text
    return client


def written(client: TestClient, tmp_path: Path, fmt: Any, **options: Any) -> bytes:
    """What `clickstats export` writes for the app's store."""
    path = tmp_path / f"cli.{fmt}"
    export_file(client.app.state.tracker.store, path, fmt, **options)  # type: ignore[attr-defined]
    return path.read_bytes()


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet", "ubi"])
def test_the_stream_is_the_file_clickstats_export_writes(
    filled: TestClient, tmp_path: Path, fmt: str
) -> None:
    answer = filled.get("/analytics/export", params={"format": fmt})
    assert answer.status_code == 200, answer.text
    assert answer.content == written(filled, tmp_path, fmt)
    disposition = answer.headers["content-disposition"]
    assert disposition.startswith("attachment; filename=") and disposition.count('"') == 2
    media = answer.headers["content-type"]
    assert media.startswith(
        {"jsonl": "application/x-ndjson", "csv": "text/csv", "ubi": "application/x-ndjson"}.get(
            fmt, "application/vnd.apache.parquet"
        )
    )
    if fmt == "parquet":
        table = pq.read_table(io.BytesIO(answer.content))
        assert table.num_rows == 26
        assert sorted(set(table.column("type").to_pylist())) == [
            "action", "click", "conversion", "impression",
        ]  # fmt: skip
    if fmt == "jsonl":
        assert len(answer.content.splitlines()) == 26


def test_jsonl_is_the_default_and_since_keeps_later_events(
    filled: TestClient, tmp_path: Path
) -> None:
    every = filled.get("/analytics/export")
    assert every.headers["content-type"].startswith("application/x-ndjson")
    assert len(every.content.splitlines()) == 26
    recent = filled.get("/analytics/export", params={"since": "5d"})
    assert len(recent.content.splitlines()) == 13
    # events are 1 and 10 days old: "5d" read a moment apart selects the same ones
    assert recent.content == written(filled, tmp_path, "jsonl", since=utcnow() - timedelta(5))
    day = (utcnow() - timedelta(days=5)).strftime("%Y-%m-%d")
    assert len(filled.get(f"/analytics/export?since={day}").content.splitlines()) == 13


def test_an_empty_store_is_an_empty_file_with_its_header(client: TestClient) -> None:
    assert client.get("/analytics/export").content == b""
    assert client.get("/analytics/export?format=csv").text.startswith("type,event_id,")


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("format=xml", "format"),
        ("format=", "format"),
        ("since=soon", "since"),
        ("since=2026-13-01", "since"),
        ("since=99999999d", "since"),
        ("since=" + "1" * 65, "since"),
    ],
)
def test_a_bad_format_or_since_is_a_422_naming_it(
    client: TestClient, query: str, field: str
) -> None:
    answer = client.get(f"/analytics/export?{query}")
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"][0]["loc"] == ["query", field]


def test_a_read_key_is_needed_when_keys_are_on(tmp_path: Path) -> None:
    url = f"duckdb://{tmp_path}/keys.duckdb"
    state = open_state(url)
    read = create_key(state, scope="read", name="reader")[1]
    ingest = create_key(state, scope="ingest", name="sender")[1]
    with TestClient(create_app(Settings(store=url))) as client:
        assert client.get("/analytics/export").status_code == 401
        refused = client.get("/analytics/export", headers={"Authorization": f"Bearer {ingest}"})
        assert refused.status_code == 403
        allowed = client.get("/analytics/export", headers={"Authorization": f"Bearer {read}"})
        assert allowed.status_code == 200
