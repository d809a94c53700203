"""The experiment aggregate: per-user sums by variant, the same on every backend."""

from __future__ import annotations

import random
from collections import Counter
from datetime import timedelta

import pytest

from clickstats import ClickEvent, SearchImpression, metrics
from clickstats.events import ConversionEvent, event_time_now
from clickstats.store import EventStore

NOW = event_time_now()
T0 = NOW - timedelta(days=1)
S = timedelta(seconds=1)
#: the per-user columns of these tests' expected values, in this order
USER_COLUMNS = (
    "searches", "clicked_searches", "clicks", "rr", "rank_sum", "with_results", "abandoned",
    "zero_results", "counted_searches", "ttfc_ms", "users", "converted_searches", "cart_searches",
    "purchase_searches", "purchases", "revenue", "orders", "units", "unconverted_clicks",
)  # fmt: skip


def imp(
    sid: str, user: str, variant: str, results: int, at: timedelta = timedelta(0)
) -> SearchImpression:
    return SearchImpression(
        event_id=f"i-{sid}", search_id=sid, user_id=user, variant=variant, query="q",
        results_count=results, timestamp=T0 + at,
    )  # fmt: skip


def clk(n: str, sid: str | None, rank: int, at: timedelta, user: str = "x") -> ClickEvent:
    return ClickEvent(
        event_id=f"c-{n}", search_id=sid, user_id=user, product_id="p", rank=rank,
        timestamp=T0 + at,
    )  # fmt: skip


EVENTS = [
    # u1 (v1): s1 clicked at rank 3 (+2 s, first) then rank 1 (+5 s); s2 no click; s3 no results
    imp("s1", "u1", "v1", 10), clk("1", "s1", 3, 2 * S), clk("2", "s1", 1, 5 * S),
    imp("s2", "u1", "v1", 5, 10 * S), imp("s3", "u1", "v1", 0, 20 * S),
    # u2 (v1): s4 clicked once at rank 2 after 1 s
    imp("s4", "u2", "v1", 10, 30 * S), clk("3", "s4", 2, 31 * S),
    # u3 (v2): s5 clicked at rank 1 (+4 s) and rank 2 (+6 s)
    imp("s5", "u3", "v2", 3), clk("4", "s5", 1, 4 * S), clk("5", "s5", 2, 6 * S),
    # not counted: a click citing no search, a variant outside the experiment, an old search
    clk("6", None, 1, 3 * S), imp("s6", "u4", "other", 10), clk("7", "s6", 1, 1 * S),
    imp("s7", "u1", "v1", 10, -timedelta(days=10)), clk("8", "s7", 1, -timedelta(days=10) + S),
    # u1 buys 2 from s1 (its search_id); x, who clicked p in s4 (u2's search), puts it in the
    # cart 9 s later: it counts for s4
    ConversionEvent(event_id="b1", user_id="u1", search_id="s1", subtype="purchase",
                    product_ids=["p"], prices=[10.0], quantities=[2], currency="EUR",
                    timestamp=T0 + 7 * S),
    ConversionEvent(event_id="a1", user_id="x", subtype="add_to_cart", product_ids=["p"],
                    timestamp=T0 + 40 * S),
]  # fmt: skip

# Per user: searches, clicked, clicks, rr, rank_sum, with_results, abandoned, zero, counted, ttfc_ms,
# users, converted, in cart, purchased, purchases, revenue (no currency asked: 0), orders, units,
# clicks on searches without a conversion
# fmt: off
U1 = dict(zip(USER_COLUMNS, [3, 1, 2, 1 / 3, 4, 2, 1, 1, 3, 2000, 1, 1, 0, 1, 1, 0, 0, 2, 0], strict=True))
U2 = dict(zip(USER_COLUMNS, [1, 1, 1, 1 / 2, 2, 1, 0, 0, 1, 1000, 1, 1, 1, 0, 0, 0, 0, 0, 0], strict=True))
U3 = dict(zip(USER_COLUMNS, [1, 1, 2, 1.0, 3, 1, 0, 0, 1, 4000, 1, 0, 0, 0, 0, 0, 0, 0, 2], strict=True))
# fmt: on


