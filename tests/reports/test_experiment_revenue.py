"""Revenue per user in an experiment's results, on every backend: the store's capped sums and
CUPED's pre-exposure sums give the comparison the reference computation gives on the same
per-user values (stats.capping, stats.cuped), and the results say which cap and CUPED were
used."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

import numpy as np
import pytest

from clickstats.events import ConversionEvent, SearchImpression, utcnow
from clickstats.experiments import Experiment
from clickstats.reports.experiment import analysis_currency
from clickstats.stats import cuped
from clickstats.stats.capping import Cap, cap_values
from clickstats.stats.compare import compare
from clickstats.stats.summary import RatioSummary
from clickstats.tracking import ClickTrackingService

PER_ARM = 80
ARMS = ("search_v1", "search_v2")


def _fill(tracker: ClickTrackingService) -> dict[str, Any]:
    """Users who search and buy in the last day; most had searched (and some bought) four days
    before, their pre-exposure window. Returns each user's revenue in the window and before."""
    rng = np.random.default_rng(14)
    now = utcnow()
    events: list[SearchImpression | ConversionEvent] = []
    revenue = {arm: np.zeros(PER_ARM) for arm in ARMS}
    pre = {arm: np.zeros(PER_ARM) for arm in ARMS}
    history = {arm: np.zeros(PER_ARM, dtype=bool) for arm in ARMS}
    for arm in ARMS:
        for u in range(PER_ARM):
            user, spender = f"{arm}-u{u}", rng.lognormal(0, 1.2)
            periods = [("w", now - timedelta(hours=12), revenue[arm])]
            if rng.random() < 0.75:
                periods.append(("p", now - timedelta(days=4), pre[arm]))
                history[arm][u] = True
            for tag, at, total in periods:
                search_id = f"{user}-{tag}"
                for k in range(1 + rng.poisson(1.0)):  # revenue per search: a ratio
                    events.append(
                        SearchImpression(
                            search_id=search_id if k == 0 else f"{search_id}{k}", user_id=user,
                            variant=arm, query="shoes", results=["p1", "p2"],
                            timestamp=at + timedelta(seconds=k),
                        )
                    )  # fmt: skip
                for k in range(rng.poisson(0.6 * spender)):
                    value = round(float(rng.lognormal(3.5, 1.0)), 2)
                    total[u] += value
                    events.append(
                        ConversionEvent(
                            event_id=f"{search_id}-buy{k}", search_id=search_id, user_id=user,
                            product_ids=["p1"], value=value, currency="EUR", subtype="purchase",
                            timestamp=at + timedelta(minutes=1 + k),
                        )
                    )  # fmt: skip
            # a purchase in another currency is never added to euros
            events.append(
                ConversionEvent(
                    event_id=f"{user}-usd", search_id=f"{user}-w", user_id=user,
                    product_ids=["p2"], value=1e4, currency="USD", subtype="purchase",
                    timestamp=now - timedelta(hours=11),
                )
            )  # fmt: skip
    tracker.store.append_sync(events)
    return {"revenue": revenue, "pre": pre, "history": history}


def _reference(users: dict[str, Any], cap: Cap | None, with_cuped: bool) -> list[RatioSummary]:
    """Both arms' summaries computed from the per-user values: capped at the pooled cap (the
    pre-exposure values at the same cap), with CUPED's sums."""
    revenue = np.concatenate([users["revenue"][arm] for arm in ARMS])
    pre = np.concatenate([users["pre"][arm] for arm in ARMS])
    used = None
    if cap is not None:
        revenue, used = cap_values(revenue, cap)
        pre = np.minimum(pre, used)
    out = []
    for n, arm in enumerate(ARMS):
        y, x = revenue[n * PER_ARM : (n + 1) * PER_ARM], pre[n * PER_ARM : (n + 1) * PER_ARM]
        s = dataclasses.replace(RatioSummary.from_values(y), cap=used)
        if with_cuped:
            covariate = cuped.pre_summary(y, x)
            covariate = dataclasses.replace(
                covariate, users_with_history=int(users["history"][arm].sum())
            )
            s = dataclasses.replace(s, pre=covariate)
        out.append(s)
    return out


