"""The click and purchase models, the simulated users, the catalog's prices, and the simulator
end to end (in-process and HTTP), with its calibration to published figures (docs/SEARCH.md)."""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import duckdb
import httpx
import numpy as np
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from clickstats.app import create_app
from clickstats.cli import main
from clickstats.events import (
    ADD_TO_CART,
    DEFAULT_VARIANT,
    PURCHASE,
    ClickEvent,
    ConversionEvent,
    SearchImpression,
    utcnow,
)
from clickstats.experiments import ExperimentManager
from clickstats.search import V1, V2, ClickModel, default_catalog, default_engine, generate_catalog
from clickstats.search.catalog import CATEGORIES
from clickstats.search.purchasemodel import PurchaseModel
from clickstats.search.users import (
    OFF_BAND_SCALE,
    click_scale,
    make_users,
    price_bands,
    query_probabilities,
)
from clickstats.settings import Settings
from clickstats.simulate import (
    CURRENCY,
    NO_SEARCH_ID,
    InProcess,
    OverHttp,
    SimulationReport,
    simulate,
)
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


# -- purchase model ----------------------------------------------------------------------------


def test_purchase_model_formula_fixed_values() -> None:
    model = PurchaseModel()
    # floor + (1 - floor) (2^g - 1) / 7, floor 0.1
    np.testing.assert_allclose(
        model.relevance([0, 1, 2, 3, -1]), [0.1, 0.1 + 0.9 / 7, 0.1 + 0.9 * 3 / 7, 1.0, 0.0]
    )
    # 0.23 * relevance * (price / 50) ** -0.3 * propensity
    np.testing.assert_allclose(
        model.cart_probabilities([3, 0], [50.0, 400.0], [2.0, 1.0]),
        [0.46, 0.23 * 0.1 * 8**-0.3],
    )
    # 0.33 * (1 + relevance) / 2 * (price / 50) ** -0.15; never for an empty slot
    np.testing.assert_allclose(
        model.buy_probabilities([3, 0, -1], [12.5, 50.0, 50.0]), [0.33 * 4**0.15, 0.33 * 0.55, 0]
    )
    assert model.cart_probabilities([3], [1.0], [100.0]).tolist() == [1.0]  # clipped
    with pytest.raises(ValueError, match="buy_max"):
        PurchaseModel(buy_max=1.5)


def test_purchases_rise_with_relevance_fall_with_price_and_match_the_formula() -> None:
    model = PurchaseModel()
    rng = np.random.default_rng(5)
    n = 200_000
    grades = np.tile([3, 2, 1, 0, 3, 3], (n, 1))
    prices = np.tile([50.0, 50.0, 50.0, 50.0, 10.0, 500.0], (n, 1))
    clicked = rng.random(grades.shape) < 0.5
    basket = model.sample(clicked, grades, prices, rng)
    assert not (basket.carted & ~clicked).any() and not (basket.bought & ~basket.carted).any()
    carted = basket.carted.sum(0) / clicked.sum(0)
    expected = model.cart_probabilities(grades[0], prices[0])
    assert np.all(np.abs(carted - expected) < 4 * np.sqrt(expected * (1 - expected) / (n / 2)))
    bought = basket.bought.sum(0) / clicked.sum(0)
    assert bought[0] > bought[1] > bought[2] > bought[3] > 0  # relevance
    assert bought[4] > bought[0] > bought[5] > 0  # price
    units = basket.quantities[basket.carted]
    assert units.min() == 1 and abs(units.mean() - 1 / 0.85) < 0.01  # 1 + Geometric(0.85)


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
    # how much they click and buy differs from user to user around a mean of 1
    clicks = np.array([u.click_propensity for u in users])
    buys = np.array([u.purchase_propensity for u in users])
    assert abs(clicks.mean() - 1) < 0.05 and 0.6 < clicks.std() < 0.8  # Gamma(2, 1/2)
    assert abs(buys.mean() - 1) < 0.08 and 0.85 < buys.std() < 1.15  # Gamma(1, 1)

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
    # the user's click propensity, times OFF_BAND_SCALE outside their price band
    scale = click_scale(catalog, user, np.arange(len(catalog))) / user.click_propensity
    assert set(np.unique(scale.round(12)).tolist()) == {1.0, OFF_BAND_SCALE}
    assert np.array_equal(scale.round(12) == 1.0, bands == user.price_band)


