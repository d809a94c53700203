"""DELETE /analytics/users/{user_id} over HTTP, on every backend; retention in the lifespan."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from clickstats import ClickEvent, SearchImpression
from clickstats.app import create_app
from clickstats.events import MAX_ID_LENGTH, event_time_now
from clickstats.keys import create_key
from clickstats.privacy import retention
from clickstats.settings import Settings
from clickstats.state import open_state
from clickstats.store import open_store
from clickstats.store.base import Deleted, StoreError
from tests.conftest import BACKENDS, store_url


def _send(client: TestClient, events: list[dict[str, Any]]) -> None:
    answer = client.post("/analytics/events", json={"events": events})
    assert answer.status_code == 200, answer.text
    assert answer.json()["accepted"] == len(events)


def _searches(user: str, n: int, clicks: int) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    for i in range(n):
        sid = f"{user}-s{i}"
        events.append({"type": "impression", "user_id": user, "search_id": sid, "query": "q",
                       "variant": "search_v1", "results_count": 5})  # fmt: skip
        if i < clicks:
            events.append({"type": "click", "user_id": user, "search_id": sid,
                           "product_id": "p1", "rank": 1})  # fmt: skip
    return events


def _user(client: TestClient, user: str) -> tuple[int, int]:
    summary = client.get(f"/analytics/user/{user}").json()
    return summary["impressions"], summary["clicks"]


def test_delete_user_removes_that_user_only(client: TestClient) -> None:
    _send(client, _searches("alice", 3, 2) + _searches("bob", 2, 1))
    assert _user(client, "alice") == (3, 2)

    answer = client.delete("/analytics/users/alice")

    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "user_id": "alice",
        "deleted": {"clicks": 2, "impressions": 3, "conversions": 0, "actions": 0},
    }
    assert _user(client, "alice") == (0, 0)
    assert _user(client, "bob") == (2, 1)
    ctr = client.get("/analytics/ctr").json()
    assert (ctr["total_impressions"], ctr["total_clicks"]) == (2, 1)
    # nothing left to delete: 200 with zeros, not a 404
    again = client.delete("/analytics/users/alice")
    assert again.status_code == 200
    assert again.json() == {
        "user_id": "alice",
        "deleted": {"clicks": 0, "impressions": 0, "conversions": 0, "actions": 0},
    }


def test_a_user_id_with_a_slash_or_spaces_can_be_named(client: TestClient) -> None:
    _send(client, _searches("team/7 a", 1, 1))
    answer = client.delete("/analytics/users/team%2F7%20a")
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "user_id": "team/7 a",
        "deleted": {"clicks": 1, "impressions": 1, "conversions": 0, "actions": 0},
    }


@pytest.mark.parametrize("user_id", ["", "x" * (MAX_ID_LENGTH + 1)])
def test_an_empty_or_too_long_user_id_is_422(client: TestClient, user_id: str) -> None:
    answer = client.delete(f"/analytics/users/{user_id}")
    assert answer.status_code == 422
    (error,) = answer.json()["detail"]
    assert error["loc"] == ["path", "user_id"]
    assert "character" in error["msg"]


def test_deleting_a_user_needs_an_admin_key_once_keys_exist(tmp_path: Path) -> None:
    with store_url("duckdb", tmp_path) as url:
        state = open_state(url)
        _, read_key = create_key(state, scope="read", name="reports")
        _, admin_key = create_key(state, scope="admin", name="ops")
        with TestClient(create_app(Settings(store=url))) as client:
            assert client.delete("/analytics/users/alice").status_code == 401
            as_reader = client.delete(
                "/analytics/users/alice", headers={"Authorization": f"Bearer {read_key}"}
            )
            assert as_reader.status_code == 403
            assert "admin" in as_reader.json()["detail"]
            as_admin = client.delete(
                "/analytics/users/alice", headers={"Authorization": f"Bearer {admin_key}"}
            )
            assert as_admin.status_code == 200
            # another site's page may not erase data through a visitor's browser
            forged = client.delete("/analytics/users/alice", headers={
                "Authorization": f"Bearer {admin_key}", "Sec-Fetch-Site": "cross-site",
            })  # fmt: skip
            assert forged.status_code == 403


def test_openapi_documents_the_errors(client: TestClient) -> None:
    operation = client.get("/openapi.json").json()["paths"]["/analytics/users/{user_id}"]["delete"]
    assert {"200", "401", "403", "422"} <= set(operation["responses"])


@pytest.mark.parametrize("backend", BACKENDS)
def test_retention_deletes_old_events_at_start(
    backend: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    now = event_time_now()
    old, recent = now - timedelta(days=40), now - timedelta(days=2)
    events = [  # stored directly: the HTTP API refuses events this old
        SearchImpression(event_id="old-i", query="q", results_count=1, timestamp=old),
        ClickEvent(event_id="old-c", product_id="p", rank=1, timestamp=old),
        SearchImpression(event_id="new-i", query="q", results_count=1, timestamp=recent),
    ]
    with store_url(backend, tmp_path) as url:
        store = open_store(url)
        store.open()
        store.append_sync(events)
        store.close()
        caplog.set_level("INFO", logger="uvicorn.error")
        with TestClient(create_app(Settings(store=url, retention_days=30))) as client:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:  # the first pass runs in the background
                if "retention: deleted" in caplog.text:
                    break
                time.sleep(0.02)
            ctr = client.get("/analytics/ctr", params={"days": 365}).json()
        assert (ctr["total_impressions"], ctr["total_clicks"]) == (1, 0)
        assert "retention: deleted 2 events (1 impression, 1 click) older than 30 days" in (
            caplog.text
        )


def test_retention_goes_on_after_a_failed_pass(caplog: pytest.LogCaptureFixture) -> None:
    class Flaky:
        def __init__(self) -> None:
            self.calls: list[int] = []

        def prune(self, retention_days: int) -> Deleted:
            self.calls.append(retention_days)
            if len(self.calls) == 1:
                raise StoreError("cannot reach MongoDB")
            return Deleted(clicks=1, impressions=2)

    async def run(service: Flaky) -> None:
        async with retention(service, 7, every_s=0.01):
            while len(service.calls) < 3:
                await asyncio.sleep(0.01)

    async def nothing() -> None:
        async with retention(Flaky(), None) as task:
            assert task is None

    caplog.set_level("INFO", logger="uvicorn.error")
    service = Flaky()
    asyncio.run(run(service))
    asyncio.run(nothing())
    assert service.calls[:3] == [7, 7, 7]
    assert "could not delete events older than 7 days: cannot reach MongoDB" in caplog.text
    assert "deleted 3 events (2 impressions, 1 click) older than 7 days" in caplog.text