def test_revenue_per_user_capped_and_cuped(tracker: ClickTrackingService) -> None:
    users = _fill(tracker)
    experiment = Experiment(
        name="shop", variants={"search_v1": 1.0, "search_v2": 1.0}, currency="EUR",
        primary_metric="revenue_per_user",
    )  # fmt: skip
    results = tracker.get_experiment_results(experiment, days=1, method="fixed")
    assert results.currency == "EUR"
    control, treatment = _reference(users, Cap(percentile=0.99), with_cuped=True)
    expected = compare(control, treatment, method="fixed", names=ARMS)
    assert expected.cuped is not None and expected.cuped.applied
    got = results.variants[1].metrics["revenue_per_user"].comparison
    assert got is not None and got.cuped is not None and got.cuped.applied
    assert got.absolute == pytest.approx(expected.absolute, rel=1e-9)
    assert got.absolute_se == pytest.approx(expected.absolute_se, rel=1e-9)
    assert got.absolute_ci == pytest.approx(expected.absolute_ci, rel=1e-9)
    assert got.p_value == pytest.approx(expected.p_value, rel=1e-9)
    assert got.cuped.theta == pytest.approx(expected.cuped.theta, rel=1e-9)
    assert results.variants[0].metrics["revenue_per_user"].estimate == pytest.approx(
        control.ratio, rel=1e-9
    )

    adjustments = results.adjustments["revenue_per_user"]
    assert control.cap is not None and adjustments.cap is not None
    assert adjustments.cap.value == pytest.approx(control.cap, rel=1e-9)
    assert (adjustments.cap.column, adjustments.cap.setting) == ("revenue", "p99")
    assert adjustments.cap.source == "default"
    assert adjustments.cap.label == f"p99 = {control.cap:,.6g} EUR"
    assert adjustments.cuped.applied and adjustments.cuped.pre_days == 14
    assert adjustments.cuped.users_with_history == {
        arm: int(users["history"][arm].sum()) for arm in ARMS
    }
    assert adjustments.cuped.theta == {"search_v2": pytest.approx(expected.cuped.theta)}
    # Revenue per search is a ratio: capped (the same column) but not CUPED-adjusted.
    per_search = results.adjustments["revenue_per_search"]
    assert per_search.cap == adjustments.cap
    assert not per_search.cuped.applied and per_search.cuped.reason == cuped.RATIO_REASON
    assert results.adjustments["search_ctr"].cap is None

    # Switched off: the plain comparison of the uncapped values, said so.
    plain = experiment.model_copy(update={"cuped": False, "caps": {"revenue": None}})
    results = tracker.get_experiment_results(plain, days=1, method="fixed")
    control, treatment = _reference(users, None, with_cuped=False)
    expected = compare(control, treatment, method="fixed", names=ARMS)
    got = results.variants[1].metrics["revenue_per_user"].comparison
    assert got is not None and got.cuped is None
    assert got.absolute_ci == pytest.approx(expected.absolute_ci, rel=1e-9)
    adjustments = results.adjustments["revenue_per_user"]
    assert adjustments.cap is None and not adjustments.cuped.applied
    assert adjustments.cuped.reason == "CUPED is off for this experiment"


