"""API keys and scopes over HTTP, on every backend: who may send, read and change what."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import Request
from fastapi.testclient import TestClient

from clickstats.api.auth import Read, endpoint_scope
from clickstats.app import create_app
from clickstats.client import ClickStatsClient
from clickstats.keys import Scope, create_key, revoke_key
from clickstats.settings import Settings
from clickstats.state import open_state
from tests.conftest import BACKENDS, store_url

EVENT = {"events": [{"type": "impression", "query": "shoes", "event_id": "imp-1"}]}
EXPERIMENT = "/experiments/search_ranking"
#: Answer without a key even when keys are on.
OPEN = ["/health", "/analytics/tracker.js", "/", "/dashboard/queries", "/demo", "/docs"]
OPEN += ["/openapi.json", "/dashboard/assets/dashboard.js", "/demo/demo.js"]


@pytest.fixture(params=BACKENDS)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with store_url(request.param, tmp_path) as u:
        yield u


@contextmanager
def serving(url: str, tmp_path: Path, **options: Any) -> Iterator[TestClient]:
    settings = Settings(
        store=url, experiments=str(tmp_path / "experiments.json"), allow_reset=True, **options
    )
    with TestClient(create_app(settings)) as client:
        yield client


def new_key(url: str, scope: str, **options: Any) -> str:
    return create_key(open_state(url), scope=scope, name=f"{scope} test", **options)[1]


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def keys(url: str) -> dict[str, str]:
    """One key of each scope, created before the server starts (it reads them at start)."""
    return {scope: new_key(url, scope) for scope in ("ingest", "read", "admin")}


def status_of(client: TestClient, headers: dict[str, str] | None = None) -> str:
    answer = client.get(EXPERIMENT, headers=headers)
    assert answer.status_code == 200, answer.text
    status: str = answer.json()["status"]
    return status


def test_with_no_key_everything_is_open_as_before(url: str, tmp_path: Path) -> None:
    with serving(url, tmp_path) as client:
        assert client.post("/analytics/events", json=EVENT).json()["accepted"] == 1
        assert client.get("/analytics/ctr").json()["total_impressions"] == 1
        assert client.get("/experiments/search_ranking/assign?user_id=u1").status_code == 200
        assert client.post("/search/text", json={"query": "shoes"}).status_code == 200
        assert client.post(f"{EXPERIMENT}/stop").json()["status"] == "stopped"
        assert client.post(f"{EXPERIMENT}/start").json()["status"] == "running"
        assert client.delete("/analytics/reset").status_code == 200


def test_no_key_is_401_with_a_bearer_challenge(
    url: str, tmp_path: Path, keys: dict[str, str]
) -> None:
    with serving(url, tmp_path) as client:
        for method, path in [
            ("POST", "/analytics/events"),
            ("GET", "/analytics/ctr"),
            ("POST", f"{EXPERIMENT}/stop"),
        ]:
            answer = client.request(method, path, json=EVENT)
            assert answer.status_code == 401, path
            assert answer.headers["www-authenticate"] == "Bearer"
            assert (
                "needs" in answer.json()["detail"]
                and "Authorization: Bearer" in (answer.json()["detail"])
            )
        for path in OPEN:
            assert client.get(path).status_code == 200, path
        assert (
            client.post("/analytics/events", json=EVENT)
            .json()["detail"]
            .startswith("this endpoint needs an ingest key")
        )


def test_an_ingest_key_sends_events_and_nothing_else(
    url: str, tmp_path: Path, keys: dict[str, str]
) -> None:
    ingest = bearer(keys["ingest"])
    with serving(url, tmp_path) as client:
        assert client.post("/analytics/events", json=EVENT, headers=ingest).json()["accepted"] == 1
        click = {"product_id": "p1", "rank": 1}
        assert client.post("/analytics/log-click", json=click, headers=ingest).status_code == 200
        impression = {"query": "shoes"}
        answer = client.post("/analytics/log-impression", json=impression, headers=ingest)
        assert answer.status_code == 200
        assert client.get(f"{EXPERIMENT}/assign?user_id=u", headers=ingest).status_code == 200
        assert client.get("/search/text?q=shoes", headers=ingest).status_code == 200

        ctr = client.get("/analytics/ctr", headers=ingest)
        assert ctr.status_code == 403
        assert ctr.json()["detail"].startswith("this endpoint needs a read key")
        assert "is an ingest key" in ctr.json()["detail"]
        stop = client.post(f"{EXPERIMENT}/stop", headers=ingest)
        assert stop.status_code == 403 and "needs an admin key" in stop.json()["detail"]
        assert status_of(client, bearer(keys["admin"])) == "running"


def test_a_read_key_reads_and_changes_nothing(
    url: str, tmp_path: Path, keys: dict[str, str]
) -> None:
    read = bearer(keys["read"])
    with serving(url, tmp_path) as client:
        for path in ["/analytics/ctr", "/analytics/overview", "/experiments", EXPERIMENT]:
            assert client.get(path, headers=read).status_code == 200, path
        assert client.get(f"{EXPERIMENT}/results", headers=read).status_code == 200
        refused = [
            client.post(f"{EXPERIMENT}/stop", headers=read),
            client.post("/experiments", json={"name": "x", "variants": ["a", "b"]}, headers=read),
            client.delete("/analytics/reset", headers=read),
            client.post("/analytics/events", json=EVENT, headers=read),  # read may only read
        ]
        assert [answer.status_code for answer in refused] == [403, 403, 403, 403]
        assert status_of(client, bearer(keys["admin"])) == "running"


def test_an_admin_key_may_do_everything(url: str, tmp_path: Path, keys: dict[str, str]) -> None:
    admin = bearer(keys["admin"])
    with serving(url, tmp_path) as client:
        assert client.post("/analytics/events", json=EVENT, headers=admin).status_code == 200
        assert client.get("/analytics/ctr", headers=admin).json()["total_impressions"] == 1
        assert client.post(f"{EXPERIMENT}/stop", headers=admin).json()["status"] == "stopped"
        assert client.delete("/analytics/reset", headers=admin).status_code == 200
        assert client.get("/analytics/ctr", headers=admin).json()["total_impressions"] == 0


def test_the_key_header_works_like_bearer(url: str, tmp_path: Path, keys: dict[str, str]) -> None:
    with serving(url, tmp_path) as client:
        answer = client.get("/analytics/ctr", headers={"X-Clickstats-Key": keys["read"]})
        assert answer.status_code == 200


def test_revoked_unknown_and_malformed_keys_are_401(
    url: str, tmp_path: Path, keys: dict[str, str]
) -> None:
    state = open_state(url)
    doomed = new_key(url, "read")
    revoke_key(state, doomed.split("_")[2][:8])
    forged = keys["read"][:-4] + ("0000" if not keys["read"].endswith("0000") else "1111")
    with serving(url, tmp_path) as client:
        for key, says in [
            (doomed, "is revoked"),
            (forged, "unknown API key"),
            ("cs_read_nothex", "unknown API key"),
            (keys["read"].replace("cs_read_", "cs_admin_"), "unknown API key"),  # scope is hashed
        ]:
            answer = client.get("/analytics/ctr", headers=bearer(key))
            assert answer.status_code == 401, key
            assert says in answer.json()["detail"]
            assert answer.headers["www-authenticate"] == "Bearer"


def test_a_key_in_the_url_is_for_ingestion_only(
    url: str, tmp_path: Path, keys: dict[str, str]
) -> None:
    with serving(url, tmp_path) as client:
        sent = client.post(f"/analytics/events?key={keys['ingest']}", content=str(EVENT))
        assert sent.status_code in (200, 422)  # authenticated: the body is looked at
        beacon = client.post(
            f"/analytics/events?key={keys['ingest']}",
            content=b'{"events": [{"type": "click", "product_id": "p", "rank": 1}]}',
            headers={"Content-Type": "text/plain;charset=UTF-8"},  # as navigator.sendBeacon
        )
        assert beacon.status_code == 200 and beacon.json()["accepted"] == 1
        read = client.get(f"/analytics/ctr?key={keys['read']}")
        assert (
            read.status_code == 401 and "only by the ingestion endpoints" in read.json()["detail"]
        )
        admin_in_url = client.post(f"/analytics/events?key={keys['admin']}", json=EVENT)
        assert admin_in_url.status_code == 401
        assert "must not travel in the URL" in admin_in_url.json()["detail"]


@pytest.mark.parametrize("with_keys", [False, True], ids=["keys off", "keys on"])
@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site", "Origin": "https://evil.shop.example"},
        {"Origin": "null"},
    ],
    ids=["origin", "fetch-metadata", "same-site", "null origin"],
)
def test_a_cross_site_change_is_refused(
    url: str, tmp_path: Path, with_keys: bool, headers: dict[str, str]
) -> None:
    admin = new_key(url, "admin") if with_keys else None
    auth = bearer(admin) if admin else {}
    with serving(url, tmp_path) as client:
        answer = client.post(f"{EXPERIMENT}/stop", headers={**headers, **auth})
        assert answer.status_code == 403
        assert answer.json()["detail"].startswith("cross-site request refused")
        assert status_of(client, auth) == "running"
        reset = client.delete("/analytics/reset", headers={**headers, **auth})
        assert reset.status_code == 403


def test_same_origin_and_non_browser_changes_pass(url: str, tmp_path: Path) -> None:
    with serving(url, tmp_path) as client:
        own = {"Origin": "http://testserver", "Sec-Fetch-Site": "same-origin"}
        assert client.post(f"{EXPERIMENT}/stop", headers=own).status_code == 200
        # an older browser: Origin only, this server's own (behind a TLS proxy: https)
        mine = {"Origin": "https://testserver"}
        assert client.post(f"{EXPERIMENT}/start", headers=mine).status_code == 200
        assert client.post(f"{EXPERIMENT}/stop").status_code == 200  # curl, scripts


def test_cross_site_reads_refused_except_links_and_read_origins(url: str, tmp_path: Path) -> None:
    dash = "https://dash.example"
    with serving(url, tmp_path, read_origins=[dash]) as client:
        fetched = client.get("/analytics/ctr", headers={"Sec-Fetch-Site": "cross-site"})
        assert fetched.status_code == 403
        link = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate"}
        assert client.get("/analytics/ctr", headers=link).status_code == 200
        listed = {"Origin": dash, "Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "cors"}
        assert client.get("/analytics/ctr", headers=listed).status_code == 200
        # a read origin reads; it does not change anything
        assert client.post(f"{EXPERIMENT}/stop", headers=listed).status_code == 403
        other = {"Origin": "https://other.example", "Sec-Fetch-Site": "cross-site"}
        assert client.get("/analytics/ctr", headers=other).status_code == 403
        # ingestion is cross-site by nature
        events = client.post("/analytics/events", json=EVENT, headers=other)
        assert events.status_code == 200


def test_an_ingest_key_bound_to_origins(url: str, tmp_path: Path) -> None:
    shop = new_key(url, "ingest", origins=["https://shop.example/"])
    with serving(url, tmp_path) as client:
        ok = client.post(
            "/analytics/events",
            json=EVENT,
            headers={**bearer(shop), "Origin": "https://shop.example"},
        )
        assert ok.status_code == 200
        copied = client.post(
            "/analytics/events",
            json=EVENT,
            headers={**bearer(shop), "Origin": "https://evil.example"},
        )
        assert copied.status_code == 403
        assert "may be used only from https://shop.example" in copied.json()["detail"]
        server_side = client.post("/analytics/events", json=EVENT, headers=bearer(shop))
        assert server_side.status_code == 200  # no Origin: not a browser, nothing to check


def test_ingest_origins_refuse_other_pages(url: str, tmp_path: Path) -> None:
    with serving(url, tmp_path, ingest_origins=["https://shop.example"]) as client:
        listed = client.post(
            "/analytics/events", json=EVENT, headers={"Origin": "https://shop.example"}
        )
        assert listed.status_code == 200
        other = client.post(
            "/analytics/events", json=EVENT, headers={"Origin": "https://x.example"}
        )
        assert other.status_code == 403 and "ingest_origins" in other.json()["detail"]
        own = client.post("/analytics/events", json=EVENT, headers={"Origin": "http://testserver"})
        assert own.status_code == 200  # the demo page on this server


def test_a_running_server_sees_new_and_revoked_keys_within_a_second(
    url: str, tmp_path: Path
) -> None:
    with serving(url, tmp_path) as client:
        assert client.get("/analytics/ctr").status_code == 200
        plain = new_key(url, "read")
        time.sleep(1.1)
        assert client.get("/analytics/ctr").status_code == 401
        assert client.get("/analytics/ctr", headers=bearer(plain)).status_code == 200
        revoke_key(open_state(url), plain.split("_")[2][:8])
        time.sleep(1.1)
        # the last key revoked: keys stay required (a leaked key is revoked; that must not
        # open the API to everyone)
        assert client.get("/analytics/ctr").status_code == 401
        assert client.get("/analytics/ctr", headers=bearer(plain)).status_code == 401


def test_require_keys_closes_the_api_before_any_key_exists(url: str, tmp_path: Path) -> None:
    with serving(url, tmp_path, require_keys=True) as client:
        assert client.get("/analytics/ctr").status_code == 401
        assert client.post("/analytics/events", json=EVENT).status_code == 401
        assert client.get("/health").status_code == 200


def test_every_route_is_open_or_protected_as_documented(
    url: str, tmp_path: Path, keys: dict[str, str]
) -> None:
    """Walk every documented operation: only the open ones answer without a key, and a key
    of the wrong scope is refused (so a route added later is protected by default)."""
    open_paths = {"/health", "/analytics/tracker.js", "/demo", "/", "/dashboard/queries"}
    open_paths |= {"/dashboard/experiments", "/dashboard/users/{user_id}"}
    with serving(url, tmp_path) as client:
        operations = client.get("/openapi.json").json()["paths"]
        checked = 0
        for template, methods in operations.items():
            path = re.sub(r"\{\w+\}", "x", template)
            for method in methods:
                answer = client.request(method.upper(), path)
                if template in open_paths:
                    assert answer.status_code != 401, (method, template)
                    continue
                assert answer.status_code == 401, (method, template, answer.text)
                needed = endpoint_scope(method.upper(), template)
                wrong = "read" if needed is not Scope.READ else "ingest"
                refused = client.request(method.upper(), path, headers=bearer(keys[wrong]))
                assert refused.status_code == 403, (method, template, wrong)
                checked += 1
        assert checked >= 20


def test_openapi_documents_the_keys(url: str, tmp_path: Path) -> None:
    with serving(url, tmp_path) as client:
        spec = client.get("/openapi.json").json()
    schemes = spec["components"]["securitySchemes"]
    assert schemes["Bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": schemes["Bearer"]["description"],
    }
    assert schemes["ClickstatsKey"]["in"] == "header"
    assert schemes["ClickstatsKey"]["name"] == "X-Clickstats-Key"
    for path, method in [
        ("/analytics/ctr", "get"),
        ("/analytics/events", "post"),
        ("/experiments/{name}/stop", "post"),
        ("/search/text", "post"),
    ]:
        operation = spec["paths"][path][method]
        assert {"401", "403"} <= set(operation["responses"]), path
        assert {"Bearer": []} in operation["security"], path
    assert "security" not in spec["paths"]["/health"]["get"]
    assert "401" not in spec["paths"]["/health"]["get"]["responses"]


def test_the_key_is_left_on_the_request_for_the_rate_limiter(
    url: str, tmp_path: Path, keys: dict[str, str]
) -> None:
    settings = Settings(store=url, experiments=str(tmp_path / "experiments.json"))
    app = create_app(settings)

    async def probe(request: Request) -> dict[str, Any]:
        key = request.state.key
        return {"id": key.id, "scope": key.scope, "rate": key.rate} if key else {}

    app.add_api_route("/probe", probe, dependencies=[Read])
    limited = new_key(url, "read", rate=5)
    with TestClient(app) as client:
        answer = client.get("/probe", headers=bearer(limited)).json()
        assert answer == {"id": limited.split("_")[2][:8], "scope": "read", "rate": 5.0}
        assert client.get("/probe", headers=bearer(keys["admin"])).json()["scope"] == "admin"


def test_the_python_client_sends_its_key(url: str, tmp_path: Path, keys: dict[str, str]) -> None:
    with serving(url, tmp_path) as client:

        def through_app(request: httpx.Request) -> httpx.Response:
            answer = client.request(
                request.method, str(request.url), content=request.content, headers=request.headers
            )
            return httpx.Response(
                answer.status_code, headers=answer.headers, content=answer.content
            )

        transport = httpx.MockTransport(through_app)
        with ClickStatsClient(
            "http://testserver", transport=transport, key=keys["ingest"]
        ) as stats:
            stats.log_impression(query="shoes", event_id="from-client")
        with ClickStatsClient("http://testserver", transport=transport, key=keys["read"]) as reader:
            assert reader.get("/analytics/ctr")["total_impressions"] == 1
        with ClickStatsClient("http://testserver", transport=transport) as anonymous:
            with pytest.raises(httpx.HTTPStatusError) as refused:
                anonymous.get("/analytics/ctr")
            assert refused.value.response.status_code == 401
