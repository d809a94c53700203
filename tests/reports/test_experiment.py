"""Experiment results (reports/experiment.py) over HTTP, on traffic simulated through the real
search path."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from clickstats import metrics
from clickstats.app import create_app
from clickstats.search import default_catalog, default_engine
from clickstats.settings import Settings
from clickstats.simulate import InProcess, simulate


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    tmp: Path = tmp_path_factory.mktemp("results")
    settings = Settings(store=f"duckdb://{tmp}/r.duckdb", experiments=str(tmp / "e.json"))
    app = create_app(settings)
    with TestClient(app) as c:
        backend = InProcess(app.state.tracker.store, app.state.experiments, default_engine())
        # users alike: 300 of the heterogeneous ones leave search_v2's lead within the noise
        simulate(backend, default_catalog(), users=300, searches=3000, seed=3, alike=True)
        yield c


def test_results_name_the_better_ranker_with_intervals(client: TestClient) -> None:
    body: dict[str, Any] = client.get("/experiments/search_ranking/results").json()
    assert body["method"] == "sequential" and body["control"] == "search_v1"
    assert body["health"]["passed"] and not body["health"]["srm"]["flagged"]
    v2 = next(v for v in body["variants"] if v["name"] == "search_v2")
    ctr = v2["metrics"]["search_ctr"]["comparison"]
    assert ctr["significant"] and ctr["absolute_ci"][0] > 0
    assert body["decision"]["winner"] == "search_v2"
    assert "search_v2" in body["decision"]["summary"]
    assert set(body["response_time"]) == {"search_v1", "search_v2"}
    fixed = client.get("/experiments/search_ranking/results?method=fixed").json()
    fixed_ci = next(v for v in fixed["variants"] if v["name"] == "search_v2")["metrics"][
        "search_ctr"
    ]["comparison"]["absolute_ci"]
    # the always-valid interval is wider than the fixed-horizon one on the same data
    assert ctr["absolute_ci"][1] - ctr["absolute_ci"][0] > fixed_ci[1] - fixed_ci[0]


def test_variants_comparison_carries_the_decision(client: TestClient) -> None:
    body = client.get("/analytics/variants-comparison").json()
    stats = body["stats"]
    assert stats["experiment"] == "search_ranking" and stats["winner"] == "search_v2"
    assert stats["variants"]["search_v2"]["significant"] is True
    assert stats["variants"]["search_v1"]["estimate"] < stats["variants"]["search_v2"]["estimate"]


def test_a_mismatched_split_blocks_the_verdict(client: TestClient) -> None:
    # Declare weights the traffic does not follow: the sample ratio check must fire.
    body = {"name": "search_ranking", "variants": {"search_v1": 9, "search_v2": 1}}
    assert client.post("/experiments", json=body).status_code == 200
    try:
        result = client.get("/experiments/search_ranking/results").json()
        assert result["health"]["srm"]["flagged"] is True
        assert result["decision"]["winner"] is None
        assert "sample_ratio_mismatch" in result["decision"]["blocked_by"]
    finally:
        body["variants"] = {"search_v1": 1, "search_v2": 1}
        client.post("/experiments", json=body)


def test_bad_requests(client: TestClient) -> None:
    assert client.get("/experiments/nope/results").status_code == 404
    bad = client.get("/experiments/search_ranking/results?method=bayes")
    assert bad.status_code == 422 and "method" in bad.text
    assert client.get("/experiments/search_ranking/results?days=0").status_code == 422
    wrong = client.post(
        "/experiments",
        json={"name": "x", "variants": {"a": 1, "b": 1}, "primary_metric": "revenue"},
    )
    assert wrong.status_code == 422 and "primary_metric" in wrong.text


def test_reused_aggregates_never_go_stale(tmp_path: Path) -> None:
    settings = Settings(store=f"duckdb://{tmp_path}/c.duckdb", experiments=str(tmp_path / "e.json"))
    with TestClient(create_app(settings)) as fresh:

        def users() -> dict[str, int]:
            body = fresh.get("/experiments/search_ranking/results").json()
            return {v["name"]: v["users"] for v in body["variants"]}

        for n in range(4):
            variant = "search_v1" if n % 2 else "search_v2"
            fresh.post(
                "/analytics/log-impression",
                json={"user_id": f"u{n}", "query": "q", "variant": variant},
            )
        before = users()
        assert users() == before  # read twice: the same answer (the aggregate is reused)
        fresh.post(
            "/analytics/log-impression",
            json={"user_id": "late", "query": "q", "variant": "search_v1"},
        )
        after = users()
        assert sum(after.values()) == sum(before.values()) + 1


def test_a_metric_added_to_the_registry_is_analysed(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    added = metrics.Metric(
        "ctr_with_results", "CTR of searches with results", "clicked_searches", "with_results",
        True, True,
    )  # fmt: skip
    monkeypatch.setitem(metrics.METRICS, added.name, added)
    body = client.get("/experiments/search_ranking/results").json()
    for variant in body["variants"]:
        assert list(variant["metrics"]) == list(metrics.METRICS)
        assert variant["metrics"]["ctr_with_results"]["estimate"] > 0
    v2 = next(v for v in body["variants"] if v["name"] == "search_v2")
    assert v2["metrics"]["ctr_with_results"]["comparison"]["p_value"] is not None
