"""One heavy user cannot flip a verdict: the outlier rule on a real store, on every backend."""

from __future__ import annotations

from datetime import timedelta

import numpy as np

from clickstats.events import ClickEvent, SearchImpression, utcnow
from clickstats.experiments import Experiment
from clickstats.tracking import ClickTrackingService

PER_ARM = 150
WHALE_SEARCHES = 1250
WHALE_CLICKS_EVERY = 5  # a click on one search in five: 20% against the arms' 40%


def _fill(tracker: ClickTrackingService) -> None:
    """Two arms of people alike in both (no real difference), and one user in search_v2 with
    twice as many searches as the whole arm, who rarely clicks: a crawler or a test account."""
    rng = np.random.default_rng(42)
    start = utcnow() - timedelta(hours=2)
    events: list[ClickEvent | SearchImpression] = []
    for arm in ("search_v1", "search_v2"):
        for u in range(PER_ARM):
            user, propensity = f"{arm}-u{u}", rng.beta(4, 6)
            for s in range(int(rng.integers(2, 7))):
                search_id = f"{user}-s{s}"
                ts = start + timedelta(seconds=u * 10 + s)
                events.append(
                    SearchImpression(
                        user_id=user,
                        variant=arm,
                        query="q",
                        results_count=10,
                        search_id=search_id,
                        timestamp=ts,
                    )
                )
                if rng.random() < propensity:
                    events.append(
                        ClickEvent(
                            user_id=user, variant=arm, product_id="p", rank=1,
                            search_id=search_id, timestamp=ts + timedelta(seconds=1),
                        )
                    )  # fmt: skip
    for s in range(WHALE_SEARCHES):
        ts = start + timedelta(seconds=s)
        events.append(
            SearchImpression(
                user_id="crawler", variant="search_v2", query="q", results_count=10,
                search_id=f"crawler-{s}", timestamp=ts,
            )
        )  # fmt: skip
        if s % WHALE_CLICKS_EVERY == 0:
            events.append(
                ClickEvent(
                    user_id="crawler", variant="search_v2", product_id="p", rank=1,
                    search_id=f"crawler-{s}", timestamp=ts + timedelta(seconds=1),
                )
            )  # fmt: skip
    for n in range(0, len(events), 2000):
        tracker.store.append_sync(events[n : n + 2000])


def _experiment(z: float) -> Experiment:
    return Experiment(
        name="search_ranking", variants={"search_v1": 1.0, "search_v2": 1.0}, outlier_z=z
    )


def test_the_crawler_is_left_out_and_said_so(tracker: ClickTrackingService) -> None:
    _fill(tracker)
    kept = tracker.get_experiment_results(_experiment(3.5), days=1, method="fixed").to_dict()
    raw = tracker.get_experiment_results(_experiment(0), days=1, method="fixed").to_dict()

    # Without the rule the crawler makes search_v2 "significantly worse": a verdict to act on.
    assert raw["decision"]["winner"] == "search_v1", raw["decision"]["summary"]
    assert raw["decision"]["summary"].startswith("Keep search_v1: search_v2 is significantly worse")
    assert raw["outliers"] == {
        "z": 0.0,
        "max_searches": None,
        "excluded": {"search_v1": 0, "search_v2": 0},
    }

    # With it (the default), the crawler is out, the arms are alike again, and the verdict says so.
    rule = kept["outliers"]
    assert rule["excluded"] == {"search_v1": 0, "search_v2": 1}
    assert 6 < rule["max_searches"] < WHALE_SEARCHES
    decision = kept["decision"]
    assert decision["winner"] is None
    assert decision["summary"].startswith("No significant difference in search CTR yet")
    assert (
        f"1 user with more than {rule['max_searches']:,} searches in the window was left out as "
        "implausible for a person (0 in search_v1, 1 in search_v2)."
    ) in decision["summary"]
    v2 = next(v for v in kept["variants"] if v["name"] == "search_v2")
    assert v2["users"] == PER_ARM  # the crawler is not among the analysed users
    # ... but was assigned: the sample ratio check counts it.
    assert kept["health"]["srm"]["observed"] == {"search_v1": PER_ARM, "search_v2": PER_ARM + 1}