def test_prices_are_lognormal_within_each_category_and_the_same_everywhere() -> None:
    catalog = default_catalog()
    assert [p.price for p in catalog.products[:50]] == [
        p.price for p in generate_catalog().products[:50]
    ]
    for category in CATEGORIES:
        low, high = category.price
        members = (
            catalog.category_codes
            == catalog.category_codes[
                next(p.index for p in catalog.products if p.category == category.name)
            ]
        )
        prices = catalog.prices[members]
        logs = np.log(prices)
        assert low - 0.02 < prices.min() and prices.max() < high
        # median at the geometric middle of the range, which spans about +-2 sd of log price
        assert abs(np.median(logs) - math.log(math.sqrt(low * high))) < 0.15
        assert 0.8 < logs.std() / (math.log(high / low) / 4) < 1.2
    assert {round(p.price % 1, 2) for p in catalog.products} == {0.99}


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


class Kept:
    """A sink that keeps what the simulator stores, in order."""

    def __init__(self) -> None:
        self.events: list[Any] = []

    def append_sync(self, events: Sequence[Any]) -> None:
        self.events.extend(events)


@dataclass(frozen=True)
class Run:
    report: SimulationReport
    impressions: list[SearchImpression]
    clicks: list[ClickEvent]
    conversions: list[ConversionEvent]

    def of(self, subtype: str) -> list[ConversionEvent]:
        return [c for c in self.conversions if c.subtype == subtype]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """A week of 4,000 searches by 1,000 users after two weeks of history, kept in memory."""
    kept = Kept()
    experiments = ExperimentManager(tmp_path_factory.mktemp("run") / "exp.json")
    report = simulate(
        InProcess(kept, experiments, default_engine()),
        default_catalog(),
        users=1000,
        searches=4000,
        pre_days=14,
        seed=3,
    )
    return Run(
        report,
        [e for e in kept.events if isinstance(e, SearchImpression)],
        [e for e in kept.events if isinstance(e, ClickEvent)],
        [e for e in kept.events if isinstance(e, ConversionEvent)],
    )


def top_share(counts: Sequence[float], top: float) -> float:
    """The share of the total held by the largest `top` fraction of the values."""
    ordered = np.sort(np.asarray(counts, dtype=np.float64))[::-1]
    return float(ordered[: math.ceil(top * ordered.size)].sum() / ordered.sum())


def test_users_differ_as_real_users_do(run: Run) -> None:
    during = [i for i in run.impressions if i.timestamp >= run.report.start]
    searches = Counter(i.user_id for i in during)
    # heavy-tailed activity: the top 10% of the users who searched make ~half the searches
    assert top_share(list(searches.values()), 0.1) > 0.35
    assert top_share(list(searches.values()), 0.2) > 0.5
    assert max(searches.values()) > 10 * np.median(list(searches.values()))
    # users click at different rates on the same kind of traffic: CTR per user spreads wide
    clicked = Counter(c.user_id for c in run.clicks if c.timestamp >= run.report.start)
    regulars = [u for u, n in searches.items() if n >= 10]
    rates = np.array([clicked[u] / searches[u] for u in regulars])
    assert len(regulars) > 30 and rates.std() / rates.mean() > 0.4
    # and buying is concentrated: the top 20% of buyers bring most of the revenue
    revenue = Counter[str]()
    for purchase in run.of(PURCHASE):
        revenue[purchase.user_id] += purchase.value or 0.0
    assert top_share(list(revenue.values()), 0.2) > 0.5


