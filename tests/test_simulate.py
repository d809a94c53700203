"""The click model, the simulated users, and the simulator end to end (in-process and HTTP)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import numpy as np
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from clickstats.app import create_app
from clickstats.cli import main
from clickstats.events import utcnow
from clickstats.experiments import ExperimentManager
from clickstats.search import V1, V2, ClickModel, default_catalog, default_engine
from clickstats.search.users import (
    OFF_BAND_SCALE,
    click_scale,
    make_users,
    price_bands,
    query_probabilities,
)
from clickstats.settings import Settings
from clickstats.simulate import InProcess, OverHttp, SimulationReport, simulate
from clickstats.store import EventStore, open_store
from clickstats.tracking import ClickTrackingService
from tests.conftest import LiveServer

# -- click model -------------------------------------------------------------------------------


def test_click_model_formula_fixed_values() -> None:
    model = ClickModel()
    np.testing.assert_allclose(model.examination(4), [1, 1 / 2, 1 / 3, 1 / 4], rtol=1e-12)
    # epsilon + (alpha_max - epsilon) * (2^g - 1) / 7, with 0.02 and 0.5
    np.testing.assert_allclose(
        model.attractiveness([0, 1, 2, 3, -1]),
        [0.02, 0.02 + 0.48 / 7, 0.02 + 0.48 * 3 / 7, 0.5, 0.0],
        rtol=1e-12,
    )
    p = model.click_probabilities([[3, 2, 0, -1]], scale=[[1.0, 0.5, 1.0, 1.0]])
    np.testing.assert_allclose(p, [[0.5, 0.5 * (0.02 + 0.48 * 3 / 7) / 2, 0.02 / 3, 0.0]])
    assert model.expected_clicks([[3, 3], [0, -1]]).tolist() == pytest.approx([0.75, 0.02])
    steeper = ClickModel(eta=2.0, epsilon=0.0, alpha_max=1.0)
    assert steeper.click_probabilities([3, 3, 3]).tolist() == pytest.approx([1, 1 / 4, 1 / 9])
    with pytest.raises(ValueError, match="alpha_max"):
        ClickModel(epsilon=0.6, alpha_max=0.5)


def test_seeded_clicks_by_rank_decrease_and_match_the_formula() -> None:
    model = ClickModel()
    rng = np.random.default_rng(42)
    n, grades = 100_000, np.array([3, 3, 2, 3, 1, 3, 0, 3, 2, 3])
    clicks = model.sample(np.tile(grades, (n, 1)), rng)
    observed = clicks.mean(axis=0)
    expected = model.click_probabilities(grades)
    standard_error = np.sqrt(expected * (1 - expected) / n)
    assert np.all(np.abs(observed - expected) < 4 * standard_error)
    # at equal grade, the click-through rate falls with the rank
    top = observed[grades == 3]
    assert np.all(np.diff(top) < 0)
    # and a seed is a seed
    again = model.sample(np.tile(grades, (n, 1)), np.random.default_rng(42))
    assert np.array_equal(clicks, again)


def test_empty_slots_are_never_clicked() -> None:
    clicks = ClickModel().sample(np.full((1000, 5), -1), np.random.default_rng(0))
    assert not clicks.any()


# -- users -------------------------------------------------------------------------------------


def test_users_have_seeded_habits() -> None:
    catalog = default_catalog()
    users = make_users(catalog, 2000, np.random.default_rng(3))
    assert users == make_users(catalog, 2000, np.random.default_rng(3))
    assert users[0].user_id == "sim-00001"
    activity = np.array([u.activity for u in users])
    assert abs(activity.mean() - 1) < 0.15 and activity.max() > 5 * np.median(activity)
    assert {u.price_band for u in users} == {0, 1, 2}
    assert len({u.category for u in users}) == 10

    user = users[0]
    p = query_probabilities(catalog, user)
    assert p.sum() == pytest.approx(1.0)
    favourite = np.array([q.category == user.category for q in catalog.queries])
    assert p[favourite].mean() > 3 * p[~favourite].mean()
    brand = np.array([q.brand == user.brand for q in catalog.queries])
    assert brand.any() and p[brand].min() > p[favourite & ~brand].min()


def test_price_bands_split_each_category_in_thirds() -> None:
    catalog = default_catalog()
    bands = price_bands(catalog)
    shoes = catalog.category_codes == catalog.category_codes[catalog.products[1].index]
    counts = np.bincount(bands[shoes], minlength=3) / shoes.sum()
    assert np.all(np.abs(counts - 1 / 3) < 0.05)
    user = make_users(catalog, 1, np.random.default_rng(0))[0]
    scale = click_scale(catalog, user, np.arange(len(catalog)))
    assert set(np.unique(scale).tolist()) == {1.0, OFF_BAND_SCALE}
    assert np.array_equal(scale == 1.0, bands == user.price_band)


# -- the simulator -----------------------------------------------------------------------------


@pytest.fixture
def event_store(tmp_path: Path) -> Iterator[EventStore]:
    store = open_store(f"duckdb://{tmp_path}/sim.duckdb")
    store.open()
    yield store
    store.close()


def run_in_process(store: EventStore, tmp_path: Path, **options: int) -> SimulationReport:
    backend = InProcess(store, ExperimentManager(tmp_path / "exp.json"), default_engine())
    return simulate(backend, default_catalog(), **options)


def test_tiny_run_stores_impressions_and_clicks(event_store: EventStore, tmp_path: Path) -> None:
    start = utcnow()
    report = run_in_process(event_store, tmp_path, users=5, searches=60, seed=11, days=3)
    tracker = ClickTrackingService(event_store)
    ctr = tracker.get_ctr(days=3)
    assert ctr.total_impressions == report.searches == 60
    assert ctr.total_clicks == report.clicks > 0
    assert {v: c.clicks for v, c in ctr.by_variant.items()} == {
        v: t.clicks for v, t in report.by_variant.items()
    }
    # spread over the window, none in the future
    users = {f"sim11-{i:05d}" for i in range(1, 6)}
    first = min(s.first_seen for u in users if (s := tracker.get_user_summary(u, 3)).first_seen)
    last = max(s.last_seen for u in users if (s := tracker.get_user_summary(u, 3)).last_seen)
    assert start - timedelta(days=3) < first < start - timedelta(days=1)
    assert start - timedelta(days=1) < last <= utcnow()
    assert tracker.get_ctr(days=1).total_impressions < 60
    ranks = tracker.get_rank_metrics(days=3)
    assert ranks.total_clicks == report.clicks and (ranks.min_rank or 0) >= 1
    # every user's variant is the experiment's
    manager = ExperimentManager(tmp_path / "exp.json")
    for user in users:
        summary = tracker.get_user_summary(user, 3)
        assert set(summary.by_variant) <= {manager.assign_variant(user)}


def test_the_better_ranker_gets_the_higher_ctr(event_store: EventStore, tmp_path: Path) -> None:
    report = run_in_process(event_store, tmp_path, users=400, searches=4000, seed=2)
    v1, v2 = report.by_variant[V1], report.by_variant[V2]
    assert v1.searches > 1000 and v2.searches > 1000
    # expected from the model: ~0.62 and ~0.85 clicks per search
    assert v1.clicks_per_search is not None and v2.clicks_per_search is not None
    assert 0.4 < v1.clicks_per_search < v2.clicks_per_search - 0.1 and v2.clicks_per_search < 1.1, (
        v1.clicks_per_search,
        v2.clicks_per_search,
    )


def test_over_http_same_traffic_same_clicks(tmp_path: Path, event_store: EventStore) -> None:
    settings = Settings(
        store=f"duckdb://{tmp_path}/http.duckdb", experiments=str(tmp_path / "exp.json")
    )
    with TestClient(create_app(settings)) as client:
        report = simulate(OverHttp(client), default_catalog(), users=4, searches=40, seed=5)
        ctr = client.get("/analytics/ctr").json()
    assert ctr["total_impressions"] == 40 and ctr["total_clicks"] == report.clicks
    # the same seed in-process: the same users, queries, variants and clicks
    in_process = run_in_process(event_store, tmp_path, users=4, searches=40, seed=5)
    assert in_process.by_variant == report.by_variant


def test_cli_in_process_and_against_a_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, live_server: LiveServer
) -> None:
    monkeypatch.setenv("CLICKSTATS_EXPERIMENTS", str(tmp_path / "exp.json"))
    runner = CliRunner()
    store = f"duckdb://{tmp_path}/cli.duckdb"
    args = ["simulate", "--users", "3", "--searches", "25", "--days", "2"]
    done = runner.invoke(main, [*args, "--store", store])
    assert done.exit_code == 0, done.output
    assert "25 searches by 3 users" in done.output and "search_v" in done.output

    done = runner.invoke(main, [*args, "--server", live_server.url])
    assert done.exit_code == 0, done.output
    ctr = httpx.get(f"{live_server.url}/analytics/ctr").json()
    assert ctr["total_impressions"] == 25

    done = runner.invoke(main, [*args, "--server", "http://127.0.0.1:9"])
    assert done.exit_code == 1 and "cannot reach the server" in done.output


def test_over_http_with_keys_and_a_rate_limit(tmp_path: Path) -> None:
    """A keyed, rate-limited server: the simulator sends its ingest key and waits out 429s."""
    from clickstats.keys import create_key
    from clickstats.simulate import SimulationError
    from clickstats.state import open_state

    url = f"duckdb://{tmp_path}/keyed.duckdb"
    _, ingest = create_key(open_state(url), scope="ingest", name="simulator")
    _, reader = create_key(open_state(url), scope="read", name="reader")
    settings = Settings(store=url, rate_limit=10, rate_burst=10)
    with TestClient(create_app(settings)) as client:
        with pytest.raises(SimulationError, match="401"):
            simulate(OverHttp(client), default_catalog(), users=2, searches=2, seed=5)
        client.headers["Authorization"] = f"Bearer {ingest}"
        report = simulate(OverHttp(client), default_catalog(), users=3, searches=15, seed=5)
        client.headers["Authorization"] = f"Bearer {reader}"
        ctr = client.get("/analytics/ctr")
        if ctr.status_code == 429:  # the reads share the address's bucket
            time.sleep(float(ctr.headers["Retry-After"]))
            ctr = client.get("/analytics/ctr")
    assert ctr.status_code == 200
    assert ctr.json()["total_impressions"] == 15 and ctr.json()["total_clicks"] == report.clicks
