"""The sample catalog and its ground truth, the two rankers, and /search/text over HTTP."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import duckdb
import numpy as np
import pytest
from fastapi.testclient import TestClient
from httpx import Response

from clickstats.app import create_app
from clickstats.events import utcnow
from clickstats.experiments import ExperimentManager
from clickstats.search import (
    V1,
    V2,
    Catalog,
    Product,
    Query,
    SearchEngine,
    UnknownRanker,
    default_catalog,
    default_engine,
    generate_catalog,
    mean_ndcg,
    ndcg,
    relevance,
    serve,
)
from clickstats.search.catalog import GOOD_QUALITY
from clickstats.settings import Settings
from clickstats.state import open_state

RESPONSE_KEYS = {"search_id", "variant", "experiment", "query", "total", "took_ms", "results"}
RESULT_KEYS = {"rank", "product_id", "title", "brand", "category", "price"}


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return default_catalog()


@pytest.fixture(scope="module")
def engine() -> SearchEngine:
    return default_engine()


# -- catalog and ground truth ------------------------------------------------------------------


def test_catalog_is_deterministic_and_seeded() -> None:
    first, again = generate_catalog(seed=5, size=300), generate_catalog(seed=5, size=300)
    assert first.products == again.products
    assert first.queries == again.queries
    other = generate_catalog(seed=6, size=300)
    assert [p.title for p in other.products] != [p.title for p in first.products]


def test_default_catalog_shape(catalog: Catalog) -> None:
    assert len(catalog) == 3000
    assert catalog.products[0].id == "sku-00001" and catalog.products[-1].id == "sku-03000"
    assert len({p.title for p in catalog.products}) > 1000
    assert 300 <= len(catalog.queries) <= 400
    for product in catalog.products:
        assert product.title and product.price > 0 and 1.0 <= product.rating <= 5.0
        assert 0.0 <= product.quality <= 1.0
    # the visible rating follows the hidden quality, noisily
    assert 0.7 < np.corrcoef(catalog.quality, catalog.ratings)[0, 1] < 0.95
    texts = {q.text for q in catalog.queries}
    assert {"shoes", "red shoes", "waterproof jacket", "running shoes"} <= texts
    assert any(q.brand and q.text == f"{q.brand} backpack" for q in catalog.queries)
    for query in catalog.queries:  # every query has something to find
        assert (catalog.grades(query) >= 2).sum() >= 3


def product(**fields: object) -> Product:
    base: dict[str, object] = {
        "index": 0, "id": "sku-00001", "title": "Kestrel Red Trail Shoes", "category": "shoes",
        "brand": "kestrel", "color": "red", "style": "trail",
        "features": frozenset({"waterproof"}), "price": 99.99, "rating": 4.5, "quality": 0.9,
    }  # fmt: skip
    return Product(**{**base, **fields})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("query", "fields", "grade"),
    [
        (Query("shoes", "shoes"), {}, 3),
        (Query("shoes", "shoes"), {"quality": GOOD_QUALITY - 0.01}, 2),
        (Query("shoes", "shoes"), {"quality": GOOD_QUALITY}, 3),
        (Query("red shoes", "shoes", color="red"), {}, 3),
        (Query("red shoes", "shoes", color="red"), {"color": "blue"}, 1),
        (Query("red shoes", "shoes", color="red"), {"category": "accessories"}, 0),
        (Query("kestrel shoes", "shoes", brand="kestrel"), {"brand": "orca"}, 1),
        (Query("trail shoes", "shoes", style="trail"), {"quality": 0.1}, 2),
        (Query("waterproof shoes", "shoes", feature="waterproof"), {"features": frozenset()}, 1),
        (Query("waterproof jacket", "jackets", feature="waterproof"), {}, 0),
        (
            Query("waterproof trail shoes", "shoes", style="trail", feature="waterproof"),
            {"style": "running"},
            1,
        ),
    ],
)
def test_relevance_hand_picked(query: Query, fields: dict[str, object], grade: int) -> None:
    assert relevance(query, product(**fields)) == grade


def test_vectorised_grades_agree_with_relevance(catalog: Catalog) -> None:
    for query in catalog.queries[::25]:
        expected = [relevance(query, p) for p in catalog.products]
        assert catalog.grades(query).tolist() == expected
    query = catalog.queries[0]
    ids = ["sku-00003", "sku-00001"]
    assert catalog.grades_of(query, ids).tolist() == [
        relevance(query, catalog.product(i)) for i in ids
    ]


# -- rankers -----------------------------------------------------------------------------------


def test_index_builds_fast_and_searches_fast(catalog: Catalog) -> None:
    start = time.perf_counter()
    engine = SearchEngine(catalog)
    assert time.perf_counter() - start < 1.0
    start = time.perf_counter()
    for query in catalog.queries[:100]:
        engine.search(query.text, V2)
    assert (time.perf_counter() - start) / 100 < 0.005  # measured ~0.25 ms


@pytest.mark.parametrize("variant", [V1, V2])
@pytest.mark.parametrize("text", ["shoes", "red shoes", "waterproof jacket", "hiking backpack"])
def test_rankers_find_relevant_products(
    catalog: Catalog, engine: SearchEngine, variant: str, text: str
) -> None:
    query = catalog.query(text)
    assert query is not None
    ranking = engine.rank(text, variant, 10)
    assert len(ranking.hits) == 10 and ranking.total >= 10
    assert [h.rank for h in ranking.hits] == list(range(1, 11))
    grades = catalog.grades(query)[ranking.indices]
    assert (grades >= 2).sum() >= 4, grades
    assert ranking.product_ids == [h.product_id for h in ranking.hits]


def test_brand_query_v2_finds_the_brand_when_titles_omit_it(
    catalog: Catalog, engine: SearchEngine
) -> None:
    query = next(q for q in catalog.queries if q.brand and q.category == "backpacks")
    hits = engine.search(query.text, V2, 10)
    assert all(h.product.brand == query.brand for h in hits[:5])
    assert any(query.brand not in h.product.title.lower() for h in hits)


def dcg10(grades: list[int]) -> float:
    return sum((2**g - 1) / math.log2(r + 2) for r, g in enumerate(grades[:10]) if g > 0)


def test_v2_beats_v1_on_the_ground_truth(catalog: Catalog, engine: SearchEngine) -> None:
    mean: dict[str, float] = {}
    wins = 0
    per_query: dict[str, list[float]] = {V1: [], V2: []}
    for query in catalog.queries:
        all_grades = catalog.grades(query)
        ideal = dcg10(sorted(all_grades.tolist(), reverse=True))
        for variant in (V1, V2):
            shown = all_grades[engine.rank(query.text, variant, 10).indices].tolist()
            per_query[variant].append(dcg10(shown) / ideal)
    for variant in (V1, V2):
        mean[variant] = float(np.mean(per_query[variant]))
    wins = int(np.sum(np.array(per_query[V2]) > np.array(per_query[V1])))
    # measured: 0.553 and 0.709, and v2 better on 83% of the queries
    assert mean[V2] > mean[V1] + 0.1, mean
    assert wins > 0.7 * len(catalog.queries)
    assert mean_ndcg(engine, V1) == pytest.approx(mean[V1], abs=1e-9)
    assert mean_ndcg(engine, V2) == pytest.approx(mean[V2], abs=1e-9)


def test_ndcg_fixed_values() -> None:
    # DCG = 7/1 + 0 + 1/2 = 7.5; ideal over [3, 1, 0, 0] = 7 + 1/log2(3)
    assert ndcg([3, 0, 1], [3, 1, 0, 0]) == pytest.approx(7.5 / (7 + 1 / math.log2(3)), abs=1e-12)
    assert ndcg([0, 0], [0, 0, 0]) == 0.0
    assert ndcg([2, -1, -1], [2, 0]) == 1.0  # empty slots (-1) count as nothing


@pytest.mark.parametrize("text", ["shoes AND (", '"red', "-", "***", "NOT shoes", "title:shoes"])
def test_query_syntax_is_not_interpreted(engine: SearchEngine, text: str) -> None:
    for variant in (V1, V2):
        engine.rank(text, variant, 5)  # never a parse error
    assert engine.rank("***", V1).hits == [] and engine.rank("***", V1).total == 0
    assert engine.rank("NOT shoes", V1).total > 0  # "not" is a word like any other


def test_unknown_variant_and_bad_limit(engine: SearchEngine) -> None:
    with pytest.raises(UnknownRanker, match="search_v1, search_v2"):
        engine.search("shoes", "search_v3")
    with pytest.raises(ValueError, match="limit"):
        engine.search("shoes", V1, limit=0)


# -- /search/text ------------------------------------------------------------------------------


@pytest.fixture
def app_paths(tmp_path: Path) -> Settings:
    return Settings(
        store=f"duckdb://{tmp_path}/events.duckdb", experiments=str(tmp_path / "exp.json")
    )


@pytest.fixture
def search_client(app_paths: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(app_paths)) as client:
        yield client


def stored_impressions(settings: Settings) -> list[tuple[object, ...]]:
    path = settings.store.removeprefix("duckdb://")
    # The app's store has the file open in this process: a second connection shares it.
    with duckdb.connect(path) as con:
        return con.execute(
            "SELECT search_id, user_id, variant, query, results, results_count, "
            "response_time_ms, ts FROM impressions ORDER BY ts"
        ).fetchall()


def test_post_answers_the_contract_and_logs_the_impression(
    search_client: TestClient, app_paths: Settings
) -> None:
    answer = search_client.post("/search/text", json={"query": "red shoes", "user_id": "u-1"})
    assert answer.status_code == 200
    body = answer.json()
    assert set(body) == RESPONSE_KEYS
    assert body["experiment"] == "search_ranking" and body["query"] == "red shoes"
    assert body["variant"] == ExperimentManager(app_paths.experiments).assign_variant("u-1")
    assert isinstance(body["took_ms"], float) and 0 <= body["took_ms"] < 1000
    assert body["total"] >= len(body["results"]) == 10
    for rank, result in enumerate(body["results"], start=1):
        assert set(result) == RESULT_KEYS
        assert result["rank"] == rank and result["product_id"].startswith("sku-")
        assert isinstance(result["price"], float)
    expected = default_engine().search("red shoes", body["variant"], 10)
    assert [r["product_id"] for r in body["results"]] == [h.product_id for h in expected]

    summary = search_client.get("/analytics/user/u-1").json()
    assert summary["impressions"] == 1 and list(summary["by_variant"]) == [body["variant"]]
    ((search_id, user, variant, query, results, count, took, _),) = stored_impressions(app_paths)
    assert (search_id, user, variant, query) == (
        body["search_id"],
        "u-1",
        body["variant"],
        "red shoes",
    )
    assert results == [r["product_id"] for r in body["results"]]
    assert count == body["total"] and took == pytest.approx(body["took_ms"])


def test_variant_is_sticky_per_user_and_both_are_served(search_client: TestClient) -> None:
    seen: dict[str, set[str]] = {}
    for i in range(30):
        for _ in range(2):
            body = search_client.post(
                "/search/text", json={"query": "tent", "limit": 3}, headers={"X-User-ID": f"u{i}"}
            ).json()
            seen.setdefault(f"u{i}", set()).add(body["variant"])
    assert all(len(variants) == 1 for variants in seen.values())
    assert set().union(*seen.values()) == {V1, V2}


def test_get_and_the_user_sources(search_client: TestClient) -> None:
    body = search_client.get("/search/text", params={"q": " hiking boots ", "limit": 3}).json()
    assert body["query"] == "hiking boots" and len(body["results"]) == 3
    by_header = search_client.get("/search/text?q=boots", headers={"X-User-ID": "h-1"})
    by_param = search_client.get("/search/text?q=boots&user_id=p-1", headers={"X-User-ID": "x"})
    assert by_header.status_code == by_param.status_code == 200
    assert search_client.get("/analytics/user/h-1").json()["impressions"] == 1
    assert search_client.get("/analytics/user/p-1").json()["impressions"] == 1
    assert search_client.get("/analytics/user/x").json()["impressions"] == 0
    assert search_client.get("/analytics/user/anonymous").json()["impressions"] == 1


def test_no_match_is_an_empty_answer(search_client: TestClient) -> None:
    body = search_client.post("/search/text", json={"query": "zzzz qqqq"}).json()
    assert body["results"] == [] and body["total"] == 0


def test_explicit_timestamp_is_kept(search_client: TestClient) -> None:
    when = (utcnow() - timedelta(days=2)).replace(microsecond=0)
    search_client.post(
        "/search/text", json={"query": "tent", "user_id": "t-1", "timestamp": when.isoformat()}
    )
    summary = search_client.get("/analytics/user/t-1").json()
    assert summary["first_seen"].startswith(when.strftime("%Y-%m-%dT%H:%M:%S"))


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"query": ""}, "query"),
        ({"query": "   "}, "query"),
        ({"query": "x" * 201}, "query"),
        ({}, "query"),
        ({"query": "tent", "limit": 0}, "limit"),
        ({"query": "tent", "limit": 51}, "limit"),
        ({"query": "tent", "user_id": ""}, "user_id"),
        ({"query": "tent", "timestamp": (utcnow() + timedelta(hours=1)).isoformat()}, "timestamp"),
        ({"query": "tent", "page": 2}, "page"),
    ],
)
def test_post_422_names_the_field(
    search_client: TestClient, body: dict[str, object], field: str
) -> None:
    answer = search_client.post("/search/text", json=body)
    assert answer.status_code == 422
    assert [e["loc"] for e in answer.json()["detail"]] == [["body", field]]
    assert search_client.get("/analytics/ctr").json()["total_impressions"] == 0


@pytest.mark.parametrize(
    ("query", "field"),
    [("q=%20%20", "q"), ("q=", "q"), ("", "q"), ("q=tent&limit=99", "limit")],
)
def test_get_422_names_the_field(search_client: TestClient, query: str, field: str) -> None:
    answer = search_client.get(f"/search/text?{query}")
    assert answer.status_code == 422
    assert [e["loc"] for e in answer.json()["detail"]] == [["query", field]]


def test_an_experiment_search_serves_must_name_rankers(search_client: TestClient) -> None:
    def refused(answer: Response, unknown: str) -> None:
        assert answer.status_code == 422, answer.text
        (error,) = answer.json()["detail"]
        assert f"unknown variant{'s' if ',' in unknown else ''} {unknown};" in error["msg"]
        assert error["msg"].endswith("the rankers are search_v1, search_v2")

    grid = {"name": "search_ranking", "variants": {"grid": 1, "list": 1}}
    refused(search_client.post("/experiments", json=grid), "grid, list")
    one_bad = {"name": "search_ranking", "variants": {"search_v1": 1, "search_v3": 1}}
    refused(search_client.post("/experiments", json=one_bad), "search_v3")
    assert search_client.post("/experiments/search_ranking/stop").status_code == 200
    stopped = {**grid, "status": "stopped"}  # stopped, it still serves its control
    refused(search_client.post("/experiments", json=stopped), "grid, list")
    ranking = search_client.get("/experiments/search_ranking").json()
    assert ranking["variants"] == {"search_v1": 1.0, "search_v2": 1.0}

    duel = {"name": "duel", "type": "interleaving", "variants": {"a": 1, "b": 1}}
    refused(search_client.post("/experiments", json=duel), "a, b")
    # stopped, an interleaving experiment serves nothing: defined now, refused at its start
    assert search_client.post("/experiments", json={**duel, "status": "stopped"}).status_code == 201
    answer = search_client.post("/experiments/duel/start")
    assert answer.status_code == 422 and answer.json()["detail"][0]["loc"] == ["path", "name"]
    refused(answer, "a, b")
    assert search_client.get("/experiments/duel").json()["status"] == "stopped"
    # experiments that /search/text does not serve may name anything
    layout = {"name": "layout", "variants": {"grid": 1, "list": 1}}
    assert search_client.post("/experiments", json=layout).status_code == 201


def write_experiments(settings: Settings, *experiments: dict[str, object]) -> None:
    """Edit the experiments document by hand, as an operator might (nothing validates it)."""
    open_state(settings.store).write("experiments", {"experiments": list(experiments)})


@pytest.fixture
def beside_the_store(tmp_path: Path) -> Iterator[tuple[Settings, TestClient]]:
    settings = Settings(store=f"duckdb://{tmp_path}/hand.duckdb")
    serve._warn_once.cache_clear()  # each problem is logged once per process: once per test
    app = create_app(settings)
    with TestClient(app) as client:
        app.state.experiments.reload_seconds = 0.0  # see each hand edit at once
        yield settings, client


def test_a_hand_edited_variant_falls_back_to_a_ranker(
    beside_the_store: tuple[Settings, TestClient], caplog: pytest.LogCaptureFixture
) -> None:
    settings, client = beside_the_store
    users = [f"u-{n}" for n in range(40)]

    def served() -> set[tuple[str, str]]:
        out = set()
        for user in users:
            answer = client.post("/search/text", json={"query": "tent", "user_id": user})
            assert answer.status_code == 200, answer.text
            out.add((answer.json()["experiment"], answer.json()["variant"]))
        return out

    caplog.set_level(logging.WARNING, logger="clickstats.search")
    write_experiments(settings, {"name": "search_ranking", "variants": {"grid": 1, "list": 1}})
    assert served() == {("search_ranking", "search_v1")}  # neither is a ranker: the default
    assert "assigns 'grid', which is not a ranker" in caplog.text
    warned = [r for r in caplog.records if r.name == "clickstats.search"]
    assert len(warned) == 2  # grid and list: once each, not once per search

    write_experiments(settings, {"name": "search_ranking", "variants": {"search_v2": 1, "x": 1}})
    assert served() == {("search_ranking", "search_v2")}  # the x users get the control

    duel = {"name": "duel", "type": "interleaving", "variants": {"a": 1, "b": 1}}
    ranking = {"name": "search_ranking", "variants": {"search_v1": 1, "search_v2": 1}}
    write_experiments(settings, ranking, duel)
    assert served() == {("search_ranking", "search_v1"), ("search_ranking", "search_v2")}
    assert "'duel' has variants that are not rankers (a, b" in caplog.text

    write_experiments(settings, duel)  # no search_ranking at all
    assert served() == {("search_ranking", "search_v1")}
    assert "no experiment 'search_ranking'" in caplog.text
    # every search was answered and stored, under the ranker that served it
    assert client.get("/analytics/ctr").json()["total_impressions"] == 4 * len(users)
