"""A metric added to the registry reaches every report without another edit: the experiment
results, the dashboard's overview figures, /analytics/metrics, the terminal report and the
metric table of docs/STATISTICS.md (docs/ARCHITECTURE.md, "Add a metric")."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from clickstats import metrics
from clickstats.app import create_app
from clickstats.cli import main
from clickstats.events import utcnow
from clickstats.settings import Settings
from tests.conftest import BACKENDS, store_url

ROOT = Path(__file__).resolve().parents[1]

TOP3 = metrics.Column(
    "top3_first_click",
    metrics.When(
        metrics.AllOf((metrics.CLICKED, metrics.Compare(metrics.Of("first_rank"), "<=", metrics.Num(3)))),
        metrics.Num(1),
    ),
    "searches whose first click is in the top 3",
)  # fmt: skip
RATE = metrics.Metric(
    "top3_first_click_rate", "top-3 first click rate", "top3_first_click", "searches",
    higher_is_better=True, percent=True, dashboard=True,
)  # fmt: skip


@pytest.fixture
def top3(monkeypatch: pytest.MonkeyPatch) -> metrics.Metric:
    monkeypatch.setitem(metrics.COLUMNS, TOP3.name, TOP3)
    monkeypatch.setitem(metrics.METRICS, RATE.name, RATE)
    return RATE


#: Per variant, each user's searches as the ranks clicked, in click order ([] without a click).
SEARCHES = {
    "search_v1": {"a1": [[1], [5, 1], []], "a2": [[2]]},  # 2 of 4 first clicks in the top 3
    "search_v2": {"b1": [[4], []], "b2": [[3], [1], [2]]},  # 3 of 5
}
EXPECTED = {"search_v1": 2 / 4, "search_v2": 3 / 5}
TOTAL = 5 / 9


def seed(client: TestClient) -> None:
    start = utcnow() - timedelta(hours=2)
    events: list[dict[str, Any]] = []
    n = 0
    for variant, users in SEARCHES.items():
        for user, searches in users.items():
            for ranks in searches:
                n += 1
                when = start + timedelta(minutes=n)
                sid = f"s{n}"
                events.append(
                    {"type": "impression", "search_id": sid, "user_id": user, "variant": variant,
                     "query": "shoes", "results_count": 10, "timestamp": when.isoformat()}
                )  # fmt: skip
                for k, rank in enumerate(ranks):
                    events.append(
                        {"type": "click", "search_id": sid, "user_id": user, "rank": rank,
                         "product_id": f"p{rank}", "variant": variant,
                         "timestamp": (when + timedelta(seconds=5 + k)).isoformat()}
                    )  # fmt: skip
    response = client.post("/analytics/events", json={"events": events})
    assert response.status_code == 200, response.text
    assert response.json()["rejected"] == 0


def percent(x: float) -> str:
    return f"{100 * x:.1f}%"


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_metric_added_to_the_registry_is_in_every_report(
    backend: str, tmp_path: Path, top3: metrics.Metric
) -> None:
    with store_url(backend, tmp_path) as url:
        settings = Settings(store=url, max_event_age_days=0)
        with TestClient(create_app(settings)) as client:
            seed(client)

            served = client.get("/analytics/metrics").json()["metrics"]
            (info,) = [m for m in served if m["name"] == top3.name]
            assert info["label"] == top3.label
            assert info["x"] == "searches whose first click is in the top 3"
            assert info["definition"] == top3.definition
            assert info["percent"] and info["higher_is_better"] and info["dashboard"]

            overview = client.get("/analytics/overview").json()
            assert overview["totals"][top3.name] == pytest.approx(TOTAL)
            for variant, value in EXPECTED.items():
                assert overview["by_variant"][variant][top3.name] == pytest.approx(value)
            assert list(overview["totals"])[-1] == top3.name  # after the declared fields
            queries = client.get("/analytics/queries").json()
            assert queries["top_queries"][0][top3.name] == pytest.approx(TOTAL)

            results = client.get("/experiments/search_ranking/results").json()
            for v in results["variants"]:
                estimate = v["metrics"][top3.name]["estimate"]
                assert estimate == pytest.approx(EXPECTED[v["name"]])

        # The terminal report, on the same store (the server has let go of it).
        out = (
            CliRunner()
            .invoke(
                main,
                ["report", "--store", url, "--experiment", "search_ranking"],
                catch_exceptions=False,
            )
            .output
        )
        assert top3.label in out
        for value in EXPECTED.values():
            assert percent(value) in out

    table = metrics.doc_table()
    assert (
        "| top-3 first click rate | `top3_first_click_rate` | searches whose first click is in "
        "the top 3 | searches | higher |"
    ) in table.splitlines()


def test_the_metric_table_of_statistics_md_is_the_registrys() -> None:
    assert metrics.doc_table() in (ROOT / "docs" / "STATISTICS.md").read_text()


def test_the_registry_served_is_the_registry(client: TestClient) -> None:
    served = client.get("/analytics/metrics").json()["metrics"]
    assert [m["name"] for m in served] == list(metrics.METRICS)
    for m in served:
        spec = metrics.METRICS[m["name"]]
        assert m == {
            "name": spec.name, "label": spec.label, "definition": spec.definition,
            "x": spec.x, "y": spec.y, "unit": spec.unit, "percent": spec.percent,
            "higher_is_better": spec.higher_is_better, "dashboard": spec.dashboard,
            "currency": spec.currency,
        }  # fmt: skip
    assert {m["name"] for m in served if m["currency"]} == {
        "revenue_per_search", "revenue_per_user", "average_order_value",
    }  # fmt: skip


def test_todays_figures_have_no_extra_metric(client: TestClient) -> None:
    """Every dashboard metric of today's registry is a declared field of the figures: the
    answers stay as recorded (tests/test_answers.py)."""
    totals = client.get("/analytics/overview").json()["totals"]
    assert list(totals) == [
        "searches", "users", "clicked_searches", "clicks", "search_ctr", "clicks_per_search",
        "avg_click_position", "zero_results", "zero_result_rate", "abandonment_rate",
        "avg_response_ms", "p95_response_ms", "conversion_rate", "revenue_per_search",
        "converted_searches", "revenue",
    ]  # fmt: skip