def test_purchases_happen_at_published_rates(run: Run) -> None:
    control = run.report.pre  # search_v1 for everyone, as a site's production ranker
    assert control is not None and control.searches == 8000
    cart_searches = {c.search_id for c in run.of(ADD_TO_CART) if c.search_id}
    assert 0.04 < control.add_to_carts / control.searches < 0.14
    assert 0.015 < control.purchases / control.searches < 0.05
    assert 0.2 < control.purchases / control.add_to_carts < 0.45
    assert cart_searches  # and some carts name their search
    purchases = run.of(PURCHASE)
    values = np.array([p.value for p in purchases])
    assert all(p.currency == CURRENCY and p.prices and p.quantities for p in purchases)
    assert 80 < values.mean() < 160  # average order value, EUR
    assert 1.1 < sum(p.units for p in purchases) / len(purchases) < 1.5
    # the better ranker sells more
    v1, v2 = run.report.by_variant[V1], run.report.by_variant[V2]
    assert v2.revenue / v2.searches > v1.revenue / v1.searches


def test_order_values_are_lognormal_ish(run: Run) -> None:
    values = np.array([p.value for p in run.of(PURCHASE)])
    logs = np.log(values)
    skew = float(((logs - logs.mean()) ** 3).mean() / logs.std() ** 3)
    assert abs(skew) < 0.5 and 0.5 < logs.std() < 1.1  # log values near normal
    assert values.mean() > 1.2 * np.median(values)  # a long right tail
    # a purchase's value is what its products cost, less discounts
    for p in run.of(PURCHASE)[:200]:
        assert p.prices is not None and p.quantities is not None
        discounts = p.discounts or [0.0] * len(p.prices)
        gross = sum(q * (a - d) for a, q, d in zip(p.prices, p.quantities, discounts, strict=True))
        assert p.value == pytest.approx(gross)


def test_the_pre_period_comes_before_the_experiment(run: Run) -> None:
    start = run.report.start
    assert start is not None
    before = [i for i in run.impressions if i.timestamp < start]
    during = [i for i in run.impressions if i.timestamp >= start]
    assert len(before) == 8000 and len(during) == 4000
    assert min(i.timestamp for i in before) >= start - timedelta(days=14)
    # before the experiment: no variant assigned, the control ranker's results
    assert {i.variant for i in before} == {DEFAULT_VARIANT}
    assert {i.variant for i in during} == {V1, V2}
    engine = default_engine()
    for impression in before[:50]:
        assert impression.results == engine.rank(impression.query, V1).product_ids
    # the same users: most who search during the experiment have history
    history = {i.user_id for i in before}
    users = {i.user_id for i in during}
    assert len(users & history) > 0.8 * len(users)
    # clicks and conversions follow their searches
    when = {i.search_id: i.timestamp for i in run.impressions}
    assert all(c.timestamp >= when[c.search_id] for c in run.clicks if c.search_id)


def test_some_conversions_leave_the_search_to_attribution(run: Run) -> None:
    anonymous = [c for c in run.conversions if c.search_id is None]
    share = len(anonymous) / len(run.conversions)
    assert abs(share - NO_SEARCH_ID) < 0.05
    # each was preceded by a click of the same user on one of its products (the server's
    # attribution finds it); most within the 24-hour window, a few later
    clicked: dict[tuple[str, str], list[Any]] = {}
    for click in run.clicks:
        clicked.setdefault((click.user_id, click.product_id), []).append(click.timestamp)
    gaps = []
    for conversion in anonymous:
        times = [
            t
            for pid in conversion.product_ids
            for t in clicked.get((conversion.user_id, pid), [])
            if t <= conversion.timestamp
        ]
        assert times
        gaps.append(conversion.timestamp - max(times))
    within = sum(gap <= timedelta(hours=24) for gap in gaps) / len(gaps)
    assert within > 0.9
    # some purchases come days after their search: past any attribution window
    searched = {i.search_id: i.timestamp for i in run.impressions}
    late = [p for p in run.of(PURCHASE) if p.search_id and p.timestamp - searched[p.search_id]
            > timedelta(hours=24)]  # fmt: skip
    assert 0 < len(late) < 0.1 * len(run.of(PURCHASE))