def test_user_sums_by_variant(store: EventStore) -> None:
    store.append_sync(EVENTS)
    sums = store.user_sums(NOW - timedelta(days=7), ["v1", "v2"])
    assert set(sums) == {"v1", "v2"}
    assert set(USER_COLUMNS) == set(metrics.columns())
    v1, v2 = sums["v1"], sums["v2"]
    assert (v1.users, v2.users) == (2, 1)
    for column in USER_COLUMNS:
        assert v1.sums[column] == pytest.approx(U1[column] + U2[column], abs=1e-9), column
        assert v1.squares[column] == pytest.approx(U1[column] ** 2 + U2[column] ** 2, abs=1e-9)
        assert v2.sums[column] == pytest.approx(U3[column], abs=1e-9), column
    for a, b in metrics.pairs():
        assert v1.products[a, b] == pytest.approx(U1[a] * U1[b] + U2[a] * U2[b], abs=1e-9)
        assert v2.products[a, b] == pytest.approx(U3[a] * U3[b], abs=1e-9)


def test_user_sums_of_an_empty_window(store: EventStore) -> None:
    store.append_sync(EVENTS)
    assert store.user_sums(NOW + timedelta(minutes=1), ["v1"]) == {}


WEEK = NOW - timedelta(days=7)


def test_searches_per_user_is_a_histogram_of_the_users_of_user_sums(store: EventStore) -> None:
    store.append_sync(EVENTS)
    # u1 3 searches in v1 (s7 is before the window), u2 1; u3 1 in v2; u4's variant is not asked
    assert store.searches_per_user(WEEK, ["v1", "v2"]) == {"v1": {3: 1, 1: 1}, "v2": {1: 1}}
    assert store.searches_per_user(WEEK, ["v2"]) == {"v2": {1: 1}}
    assert store.searches_per_user(NOW + timedelta(minutes=1), ["v1"]) == {}


def test_max_searches_leaves_out_exactly_the_heavier_users(store: EventStore) -> None:
    store.append_sync(EVENTS)
    capped = store.user_sums(WEEK, ["v1", "v2"], max_searches=2)  # u1 (3) goes
    assert (capped["v1"].users, capped["v2"].users) == (1, 1)
    for column in USER_COLUMNS:
        assert capped["v1"].sums[column] == pytest.approx(U2[column], abs=1e-9), column
        assert capped["v1"].squares[column] == pytest.approx(U2[column] ** 2, abs=1e-9)
        assert capped["v2"].sums[column] == pytest.approx(U3[column], abs=1e-9), column
    for a, b in metrics.pairs():
        assert capped["v1"].products[a, b] == pytest.approx(U2[a] * U2[b], abs=1e-9)
    everyone = store.user_sums(WEEK, ["v1", "v2"])
    assert store.user_sums(WEEK, ["v1", "v2"], max_searches=3) == everyone
    assert store.user_sums(WEEK, ["v1", "v2"], max_searches=0) == {}


def test_capped_sums_and_histogram_agree_with_python(store: EventStore) -> None:
    rng = random.Random(11)
    events: list[ClickEvent | SearchImpression] = []
    for u in range(40):
        variant = f"v{1 + u % 2}"
        for n in range(rng.choice([1, 1, 2, 3, 5, 8, 13, 30])):
            sid = f"u{u}-{n}"
            events.append(imp(sid, f"u{u}", variant, rng.choice([0, 4, 10]), n * S))
            for k in range(rng.choice([0, 0, 1, 2])):
                events.append(clk(f"{sid}-{k}", sid, rng.randint(1, 9), (n + k + 1) * S))
    store.append_sync(events)
    searches: dict[str, dict[str, int]] = {}  # variant -> user -> searches
    clicks: dict[str, int] = {}  # user -> clicks on their searches
    zero: dict[str, int] = {}
    for e in events:
        if isinstance(e, SearchImpression):
            per_user = searches.setdefault(e.variant, {})
            per_user[e.user_id] = per_user.get(e.user_id, 0) + 1
            zero[e.user_id] = zero.get(e.user_id, 0) + (e.results_count == 0)
        else:
            owner = str(e.search_id).rsplit("-", 1)[0]
            clicks[owner] = clicks.get(owner, 0) + 1

    histogram = store.searches_per_user(WEEK, ["v1", "v2"])
    assert histogram == {
        v: dict(sorted(Counter(per_user.values()).items())) for v, per_user in searches.items()
    }
    cap = 5
    sums = store.user_sums(WEEK, ["v1", "v2"], max_searches=cap)
    for variant, per_user in searches.items():
        kept = [u for u, n in per_user.items() if n <= cap]
        assert (
            sums[variant].users
            == len(kept)
            == sum(users for n, users in histogram[variant].items() if n <= cap)
        )
        assert sums[variant].sums["searches"] == sum(per_user[u] for u in kept)
        assert sums[variant].squares["searches"] == sum(per_user[u] ** 2 for u in kept)
        assert sums[variant].sums["clicks"] == sum(clicks.get(u, 0) for u in kept)
        assert sums[variant].sums["zero_results"] == sum(zero[u] for u in kept)