def test_a_p99_cap_when_fewer_than_one_user_in_a_hundred_buys(
    tracker: ClickTrackingService,
) -> None:
    # 2 buyers in 300 users (0.7%): over every user the p99 of revenue is 0, and capping at it
    # would remove all revenue (revenue per user 0 in both arms). The percentile is over the
    # buyers: between their two orders, so revenue survives, only the larger order capped.
    now = utcnow()
    events: list[SearchImpression | ConversionEvent] = [
        SearchImpression(
            search_id=f"{arm}-u{u}", user_id=f"{arm}-u{u}", variant=arm, query="shoes",
            results=["p1"], timestamp=now - timedelta(hours=2),
        )
        for arm in ARMS
        for u in range(150)
    ]  # fmt: skip
    orders = {"search_v2-u3": 40.0, "search_v2-u7": 90.0}
    events += [
        ConversionEvent(
            event_id=f"{user}-buy", search_id=user, user_id=user, product_ids=["p1"],
            value=value, currency="EUR", subtype="purchase", timestamp=now - timedelta(hours=1),
        )
        for user, value in orders.items()
    ]  # fmt: skip
    tracker.store.append_sync(events)
    experiment = Experiment(
        name="shop", variants={"search_v1": 1.0, "search_v2": 1.0}, currency="EUR",
        primary_metric="revenue_per_user",
    )  # fmt: skip
    results = tracker.get_experiment_results(experiment, days=1, method="fixed")
    per_user = np.array([0.0] * 298 + list(orders.values()))
    assert float(np.quantile(per_user, 0.99)) == 0.0  # the cap over every user
    cap = 40.0 + 0.99 * (90.0 - 40.0)  # over the buyers: rank (2 - 1) * 0.99
    assert cap_values(per_user, Cap(percentile=0.99)).cap == pytest.approx(cap, rel=1e-12)
    used = results.adjustments["revenue_per_user"].cap
    assert used is not None and used.value == pytest.approx(cap, rel=1e-9)
    assert used.label == "p99 = 89.5 EUR"
    estimates = [v.metrics["revenue_per_user"].estimate for v in results.variants]
    assert estimates == [0.0, pytest.approx((40.0 + cap) / 150, rel=1e-9)]
    # The decision quotes revenue per user in the results' currency (no purchase in the
    # control: the guard for missing events holds the verdict).
    assert results.decision.summary == (
        "Check the tracking before acting: revenue per user is 0.00 EUR in search_v1 and "
        f"{(40.0 + cap) / 150:.2f} EUR in search_v2; a value of 0 in search_v1 usually means its "
        "events are not recorded."
    )


def test_the_currency_is_the_experiments_or_that_of_most_purchases(
    tracker: ClickTrackingService,
) -> None:
    now = utcnow()

    def buy(n: int, currency: str, subtype: str = "purchase") -> ConversionEvent:
        return ConversionEvent(
            event_id=f"{currency}-{subtype}-{n}", user_id=f"u{n}", product_ids=["p1"],
            value=10.0, currency=currency, subtype=subtype, timestamp=now - timedelta(hours=n),
        )  # fmt: skip

    experiment = Experiment(name="shop", variants={"search_v1": 1.0, "search_v2": 1.0})
    since = now - timedelta(days=1)
    assert analysis_currency(tracker.store, experiment, since) is None  # no purchase yet
    tracker.store.append_sync([buy(n, "USD") for n in range(2)] + [buy(n, "SEK") for n in range(2)])
    assert analysis_currency(tracker.store, experiment, since) == "SEK"  # a tie: alphabetical
    # add to carts are not purchases; a purchase more in euros than in any other currency wins
    tracker.store.append_sync(
        [buy(n, "JPY", "add_to_cart") for n in range(5)] + [buy(n, "EUR") for n in range(3)]
    )
    assert analysis_currency(tracker.store, experiment, since) == "EUR"
    assert tracker.get_experiment_results(experiment, days=1).currency == "EUR"
    chosen = experiment.model_copy(update={"currency": "USD"})
    assert analysis_currency(tracker.store, chosen, since) == "USD"


def test_without_a_purchase_cuped_reads_no_history_and_says_why(
    tracker: ClickTrackingService,
) -> None:
    """No purchase names a currency: no revenue is counted, so the store is asked for no
    pre-exposure sums (a second pass over the history) and the results say why."""
    from clickstats.reports.experiment import sum_options

    now = utcnow()
    tracker.store.append_sync(
        [
            SearchImpression(user_id=f"{arm}-u{u}", variant=arm, query="q", results=["p"],
                             timestamp=now - timedelta(hours=1, minutes=u))
            for arm in ARMS
            for u in range(5)
        ]
    )  # fmt: skip
    experiment = Experiment(name="shop", variants={"search_v1": 1.0, "search_v2": 1.0})
    assert experiment.cuped
    options = sum_options(experiment, None)
    assert options is not None and (options.pre_days, options.pre_columns) == (0, ())
    with_eur = sum_options(experiment, "EUR")
    assert with_eur is not None and with_eur.pre_columns == ("revenue",)
    results = tracker.get_experiment_results(experiment, days=1, method="fixed")
    assert results.currency is None
    used = results.adjustments["revenue_per_user"].cuped
    assert not used.applied
    assert used.reason == "no revenue is counted: no purchase in the window names a currency"
