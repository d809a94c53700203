"""GET /analytics/judgments on every backend: the report, CSV, the Workbench's import format,
and bad input answered 422 naming the parameter."""

from __future__ import annotations

import csv
import io

import pytest
from fastapi.testclient import TestClient

from tests.store.test_judgments import EVENTS

URL = "/analytics/judgments"


@pytest.fixture
def seeded(client: TestClient) -> TestClient:
    client.app.state.tracker.store.append_sync(EVENTS)  # type: ignore[attr-defined]
    return client


def test_coec_report(seeded: TestClient) -> None:
    answer = seeded.get(URL, params={"min_impressions": 1})
    assert answer.status_code == 200
    body = answer.json()
    assert (body["model"], body["min_impressions"], body["max_rank"]) == ("coec", 1, 20)
    assert [(r["rank"], r["impressions"], r["clicks"]) for r in body["ranks"]] == [
        (1, 4, 2), (2, 3, 1), (3, 1, 1),
    ]  # fmt: skip
    # By query, best grade first (tests/stats/test_judgments.py has the arithmetic).
    assert [(j["query"], j["product_id"], j["grade"]) for j in body["judgments"]] == [
        ("radio", "p9", 2.0),
        ("tv", "p1", pytest.approx(1.8)),
        ("tv", "p3", pytest.approx(1.5)),
        ("tv", "p2", 0.0),
    ]
    p1 = body["judgments"][1]
    assert (p1["impressions"], p1["clicks"], p1["score"]) == (3, 2, pytest.approx(1.5))
    assert p1["low"] < p1["score"] < p1["high"]
    # The default minimum (10 searches) leaves nothing to judge here, and says so.
    empty = seeded.get(URL).json()
    assert empty["judgments"] == []
    assert empty["error"] == "no product was shown in enough searches"


def test_pbm_report(seeded: TestClient) -> None:
    body = seeded.get(URL, params={"model": "pbm", "min_impressions": 3}).json()
    assert body["model"] == "pbm" and body["converged"] and body["iterations"] > 0
    # Rank 3 showed only tv/p3, shown once: no kept pair there, no examination fitted.
    assert [r["examination"] is None for r in body["ranks"]] == [False, False, True]
    assert max(r["examination"] or 0 for r in body["ranks"]) == 1.0
    assert [j["product_id"] for j in body["judgments"]] == ["p1", "p2"]
    for j in body["judgments"]:
        assert 0 <= j["grade_low"] <= j["grade"] <= j["grade_high"] <= 3


def test_csv_and_srw(seeded: TestClient) -> None:
    answer = seeded.get(URL, params={"min_impressions": 1, "format": "csv", "variant": "v1"})
    assert answer.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    # Variant v1's searches: CTR 2/3, 0 and 1 at ranks 1-3. tv/p2 was shown at rank 2 only,
    # where nothing was clicked: no expected clicks, no grade (an empty cell).
    assert [(r["query"], r["product_id"], r["clicks"], r["grade"]) for r in rows] == [
        ("radio", "p9", "1", "1.8"),  # 1 click over 2/3 expected: COEC 1.5, grade 1.8
        ("tv", "p3", "1", "1.5"),  # 1 over 1: COEC 1
        ("tv", "p1", "1", str(3 * 0.75 / 1.75)),  # 1 over 4/3: COEC 0.75
        ("tv", "p2", "0", ""),
    ]
    assert list(rows[0]) == [
        "query", "product_id", "impressions", "clicks", "score", "low", "high",
        "grade", "grade_low", "grade_high", "evidence",
    ]  # fmt: skip
    srw = seeded.get(URL, params={"min_impressions": 1, "format": "srw"}).json()
    assert srw["type"] == "IMPORT_JUDGMENT"
    assert srw["name"] == "clickstats coec judgments, last 7 days"
    assert not set('"\\<>') & set(srw["name"] + srw["description"])
    assert srw["description"] == (
        "COEC grades on 0-3 from clicks, products shown in at least 1 search at ranks 1-20"
    )
    assert srw["judgmentRatings"] == [
        {"query": "radio", "ratings": [{"docId": "p9", "rating": "2.000"}]},
        {
            "query": "tv",
            "ratings": [
                {"docId": "p1", "rating": "1.800"},
                {"docId": "p3", "rating": "1.500"},
                {"docId": "p2", "rating": "0.000"},
            ],
        },
    ]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"min_impressions": 0}, "min_impressions"),
        ({"min_impressions": "many"}, "min_impressions"),
        ({"model": "dbn"}, "model"),
        ({"format": "xml"}, "format"),
        ({"max_rank": 0}, "max_rank"),
        ({"days": 0}, "days"),
    ],
)
def test_bad_input_names_the_parameter(
    client: TestClient, params: dict[str, object], field: str
) -> None:
    answer = client.get(URL, params=params)
    assert answer.status_code == 422
    (error,) = answer.json()["detail"]
    assert error["loc"] == ["query", field]
