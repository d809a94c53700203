"""The backend contract for conversions: attribution, the conversion facts of the metric
registry, revenue per currency, caps and CUPED's pre-exposure sums, on every backend."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pytest

from clickstats.events import ClickEvent, ConversionEvent, SearchImpression, event_time_now
from clickstats.store import EventStore
from clickstats.store.base import Cap, Filters, Grouping, SumOptions

NOW = event_time_now()
DAY, HOUR, MS = timedelta(days=1), timedelta(hours=1), timedelta(milliseconds=1)
WEEK = NOW - 7 * DAY


def search(
    sid: str, user: str, variant: str, age: timedelta, query: str = "shoes"
) -> SearchImpression:
    return SearchImpression(
        event_id=f"i-{sid}", search_id=sid, user_id=user, variant=variant, query=query,
        results=["p1", "p2", "p3"], timestamp=NOW - age,
    )  # fmt: skip


def click(cid: str, sid: str, user: str, product: str, age: timedelta) -> ClickEvent:
    rank = int(product[1:])
    return ClickEvent(
        event_id=cid, search_id=sid, user_id=user, product_id=product, rank=rank,
        timestamp=NOW - age,
    )  # fmt: skip


def purchase(
    eid: str,
    user: str,
    products: list[str],
    value: float,
    age: timedelta,
    *,
    search_id: str | None = None,
    currency: str = "EUR",
    subtype: str = "purchase",
    quantities: list[int] | None = None,
) -> ConversionEvent:
    return ConversionEvent(
        event_id=eid, user_id=user, product_ids=products, value=value, currency=currency,
        subtype=subtype, search_id=search_id, quantities=quantities, timestamp=NOW - age,
    )  # fmt: skip


def per_query(store: EventStore, currency: str | None = "EUR") -> dict[str, dict[str, float]]:
    answer = store.search_totals(Filters(since=WEEK, currency=currency), Grouping(by=("query",)))
    return {key[0]: dict(t.sums) for key, t in answer.items()}


def test_a_conversion_counts_for_its_search_id(store: EventStore) -> None:
    store.append_sync([
        search("s1", "u1", "v1", 2 * HOUR, "a"),
        search("s2", "u1", "v1", 1 * HOUR, "b"),
        purchase("b1", "u1", ["p9"], 30.0, 30 * timedelta(minutes=1), search_id="s1"),
        purchase("b2", "u1", ["p9"], 12.5, 20 * timedelta(minutes=1), search_id="s1"),
        purchase("t1", "u1", ["p9"], 0.0, 10 * timedelta(minutes=1), search_id="s2",
                 subtype="add_to_cart"),
    ])  # fmt: skip
    got = per_query(store)
    assert got["a"]["converted_searches"] == 1 and got["a"]["revenue"] == 42.5
    assert got["b"]["converted_searches"] == 1 and got["b"]["revenue"] == 0


@pytest.mark.parametrize(
    ("click_age", "attributed"),
    [
        (24 * HOUR, True),  # exactly the window: inside
        (24 * HOUR - MS, True),
        (24 * HOUR + MS, False),  # a millisecond past it: unattributed
        (timedelta(0), True),  # the same instant
        (-MS, False),  # a click after the purchase does not cause it
    ],
)
def test_attribution_to_the_last_clicked_search_at_the_window_edges(
    store: EventStore, click_age: timedelta, attributed: bool
) -> None:
    buy_age = 2 * DAY
    store.append_sync([
        search("s1", "u1", "v1", buy_age + 25 * HOUR, "old"),
        search("s2", "u1", "v1", buy_age + click_age + MS, "recent"),
        click("k1", "s1", "u1", "p2", buy_age + 25 * HOUR - MS),
        click("k2", "s2", "u1", "p2", buy_age + click_age),
        purchase("b1", "u1", ["p2"], 50.0, buy_age),
    ])  # fmt: skip
    got = per_query(store)
    assert got["recent"]["revenue"] == (50.0 if attributed else 0.0)
    assert got["old"]["revenue"] == 0.0  # more than 24 h before, and not the latest


def test_attribution_takes_the_most_recent_search_with_a_click_on_one_of_its_products(
    store: EventStore,
) -> None:
    store.append_sync([
        search("s1", "u1", "v1", 5 * HOUR, "first"),
        search("s2", "u1", "v1", 3 * HOUR, "second"),
        search("s3", "u1", "v1", 2 * HOUR, "third"),
        search("s4", "u2", "v1", 1 * HOUR, "other user"),
        click("k1", "s1", "u1", "p1", 5 * HOUR - MS),
        click("k2", "s2", "u1", "p3", 3 * HOUR - MS),  # the latest click on p1 or p3
        click("k3", "s3", "u1", "p2", 2 * HOUR - MS),  # a later click, on another product
        click("k4", "s4", "u2", "p1", 1 * HOUR - MS),  # another user's click
        purchase("b1", "u1", ["p1", "p3"], 80.0, HOUR, quantities=[2, 1]),
    ])  # fmt: skip
    got = per_query(store)
    assert {q: v["revenue"] for q, v in got.items()} == {
        "first": 0.0, "second": 80.0, "third": 0.0, "other user": 0.0,
    }  # fmt: skip


def test_revenue_is_per_currency(store: EventStore) -> None:
    store.append_sync([
        search("s1", "u1", "v1", 2 * HOUR, "a"),
        purchase("b1", "u1", ["p1"], 10.0, HOUR, search_id="s1"),
        purchase("b2", "u1", ["p1"], 1000.0, HOUR, search_id="s1", currency="JPY"),
    ])  # fmt: skip
    assert per_query(store, "EUR")["a"]["revenue"] == 10.0
    assert per_query(store, "JPY")["a"]["revenue"] == 1000.0
    assert per_query(store, None)["a"]["revenue"] == 0.0
    # a conversion counts whatever its currency
    assert per_query(store, None)["a"]["converted_searches"] == 1


def _events(seed: int = 7) -> list:
    """Two variants, 40 users, purchases (some attributed by clicks), a pre-period."""
    rng = np.random.default_rng(seed)
    events: list = []
    for u in range(40):
        user, variant = f"u{u}", ("v1", "v2")[u % 2]
        for n in range(int(rng.integers(1, 5))):  # pre-period searches, 8-12 days ago
            sid = f"pre{u}-{n}"
            events.append(search(sid, user, "old", (8 + n) * DAY))
            if rng.random() < 0.5:
                events.append(purchase(f"pb{u}-{n}", user, ["p1"], float(rng.lognormal(3, 1)),
                                       (8 + n) * DAY - HOUR, search_id=sid))  # fmt: skip
        for n in range(int(rng.integers(1, 6))):
            sid = f"s{u}-{n}"
            age = timedelta(hours=int(rng.integers(2, 100)))
            events.append(search(sid, user, variant, age))
            if rng.random() < 0.6:
                events.append(click(f"k{u}-{n}", sid, user, "p2", age - MS))
                if rng.random() < 0.5:
                    events.append(purchase(f"b{u}-{n}", user, ["p2"],
                                           float(rng.lognormal(3, 1)), age - 2 * MS))  # fmt: skip
    return events


def test_user_sums_with_caps_and_pre_exposure_sums_match_numpy(store: EventStore) -> None:
    events = _events()
    store.append_sync(events)
    options = SumOptions(
        currency="EUR", caps=(("revenue", Cap(percentile=0.9)),), pre_days=14,
        pre_columns=("revenue",),
    )  # fmt: skip
    got = store.user_sums(WEEK, ["v1", "v2"], options=options)

    # The same from the events, in Python: per user, revenue in the window and before.
    searches = {e.search_id: e for e in events if isinstance(e, SearchImpression)}
    first: dict[str, datetime] = {}
    for e in searches.values():
        if e.variant != "old" and e.timestamp >= WEEK:
            first[e.user_id] = min(first.get(e.user_id, e.timestamp), e.timestamp)
    post: dict[str, float] = dict.fromkeys(first, 0.0)
    pre: dict[str, float] = dict.fromkeys(first, 0.0)
    for e in events:
        if not isinstance(e, ConversionEvent):
            continue
        sid = e.search_id
        if sid is None:  # attributed through the click just before it
            sid = next(
                k.search_id for k in events
                if isinstance(k, ClickEvent) and k.user_id == e.user_id
                and k.timestamp == e.timestamp - MS
            )  # fmt: skip
        s = searches[sid]
        if s.variant != "old" and s.timestamp >= WEEK:
            post[s.user_id] += e.value or 0
        elif first[s.user_id] - timedelta(days=14) <= s.timestamp < first[s.user_id]:
            pre[s.user_id] += e.value or 0
    cap = float(np.quantile([v for v in post.values() if v], 0.9))  # over the buyers
    for variant in ("v1", "v2"):
        users = [u for u in first if int(u[1:]) % 2 == (0 if variant == "v1" else 1)]
        x = np.minimum([post[u] for u in users], cap)
        p = np.minimum([pre[u] for u in users], cap)
        sums = got[variant]
        assert sums.users == len(users)
        assert sums.caps["revenue"] == pytest.approx(cap, rel=1e-12)
        assert sums.sums["revenue"] == pytest.approx(x.sum(), rel=1e-12)
        assert sums.squares["revenue"] == pytest.approx((x * x).sum(), rel=1e-12)
        assert sums.sums["users"] == len(users)
        assert sums.products["revenue", "users"] == pytest.approx(x.sum(), rel=1e-12)
        history = sums.pre["revenue"]
        assert history.users == len(users)  # every user searched before
        assert history.sum == pytest.approx(p.sum(), rel=1e-12)
        assert history.squares == pytest.approx((p * p).sum(), rel=1e-12)
        assert history.products == pytest.approx((x * p).sum(), rel=1e-12)


def test_an_absolute_cap_and_no_options(store: EventStore) -> None:
    store.append_sync(_events(3))
    plain = store.user_sums(WEEK, ["v1", "v2"], options=SumOptions(currency="EUR"))
    capped = store.user_sums(
        WEEK,
        ["v1", "v2"],
        options=SumOptions(currency="EUR", caps=(("revenue", Cap(absolute=5.0)),)),
    )
    for variant in ("v1", "v2"):
        assert plain[variant].caps == {} and plain[variant].pre == {}
        assert capped[variant].caps == {"revenue": 5.0}
        assert capped[variant].sums["revenue"] <= 5.0 * capped[variant].users
        assert capped[variant].sums["revenue"] < plain[variant].sums["revenue"]
        assert capped[variant].sums["searches"] == plain[variant].sums["searches"]


def test_conversion_totals_per_variant_day_and_currency(store: EventStore) -> None:
    store.append_sync([
        search("s1", "u1", "v1", 3 * HOUR, "a"),
        search("s2", "u2", "v2", 3 * HOUR, "b"),
        click("k1", "s1", "u1", "p1", 3 * HOUR - MS),
        purchase("b1", "u1", ["p1"], 10.0, 2 * HOUR, quantities=[3]),  # by the click: v1
        purchase("b2", "u1", ["p1"], 5.0, 2 * HOUR, search_id="s1", currency="USD"),
        purchase("b3", "u2", ["p7"], 20.0, 2 * HOUR, search_id="s2"),
        purchase("t1", "u2", ["p7"], 20.0, 2 * HOUR, search_id="s2", subtype="add_to_cart"),
        purchase("b4", "u3", ["p7"], 7.0, 2 * HOUR),  # no click, no search: unattributed
        purchase("b5", "u3", ["p7"], 9.0, 9 * DAY),  # before the window
    ])  # fmt: skip
    f = Filters(since=WEEK)
    by_currency = store.conversion_totals(f)
    assert set(by_currency) == {("EUR",), ("USD",)}
    eur = by_currency["EUR",]
    assert (eur.conversions, eur.purchases, eur.add_to_carts) == (4, 3, 1)
    assert (eur.revenue, eur.orders, eur.units, eur.attributed) == (37.0, 3, 5, 3)
    by_variant = store.conversion_totals(f, ("variant",))
    assert {k: (t.purchases, t.revenue) for k, t in by_variant.items()} == {
        ("", "EUR"): (1, 7.0), ("v1", "EUR"): (1, 10.0), ("v1", "USD"): (1, 5.0),
        ("v2", "EUR"): (1, 20.0),
    }  # fmt: skip
    day = (NOW - 2 * HOUR).date().isoformat()
    assert set(store.conversion_totals(f, ("day", "subtype"))) == {
        (day, "add_to_cart", "EUR"), (day, "purchase", "EUR"), (day, "purchase", "USD"),
    }  # fmt: skip
    only_v2 = store.conversion_totals(Filters(since=WEEK, variant="v2"))
    assert only_v2["EUR",].conversions == 2
    only_u1 = store.conversion_totals(Filters(since=WEEK, user_id="u1"))
    assert set(only_u1) == {("EUR",), ("USD",)} and only_u1["EUR",].revenue == 10.0


def duel(sid: str, user: str, age: timedelta, query: str = "shoes") -> SearchImpression:
    """An interleaved search: p1 and p3 from team A, p2 and p4 from team B."""
    return SearchImpression(
        event_id=f"i-{sid}", search_id=sid, user_id=user, variant="duel", query=query,
        results=["p1", "p2", "p3", "p4"], teams=["A", "B", "A", "B"], timestamp=NOW - age,
    )  # fmt: skip


def test_interleaving_credits_purchases_to_the_team_of_the_purchased_products(
    store: EventStore,
) -> None:
    store.append_sync([
        duel("d1", "u1", 5 * HOUR),  # bought p2 (B), clicked p1 (A): B on purchases, A on clicks
        click("k1", "d1", "u1", "p1", 5 * HOUR - MS),
        purchase("b1", "u1", ["p2", "p9"], 20.0, 4 * HOUR, search_id="d1"),  # p9: not shown
        duel("d2", "u1", 3 * HOUR, "boots"),  # p3 (A) and p4 (B) bought: a tie on purchases
        click("k2", "d2", "u1", "p3", 3 * HOUR - MS),
        purchase("b2", "u1", ["p3", "p4"], 30.0, 2 * HOUR),  # attributed by the click on p3
        duel("d3", "u2", 3 * HOUR),  # p1 (A) in the cart only: no purchase credit
        purchase("t1", "u2", ["p1"], 10.0, 2 * HOUR, search_id="d3", subtype="add_to_cart"),
        duel("d4", "u2", 2 * HOUR),  # p4 twice (B), bought twice: one win for B
        purchase("b3", "u2", ["p4"], 10.0, HOUR, search_id="d4"),
        purchase("b4", "u2", ["p4"], 10.0, HOUR - MS, search_id="d4"),
    ])  # fmt: skip
    (clicks,) = store.preference_sums(WEEK, "duel").values()
    assert (clicks.units, clicks.wins_a, clicks.wins_b, clicks.ties) == (1, 2.0, 0.0, 0.0)
    (bought,) = store.preference_sums(WEEK, "duel", outcome="purchases").values()
    assert (bought.units, bought.wins_a, bought.wins_b, bought.ties) == (2, 0.0, 2.0, 1.0)
    # per user: u1 won by B once and tied once; u2 won by B once
    assert (bought.wins_b2, bought.wins_a2, bought.wins_ab) == (2.0, 0.0, 0.0)
    by_query = store.preference_sums(WEEK, "duel", top_queries=5, outcome="purchases")
    assert {k: (v.wins_a, v.wins_b, v.ties) for k, v in by_query.items()} == {
        ("shoes",): (0.0, 2.0, 0.0), ("boots",): (0.0, 0.0, 1.0),
    }  # fmt: skip
