"""Bad input over HTTP, on every backend: always a 4xx that names the field, never a 500, and
nothing stored. Each case here was a 500 before (or stored what it should not have)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from clickstats.app import create_app
from clickstats.events import utcnow
from clickstats.settings import Settings
from clickstats.store import open_store
from clickstats.transfer import import_file
from tests.conftest import BACKENDS, store_url

JSON = {"Content-Type": "application/json"}
CLICK = '{"product_id": "p1", "rank": 1, %s}'
IMPRESSION = '{"query": "shoes", %s}'


@pytest.fixture(params=BACKENDS)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with store_url(request.param, tmp_path) as u:
        yield u


def serve(url: str, tmp_path: Path, **options: Any) -> TestClient:
    settings = Settings(store=url, experiments=str(tmp_path / "experiments.json"), **options)
    # raise_server_exceptions=False: a 500 must show up as a 500 here, not as an exception
    return TestClient(create_app(settings), raise_server_exceptions=False)


@pytest.fixture
def client(url: str, tmp_path: Path) -> Iterator[TestClient]:
    with serve(url, tmp_path) as c:
        yield c


def post(client: TestClient, path: str, body: str, headers: dict[str, Any] | None = None) -> Any:
    """POST a raw body (the cases are not JSON that Python's json.dumps would write)."""
    return client.post(path, content=body.encode(), headers={**JSON, **(headers or {})})


def fields(answer: Any) -> list[str]:
    """The fields a 422 names: the last part of each error's location."""
    assert answer.status_code == 422, answer.text
    return [str(error["loc"][-1]) for error in answer.json()["detail"]]


def stored(client: TestClient) -> int:
    totals = client.get("/analytics/ctr", params={"days": 365}).json()
    return int(totals["total_clicks"]) + int(totals["total_impressions"])


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e400"])
@pytest.mark.parametrize(("path", "template"), [
    ("/analytics/log-click", CLICK), ("/analytics/log-impression", IMPRESSION),
])  # fmt: skip
def test_non_finite_response_times_are_422_naming_the_field(
    client: TestClient, path: str, template: str, number: str
) -> None:
    answer = post(client, path, template % f'"response_time_ms": {number}')
    assert fields(answer) == ["response_time_ms"]
    assert "finite" in answer.json()["detail"][0]["msg"]
    assert stored(client) == 0


def test_a_422_renders_when_the_input_it_echoes_holds_nan(client: TestClient) -> None:
    # "product_id" missing: FastAPI's error echoes the whole body, NaN included.
    answer = post(client, "/analytics/log-click", '{"rank": 1, "response_time_ms": NaN}')
    assert sorted(fields(answer)) == ["product_id", "response_time_ms"]
    assert all("input" not in e for e in answer.json()["detail"])  # left out, not rendered


@pytest.mark.parametrize(
    ("path", "template", "field"),
    [
        ("/analytics/log-click", CLICK, "user_id"),
        ("/analytics/log-click", CLICK, "session_id"),
        ("/analytics/log-click", CLICK, "search_query"),
        ("/analytics/log-click", CLICK, "variant"),
        ("/analytics/log-click", CLICK, "search_id"),
        ("/analytics/log-click", CLICK, "event_id"),
        ("/analytics/log-impression", IMPRESSION, "variant"),
        ("/analytics/log-impression", IMPRESSION, "search_id"),
    ],
)
def test_lone_surrogates_are_422_naming_the_field(
    client: TestClient, path: str, template: str, field: str
) -> None:
    answer = post(client, path, template % f'"{field}": "a\\ud800b"')
    assert fields(answer) == [field]
    assert stored(client) == 0


def test_lone_surrogates_in_every_other_body(client: TestClient) -> None:
    answer = post(client, "/analytics/log-impression", '{"query": "\\udfff"}')
    assert fields(answer) == ["query"]
    answer = post(
        client, "/analytics/log-impression", '{"query": "q", "results": ["ok", "\\ud800"]}'
    )
    assert fields(answer) == ["1"]  # results.1
    assert answer.json()["detail"][0]["loc"] == ["body", "results", 1]
    assert fields(post(client, "/search/text", '{"query": "\\ud800"}')) == ["query"]
    experiment = '{"name": "e1", "variants": {"a": 1, "b": 1}, "salt": "\\ud800"}'
    assert fields(post(client, "/experiments", experiment)) == ["salt"]
    experiment = '{"name": "e1", "variants": {"a": 1, "\\ud800": 1}}'
    answer = post(client, "/experiments", experiment)
    assert answer.status_code == 422  # the key is in the location (pydantic shows it as U+FFFD)
    assert answer.json()["detail"][0]["loc"][:2] == ["body", "variants"]
    # A pair of surrogates is one character (an emoji), not a lone one: taken.
    answer = post(client, "/analytics/log-click", CLICK % '"user_id": "\\ud83d\\ude00"')
    assert answer.status_code == 200, answer.text
    assert client.get("/analytics/user/\U0001f600").json()["clicks"] == 1


@pytest.mark.parametrize(
    "timestamp",
    ["0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00+23:59"],
)
def test_timestamps_out_of_range_in_utc_are_422(client: TestClient, timestamp: str) -> None:
    answer = post(client, "/analytics/log-click", CLICK % f'"timestamp": "{timestamp}"')
    assert fields(answer) == ["timestamp"]
    assert "out of range" in answer.json()["detail"][0]["msg"]
    answer = post(client, "/search/text", f'{{"query": "shoes", "timestamp": "{timestamp}"}}')
    assert fields(answer) == ["timestamp"]


def test_a_batch_keeps_its_good_events_when_one_has_nan(client: TestClient) -> None:
    body = (
        '{"events": [{"type": "click", "product_id": "p1", "rank": 1},'
        ' {"type": "impression", "query": "q"},'
        ' {"type": "click", "product_id": "p2", "rank": 2, "response_time_ms": NaN}]}'
    )
    answer = post(client, "/analytics/events", body)
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert (result["accepted"], result["rejected"]) == (2, 1)
    assert [r["status"] for r in result["results"]] == ["accepted", "accepted", "rejected"]
    assert result["results"][2]["errors"][0]["field"] == "response_time_ms"
    assert stored(client) == 2


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        ('"response_time_ms": Infinity', "response_time_ms"),
        ('"response_time_ms": 1e400', "response_time_ms"),
        ('"user_id": "\\ud800"', "user_id"),
        ('"rank": true', "rank"),
        ('"timestamp": "0001-01-01T00:00:00+01:00"', "timestamp"),
    ],
)
def test_a_batch_rejects_each_bad_event_alone(client: TestClient, bad: str, field: str) -> None:
    body = (
        '{"events": [{"type": "click", "product_id": "p1", "rank": 1},'
        f' {{"type": "click", "product_id": "p2", "rank": 2, {bad}}}]}}'
    )
    result = post(client, "/analytics/events", body).json()
    assert (result["accepted"], result["rejected"]) == (1, 1)
    assert result["results"][1]["errors"][0]["field"] == field


