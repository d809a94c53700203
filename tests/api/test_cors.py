"""CORS: pages of other sites may send events and read the answers; they may read nothing else."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi import APIRouter
from fastapi.testclient import TestClient

from clickstats.api.auth import ALLOW_HEADERS
from clickstats.app import create_app
from clickstats.keys import create_key
from clickstats.settings import Settings
from clickstats.state import open_state
from tests.conftest import BACKENDS, store_url

SHOP = "https://shop.example"
EVENT = {"events": [{"type": "click", "product_id": "p1", "rank": 1}]}
PREFLIGHT = {
    "Origin": SHOP,
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "content-type, authorization",
}


@pytest.fixture(params=BACKENDS)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with store_url(request.param, tmp_path) as u:
        yield u


@contextmanager
def serving(url: str, tmp_path: Path, **options: Any) -> Iterator[TestClient]:
    settings = Settings(store=url, experiments=str(tmp_path / "experiments.json"), **options)
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.mark.parametrize("path", ["/analytics/events", "/analytics/log-click", "/search/text"])
def test_a_preflight_for_ingestion_is_answered(url: str, tmp_path: Path, path: str) -> None:
    with serving(url, tmp_path) as client:
        answer = client.options(path, headers=PREFLIGHT)
    assert answer.status_code == 204
    assert answer.content == b""
    assert answer.headers["access-control-allow-origin"] == "*"
    assert "POST" in answer.headers["access-control-allow-methods"]
    assert answer.headers["access-control-allow-headers"] == ALLOW_HEADERS
    assert "X-Clickstats-Key" in ALLOW_HEADERS and "Authorization" in ALLOW_HEADERS
    assert answer.headers["access-control-max-age"] == "600"


def test_every_ingestion_answer_carries_cors_errors_included(url: str, tmp_path: Path) -> None:
    with serving(url, tmp_path) as client:
        sent = client.post("/analytics/events", json=EVENT, headers={"Origin": SHOP})
        assert sent.status_code == 200
        assert sent.headers["access-control-allow-origin"] == "*"
        assert sent.headers["access-control-expose-headers"] == "Retry-After"
        bad = client.post("/analytics/log-click", json={"rank": 0}, headers={"Origin": SHOP})
        assert bad.status_code == 422
        assert bad.headers["access-control-allow-origin"] == "*"

        create_key(open_state(url), scope="ingest", name="shop")
        client.app.state.keys.load()  # type: ignore[attr-defined]  # now, not within a second
        refused = client.post("/analytics/events", json=EVENT, headers={"Origin": SHOP})
        assert refused.status_code == 401
        assert refused.headers["access-control-allow-origin"] == "*"


def test_a_server_error_on_an_ingestion_path_carries_cors(url: str, tmp_path: Path) -> None:
    settings = Settings(store=url, experiments=str(tmp_path / "experiments.json"))
    app = create_app(settings)
    broken = APIRouter(prefix="/search")

    @broken.post("/broken")
    def fail() -> None:
        raise RuntimeError("a bug")

    app.include_router(broken)
    with TestClient(app, raise_server_exceptions=False) as client:
        answer = client.post("/search/broken", headers={"Origin": SHOP})
    assert answer.status_code == 500
    assert answer.headers["access-control-allow-origin"] == "*"
    assert "a bug" not in answer.text


def test_listed_ingest_origins_are_reflected_and_others_get_nothing(
    url: str, tmp_path: Path
) -> None:
    with serving(url, tmp_path, ingest_origins=[SHOP, "https://m.shop.example"]) as client:
        listed = client.options("/analytics/events", headers=PREFLIGHT)
        assert listed.status_code == 204
        assert listed.headers["access-control-allow-origin"] == SHOP
        assert "Origin" in listed.headers["vary"]
        sent = client.post("/analytics/events", json=EVENT, headers={"Origin": SHOP})
        assert sent.status_code == 200 and sent.headers["access-control-allow-origin"] == SHOP

        other = {**PREFLIGHT, "Origin": "https://evil.example"}
        refused = client.options("/analytics/events", headers=other)
        assert refused.status_code == 403
        assert "access-control-allow-origin" not in refused.headers
        posted = client.post("/analytics/events", json=EVENT, headers={"Origin": other["Origin"]})
        assert posted.status_code == 403
        assert "access-control-allow-origin" not in posted.headers


def test_reports_get_no_cors_for_other_origins(url: str, tmp_path: Path) -> None:
    with serving(url, tmp_path) as client:
        read = client.get("/analytics/ctr", headers={"Origin": SHOP})
        assert "access-control-allow-origin" not in read.headers
        preflight = {**PREFLIGHT, "Access-Control-Request-Method": "GET"}
        answer = client.options("/analytics/ctr", headers=preflight)
        assert answer.status_code == 405
        assert "access-control-allow-origin" not in answer.headers
        assert "access-control-allow-origin" not in client.get("/health").headers


def test_read_origins_may_read_reports_cross_origin(url: str, tmp_path: Path) -> None:
    dash = "https://dash.example"
    with serving(url, tmp_path, read_origins=[dash]) as client:
        preflight = {
            "Origin": dash,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization",
        }
        answer = client.options("/analytics/ctr", headers=preflight)
        assert answer.status_code == 204
        assert answer.headers["access-control-allow-origin"] == dash
        assert answer.headers["access-control-allow-methods"] == "GET"
        read = client.get(
            "/analytics/ctr", headers={"Origin": dash, "Sec-Fetch-Site": "cross-site"}
        )
        assert read.status_code == 200
        assert read.headers["access-control-allow-origin"] == dash
        other = client.get("/analytics/ctr", headers={"Origin": SHOP})
        assert "access-control-allow-origin" not in other.headers
