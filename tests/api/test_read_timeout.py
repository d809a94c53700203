"""A read past the read time limit is stopped and answered 504, naming the limit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from clickstats.app import create_app
from clickstats.settings import Settings
from clickstats.store import EventStore, ReadTimeout
from tests.conftest import store_url

READS = [
    "/analytics/ctr",
    "/analytics/rank-metrics",
    "/analytics/response-time",
    "/analytics/user/u1",
    "/analytics/variants-comparison",
    "/analytics/overview",
    "/analytics/queries",
]


def _store(client: TestClient) -> EventStore:
    store: EventStore = client.app.state.tracker.store  # type: ignore[attr-defined]
    return store


def too_slow(limit: float) -> Any:
    def read(*args: Any, **kwargs: Any) -> Any:
        raise ReadTimeout(limit)

    return read


@pytest.mark.parametrize("path", READS)
def test_a_read_past_the_limit_is_a_504_naming_it(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    store = _store(client)
    for method in ("counts", "rank_histogram", "latency", "search_totals_many"):
        monkeypatch.setattr(store, method, too_slow(2.5))
    response = client.get(path)
    assert response.status_code == 504, response.text
    body = response.json()
    assert body["read_timeout_s"] == 2.5
    assert "2.5 s" in body["detail"] and "--read-timeout" in body["detail"]


def test_every_read_endpoint_documents_its_504(client: TestClient) -> None:
    paths = client.app.openapi()["paths"]  # type: ignore[attr-defined]
    for path in READS:
        template = "/analytics/user/{user_id}" if path.startswith("/analytics/user/") else path
        answers = paths[template]["get"]["responses"]
        assert "504" in answers, template
        assert answers["504"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/ReadTimeoutProblem"
        }


def test_the_limit_reaches_the_store(tmp_path: Path) -> None:
    with store_url("duckdb", tmp_path) as url:
        with TestClient(create_app(Settings(store=url, read_timeout_s=7.5))) as client:
            assert _store(client).read_timeout_s == 7.5
        with TestClient(create_app(Settings(store=url, read_timeout_s=0))) as client:
            assert _store(client).read_timeout_s is None


def test_the_setting_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().read_timeout_s == 30.0
    monkeypatch.setenv("CLICKSTATS_READ_TIMEOUT_S", "12")
    assert Settings().read_timeout_s == 12.0
    monkeypatch.setenv("CLICKSTATS_READ_TIMEOUT_S", "-1")
    with pytest.raises(ValueError, match="must be > 0"):
        Settings()
