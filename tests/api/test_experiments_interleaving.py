"""Interleaving end to end: /search/text serves team-drafted lists, clicks are credited."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from clickstats.app import create_app
from clickstats.search import default_catalog, default_engine
from clickstats.settings import Settings
from clickstats.simulate import InProcess, simulate

DUEL = {"name": "duel", "type": "interleaving", "variants": {"search_v1": 1, "search_v2": 1}}


def test_interleaving_end_to_end(tmp_path: Path) -> None:
    settings = Settings(store=f"duckdb://{tmp_path}/i.duckdb", experiments=str(tmp_path / "e.json"))
    app = create_app(settings)
    with TestClient(app) as client:
        assert client.post("/experiments", json=DUEL).status_code == 201
        served = client.post("/search/text", json={"query": "shoes"}, headers={"X-User-ID": "u1"})
        body = served.json()
        assert body["variant"] == body["experiment"] == "duel" and len(body["results"]) == 10
        ids = [r["product_id"] for r in body["results"]]
        assert len(set(ids)) == len(ids)
        a = default_engine().rank("shoes", "search_v1", 10).product_ids
        b = default_engine().rank("shoes", "search_v2", 10).product_ids
        assert ids[0] in (a[0], b[0])  # the first pick is one ranker's best result
        assert set(ids) <= set(a) | set(b)

        backend = InProcess(app.state.tracker.store, app.state.experiments, default_engine())
        simulate(backend, default_catalog(), users=200, searches=2000, seed=5)
        result = client.get("/experiments/duel/interleaving").json()
        assert result["rankers"] == {"A": "search_v1", "B": "search_v2"}
        assert result["wins_b"] > result["wins_a"] and result["significant"]
        assert result["ci_low"] > 0.5 and result["verdict"].startswith("Users prefer search_v2")
        assert (
            result["searches_with_clicks"] == result["wins_a"] + result["wins_b"] + result["ties"]
        )
        assert result["by_query"] and result["by_query"][0]["query"]

        assert client.get("/experiments/search_ranking/interleaving").status_code == 409
        client.post("/experiments/duel/stop")
        after = client.post("/search/text", json={"query": "shoes"}, headers={"X-User-ID": "u1"})
        assert after.json()["variant"] in {"search_v1", "search_v2"}  # back to the A/B split


def test_an_interleaving_experiment_has_two_rankers(tmp_path: Path) -> None:
    settings = Settings(store=f"duckdb://{tmp_path}/j.duckdb", experiments=str(tmp_path / "e.json"))
    with TestClient(create_app(settings)) as client:
        three = {**DUEL, "variants": {"a": 1, "b": 1, "c": 1}}
        response = client.post("/experiments", json=three)
        assert response.status_code == 422 and "exactly two" in response.text