def test_a_batch_that_is_no_json_is_a_422_not_a_500(client: TestClient) -> None:
    for body in [b'{"events": [', b'{"events": [\xff]}', b"[" * 100_000 + b"]" * 100_000]:
        answer = client.post("/analytics/events", content=body, headers=JSON)
        assert answer.status_code == 422, answer.text
        assert answer.json()["detail"][0]["loc"] == ["body", "events"]


def test_a_body_fastapi_cannot_read_is_a_400_not_a_500(client: TestClient) -> None:
    for body in [b'{"product_id": "\xff"}', b"[" * 100_000 + b"]" * 100_000]:
        answer = client.post("/analytics/log-click", content=body, headers=JSON)
        assert answer.status_code in (400, 422), answer.text


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/analytics/log-click", CLICK % '"response_time_ms": false', "response_time_ms"),
        ("/analytics/log-click", '{"product_id": "p1", "rank": true}', "rank"),
        ("/analytics/log-click", '{"product_id": "p1", "rank": "2"}', "rank"),
        ("/analytics/log-click", '{"product_id": "p1", "rank": 1.5}', "rank"),
        ("/analytics/log-impression", IMPRESSION % '"results_count": true', "results_count"),
        ("/analytics/log-impression", IMPRESSION % '"response_time_ms": "12"', "response_time_ms"),
        ("/search/text", '{"query": "shoes", "limit": true}', "limit"),
        ("/experiments", '{"name": "e1", "variants": {"a": true, "b": 1}}', "a"),
        ("/experiments", '{"name": "e1", "variants": {"a": 1, "b": 1}, "outlier_z": true}',
         "outlier_z"),
        ("/experiments", '{"name": "e1", "variants": {"a": 1, "b": 1}, "created_at": 0}',
         "created_at"),
    ],
)  # fmt: skip
def test_booleans_and_text_are_no_numbers(
    client: TestClient, path: str, body: str, field: str
) -> None:
    assert fields(post(client, path, body)) == [field]