def test_calibration_to_published_figures(run: Run) -> None:
    """The figures of docs/SEARCH.md's calibration table, on the control period (the week of
    history: search_v1 for everyone, as a site's production ranker); `pytest -s` prints it."""
    start, control = run.report.start, run.report.pre
    assert start is not None and control is not None
    values = np.array([p.value for p in run.of(PURCHASE)])
    searches = Counter(i.user_id for i in run.impressions if i.timestamp >= start)
    history = Counter(i.user_id for i in run.impressions if i.timestamp < start)
    during = np.array([searches[u] for u in sorted(searches)])
    pre = np.array([history[u] for u in sorted(searches)])
    revenue = Counter[str]()
    for purchase in run.of(PURCHASE):
        revenue[purchase.user_id] += purchase.value or 0.0
    figures = {
        # name: (simulated, the range around the published figures it must fall in)
        "add-to-cart rate (searches with one)": (control.cart_searches / control.searches, (0.05, 0.12)),
        "purchase rate (searches with one)": (control.purchases / control.searches, (0.015, 0.05)),
        "purchases / searches with an add to cart": (control.purchases / control.cart_searches, (0.25, 0.45)),
        "average order value (EUR)": (float(values.mean()), (80.0, 160.0)),
        "median / mean order value": (float(np.median(values) / values.mean()), (0.5, 0.85)),
        "top 20% of searchers' share of searches": (top_share(during, 0.2), (0.55, 0.8)),
        "top 20% of buyers' share of revenue": (top_share(list(revenue.values()), 0.2), (0.5, 0.8)),
        "CUPED's variance reduction, searches per user": (float(np.corrcoef(during, pre)[0, 1] ** 2), (0.3, 0.8)),
    }  # fmt: skip
    print("\nCalibration (control period, seed 3; docs/SEARCH.md)")
    for name, (value, (low, high)) in figures.items():
        print(f"{name:<45} {value:>8.3f}   [{low}, {high}]")
    for name, (value, (low, high)) in figures.items():
        assert low <= value <= high, name


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


def stored(path: Path) -> Counter[str]:
    """Rows of each event table of a closed DuckDB store; conversions by subtype."""
    with duckdb.connect(str(path), read_only=True) as db:
        counts = Counter(
            {table: db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # type: ignore[index]
             for table in ("impressions", "click_events")}
        )  # fmt: skip
        rows = db.execute("SELECT subtype, count(*) FROM conversions GROUP BY 1").fetchall()
        counts.update(dict(rows))
    return counts


def test_over_http_same_traffic_same_events(tmp_path: Path, event_store: EventStore) -> None:
    """Impressions, clicks and conversions (with a pre-period: a server that takes old events)
    reach the server; the same seed in-process gives the same traffic."""
    from clickstats.simulate import SimulationError

    settings = Settings(
        store=f"duckdb://{tmp_path}/http.duckdb",
        experiments=str(tmp_path / "exp.json"),
        max_event_age_days=0,
    )
    options = {"users": 10, "searches": 120, "seed": 5, "pre_days": 3}
    with TestClient(create_app(settings)) as client:
        report = simulate(OverHttp(client), default_catalog(), **options)
    assert report.pre is not None
    counts = stored(tmp_path / "http.duckdb")
    assert counts["impressions"] == 120 + report.pre.searches
    assert counts["click_events"] == report.clicks + report.pre.clicks
    assert counts[ADD_TO_CART] == report.add_to_carts + report.pre.add_to_carts > 0
    assert counts[PURCHASE] == report.purchases + report.pre.purchases > 0
    in_process = run_in_process(event_store, tmp_path, **options)
    assert in_process.by_variant == report.by_variant and in_process.pre == report.pre

    # A server that refuses old events says so, and how to send them anyway.
    refusing = Settings(store=f"duckdb://{tmp_path}/strict.duckdb", max_event_age_days=7)
    with (
        TestClient(create_app(refusing)) as client,
        pytest.raises(SimulationError, match="max-event-age-days 0"),
    ):
        simulate(OverHttp(client), default_catalog(), users=3, searches=10, pre_days=3)


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
    assert "175 in the 14 days before" in done.output  # the pre-period, at the same rate

    done = runner.invoke(main, [*args, "--server", live_server.url])
    assert done.exit_code == 0, done.output
    ctr = httpx.get(f"{live_server.url}/analytics/ctr").json()
    assert ctr["total_impressions"] == 25  # no pre-period: the server takes a week at most

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
