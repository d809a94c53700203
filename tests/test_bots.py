"""Known crawlers' events are dropped (counted in /health) unless bots="keep"; browsers' and
servers' events are stored."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from clickstats.app import create_app
from clickstats.bots import is_bot
from clickstats.settings import Settings
from tests.conftest import BACKENDS, store_url

GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
HEADLESS = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "HeadlessChrome/126.0.0.0 Safari/537.36"
)
CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Safari/537.36"
)
IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
)
CLICK = {"product_id": "p1", "rank": 2, "user_id": "u1"}
IMPRESSION = {"query": "shoes", "results_count": 3, "user_id": "u1"}


@pytest.mark.parametrize(
    ("agent", "bot"),
    [
        (GOOGLEBOT, True),
        (HEADLESS, True),
        ("Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)", True),
        ("Scrapy/2.11 (+https://scrapy.org)", True),
        (CHROME, False),
        (IPHONE, False),
        ("", False),
        # HTTP libraries are how servers send events (the Python client, a search backend)
        ("curl/8.5.0", False),
        ("python-httpx/0.27.0", False),
        ("python-requests/2.32.3", False),
        ("Go-http-client/1.1", False),
        ("my-shop/1.2 python-requests/2.32.3", False),
    ],
)
def test_is_bot(agent: str, bot: bool) -> None:
    assert is_bot(agent) is bot


def test_each_user_agent_is_checked_once() -> None:
    is_bot(IPHONE)
    hits = is_bot.cache_info().hits
    for _ in range(3):
        assert not is_bot(IPHONE)
    assert is_bot.cache_info().hits == hits + 3


def app_client(backend: str, tmp_path: Path, **settings: Any) -> Iterator[TestClient]:
    with (
        store_url(backend, tmp_path) as url,
        TestClient(create_app(Settings(store=url, **settings))) as client,
    ):
        yield client


@pytest.fixture(params=BACKENDS)
def client(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TestClient]:
    yield from app_client(request.param, tmp_path)


@pytest.fixture(params=BACKENDS)
def keeping(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TestClient]:
    yield from app_client(request.param, tmp_path, bots="keep")


def totals(client: TestClient) -> tuple[int, int]:
    ctr = client.get("/analytics/ctr").json()
    return ctr["total_impressions"], ctr["total_clicks"]


def dropped(client: TestClient) -> int:
    count: int = client.get("/health").json()["bots_dropped"]
    return count


def test_a_crawlers_events_are_answered_dropped_and_counted(client: TestClient) -> None:
    bot = {"User-Agent": GOOGLEBOT}
    click = client.post("/analytics/log-click", json={**CLICK, "event_id": "c1"}, headers=bot)
    assert click.status_code == 200
    assert click.json() | {"timestamp": None} == {
        "status": "dropped_bot", "event_id": "c1", "timestamp": None, "duplicate": False,
        "search_id": None,
    }  # fmt: skip
    impression = client.post("/analytics/log-impression", json=IMPRESSION, headers=bot)
    assert impression.json()["status"] == "dropped_bot"
    assert impression.json()["search_id"]  # the usual fields, for a tracker that reads them

    batch = client.post(
        "/analytics/events",
        json={"events": [{"type": "click", **CLICK}, {"type": "impression", **IMPRESSION},
                         {"type": "click", "rank": 0}]},
        headers={"User-Agent": HEADLESS},
    )  # fmt: skip
    assert batch.status_code == 200
    answer = batch.json()
    assert (answer["accepted"], answer["duplicates"], answer["rejected"]) == (0, 0, 1)
    assert [r["status"] for r in answer["results"]] == ["dropped_bot", "dropped_bot", "rejected"]
    assert "search_id" in answer["results"][1]

    assert totals(client) == (0, 0)
    assert dropped(client) == 4


def test_a_browsers_events_are_stored(client: TestClient) -> None:
    for agent in (CHROME, IPHONE, "python-httpx/0.27.0"):
        answer = client.post("/analytics/log-click", json=CLICK, headers={"User-Agent": agent})
        assert answer.json()["status"] == "success"
    answer = client.post(
        "/analytics/events", json={"events": [{"type": "impression", **IMPRESSION}]},
        headers={"User-Agent": CHROME},
    )  # fmt: skip
    assert answer.json()["results"][0]["status"] == "accepted"
    assert totals(client) == (1, 3)
    assert dropped(client) == 0


def test_a_crawlers_search_is_answered_but_not_counted(client: TestClient) -> None:
    answer = client.get("/search/text", params={"q": "shoes"}, headers={"User-Agent": GOOGLEBOT})
    assert answer.status_code == 200
    assert answer.json()["results"]
    assert totals(client) == (0, 0)
    assert dropped(client) == 1
    client.get("/search/text", params={"q": "shoes"}, headers={"User-Agent": CHROME})
    assert totals(client) == (1, 0)


def test_keep_stores_a_crawlers_events_like_any_other(keeping: TestClient) -> None:
    bot = {"User-Agent": GOOGLEBOT}
    answer = keeping.post("/analytics/log-click", json=CLICK, headers=bot)
    assert answer.json()["status"] == "success"
    batch = keeping.post(
        "/analytics/events", json={"events": [{"type": "impression", **IMPRESSION}]}, headers=bot
    )
    assert batch.json()["accepted"] == 1
    assert totals(keeping) == (1, 1)
    assert dropped(keeping) == 0