def test_whole_floats_are_integers_as_json_schema_says(client: TestClient) -> None:
    answer = post(client, "/analytics/log-click", '{"product_id": "p1", "rank": 3.0}')
    assert answer.status_code == 200, answer.text
    assert client.get("/analytics/rank-metrics").json()["avg_rank"] == 3


def test_numeric_timestamps_are_epoch_milliseconds(client: TestClient) -> None:
    moment = (utcnow() - timedelta(hours=1)).replace(microsecond=123000)
    millis = int(moment.timestamp() * 1000)
    answer = post(client, "/analytics/log-click", CLICK % f'"timestamp": {millis}')
    assert answer.status_code == 200, answer.text
    assert datetime.fromisoformat(answer.json()["timestamp"]) == moment
    for bad in ["true", f'"{millis}"', "1e400", "-1e300"]:
        assert fields(post(client, "/analytics/log-click", CLICK % f'"timestamp": {bad}')) == [
            "timestamp"
        ]
    # ... and the schema says so: a date-time string or a number, described.
    schema = client.get("/openapi.json").json()["components"]["schemas"]
    timestamp = schema["ClickEvent"]["properties"]["timestamp"]
    assert [kind["type"] for kind in timestamp["anyOf"]] == ["string", "number"]
    assert timestamp["anyOf"][0]["format"] == "date-time"
    assert "milliseconds" in timestamp["description"]


def test_events_older_than_the_window_are_refused_over_http(url: str, tmp_path: Path) -> None:
    old = (utcnow() - timedelta(days=8)).isoformat()
    recent = (utcnow() - timedelta(days=6)).isoformat()
    with serve(url, tmp_path) as client:  # the default window: 7 days
        answer = post(client, "/analytics/log-click", CLICK % f'"timestamp": "{old}"')
        assert fields(answer) == ["timestamp"]
        message = answer.json()["detail"][0]["msg"]
        assert "7 days" in message and "max_event_age_days" in message
        answer = post(client, "/analytics/log-impression", IMPRESSION % f'"timestamp": "{old}"')
        assert fields(answer) == ["timestamp"]
        answer = post(client, "/search/text", f'{{"query": "shoes", "timestamp": "{old}"}}')
        assert fields(answer) == ["timestamp"]
        batch = {
            "events": [
                {"type": "click", "product_id": "p1", "rank": 1, "timestamp": old},
                {"type": "click", "product_id": "p1", "rank": 1, "timestamp": recent},
            ]
        }
        result = client.post("/analytics/events", json=batch).json()
        assert (result["accepted"], result["rejected"]) == (1, 1)
        assert result["results"][0]["errors"][0]["field"] == "timestamp"
        assert "7 days" in result["results"][0]["errors"][0]["problem"]
    with serve(url, tmp_path, max_event_age_days=0) as client:  # 0: any age
        answer = post(client, "/analytics/log-click", CLICK % f'"timestamp": "{old}"')
        assert answer.status_code == 200, answer.text
    with serve(url, tmp_path, max_event_age_days=1) as client:
        answer = post(client, "/analytics/log-click", CLICK % f'"timestamp": "{recent}"')
        assert "1 day old" in answer.json()["detail"][0]["msg"]


def test_import_loads_events_of_any_age(url: str, tmp_path: Path) -> None:
    path = tmp_path / "old.jsonl"
    year_ago = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC).isoformat()
    rows = [
        {"type": "click", "event_id": "c1", "product_id": "p1", "rank": 1, "timestamp": year_ago},
        {"type": "impression", "event_id": "i1", "query": "q", "timestamp": year_ago},
    ]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    store = open_store(url)
    store.open()
    try:
        summary = import_file(store, path)
    finally:
        store.close()
    assert (summary.imported, summary.rejected) == (2, 0)


def with_user_header(client: TestClient, value: bytes) -> tuple[int, Any]:
    """POST a click whose X-User-ID header is exactly `value` (the test client would turn
    bytes into UTF-8 whatever they were), straight to the app."""
    body = b'{"product_id": "p1", "rank": 1}'
    headers = [(b"host", b"testserver"), (b"content-type", b"application/json")]
    headers += [(b"content-length", str(len(body)).encode()), (b"x-user-id", value)]
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/analytics/log-click", "raw_path": b"/analytics/log-click",
        "root_path": "", "query_string": b"", "headers": headers,
        "client": ("127.0.0.1", 50000), "server": ("testserver", 80),
    }  # fmt: skip
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    assert client.portal is not None
    client.portal.call(client.app, scope, receive, send)
    answer = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent[0]["status"], json.loads(answer)


def test_user_id_headers_are_utf8(client: TestClient) -> None:
    assert with_user_header(client, "Zoë-東京".encode())[0] == 200
    assert client.get("/analytics/user/Zoë-東京").json()["clicks"] == 1
    status, answer = with_user_header(client, "Zoë".encode("latin-1"))  # not UTF-8: refused
    assert status == 422
    assert [error["loc"] for error in answer["detail"]] == [["header", "X-User-ID"]]
    assert "UTF-8" in answer["detail"][0]["msg"]
    assert stored(client) == 1


def test_405_allows_every_method_of_the_path(client: TestClient) -> None:
    answer = client.request("PUT", "/experiments")
    assert answer.status_code == 405
    assert answer.headers["allow"] == "GET, POST"
    assert client.request("DELETE", "/search/text").headers["allow"] == "GET, POST"


def test_openapi_lists_every_status_an_operation_can_answer(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]

    def statuses(path: str, method: str) -> set[str]:
        return set(paths[path][method]["responses"])

    assert statuses("/analytics/log-click", "post") >= {
        "200", "400", "401", "403", "408", "413", "422", "429", "503", "507",
    }  # fmt: skip
    assert statuses("/analytics/events", "post") >= {"200", "413", "422", "429", "503", "507"}
    assert statuses("/analytics/reset", "delete") >= {"200", "403", "429"}
    assert statuses("/experiments/{name}/interleaving", "get") >= {"404", "409", "422"}
    assert statuses("/experiments", "post") >= {"200", "201", "413", "422", "507"}
    assert statuses("/health", "get") == {"200", "503"}  # no rate limit on /health


def test_a_query_parameter_given_twice_is_a_422(client: TestClient) -> None:
    answer = client.get("/analytics/ctr", params=[("days", "1"), ("days", "365")])
    assert fields(answer) == ["days"]  # not silently the last one
    assert answer.json()["detail"][0]["input"] == ["1", "365"]
    answer = client.get("/search/text", params=[("q", "shoes"), ("q", "hats")])
    assert fields(answer) == ["q"]
    # A parameter the operation does not have is no concern of it.
    assert client.get("/analytics/ctr", params=[("x", "1"), ("x", "2")]).status_code == 200


def test_a_user_id_with_a_line_break_can_be_erased(client: TestClient) -> None:
    # It can be stored; the path used to stop at the line break (404).
    assert post(client, "/analytics/log-click", CLICK % '"user_id": "a\\nb/c"').status_code == 200
    answer = client.delete("/analytics/users/a%0Ab%2Fc")
    assert answer.status_code == 200, answer.text
    assert answer.json()["deleted"]["clicks"] == 1
