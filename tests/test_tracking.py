"""The original design's Python API, on hand-computed data, on every backend."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from clickstats import ClickEvent, ClickTrackingService, SearchImpression
from clickstats.events import utcnow
from clickstats.store import open_store
from clickstats.tracking import pick_leader


def seed(tracker: ClickTrackingService) -> None:
    """v1: 4 searches, 2 clicks (ranks 1 and 3); v2: 2 searches, 3 clicks (ranks 1, 2, 2)."""
    now = utcnow()
    for rt in [100.0, 200.0, 300.0, 400.0]:
        tracker.log_impression(
            SearchImpression(user_id="alice", query="q", variant="search_v1", response_time_ms=rt)
        )
    tracker.log_impression(user_id="bob", query="q", variant="search_v2", response_time_ms=50.0)
    tracker.log_impression({"user_id": "bob", "query": "q", "variant": "search_v2"})
    tracker.log_click(ClickEvent(user_id="alice", product_id="a", rank=1, variant="search_v1"))
    tracker.log_click(user_id="alice", product_id="b", rank=3, variant="search_v1")
    for rank in (1, 2, 2):
        tracker.log_click(user_id="bob", product_id="c", rank=rank, variant="search_v2")
    # Outside every 7-day window, inside a 30-day one.
    old = now - timedelta(days=20)
    tracker.log_impression(user_id="carol", query="q", variant="search_v1", timestamp=old)
    tracker.log_click(user_id="carol", product_id="d", rank=9, variant="search_v1", timestamp=old)


def test_ctr(tracker: ClickTrackingService) -> None:
    seed(tracker)
    report = tracker.get_ctr()
    assert (report.total_clicks, report.total_impressions) == (5, 6)
    assert report.ctr == pytest.approx(5 / 6)
    assert report["ctr"] == report.ctr  # the original design's dict access
    assert report.by_variant["search_v1"].ctr == pytest.approx(0.5)
    assert report.by_variant["search_v2"].ctr == pytest.approx(1.5)
    assert tracker.get_ctr(variant="search_v2").total_impressions == 2
    assert tracker.get_ctr(user_id="alice").ctr == pytest.approx(0.5)
    assert tracker.get_ctr(days=30).total_clicks == 6


def test_ctr_without_data_is_null_not_nan(tracker: ClickTrackingService) -> None:
    report = tracker.get_ctr()
    assert report.ctr is None and report.by_variant == {}
    tracker.log_click(product_id="p", rank=1)
    assert tracker.get_ctr().ctr is None
    assert tracker.get_ctr().by_variant["default"].ctr is None


def test_rank_metrics(tracker: ClickTrackingService) -> None:
    seed(tracker)
    report = tracker.get_rank_metrics()  # ranks 1, 3, 1, 2, 2
    assert report.total_clicks == 5
    assert report.avg_rank == pytest.approx(9 / 5)
    assert report.median_rank == 2
    assert (report.min_rank, report.max_rank) == (1, 3)
    assert report.clicks_by_rank == {"1": 2, "2": 2, "3": 1}
    assert list(report.clicks_by_rank) == ["1", "2", "3"]
    assert tracker.get_rank_metrics(variant="search_v1").median_rank == 2  # ranks 1, 3
    assert tracker.get_rank_metrics(days=30).max_rank == 9


def test_response_time_counts_each_search_once(tracker: ClickTrackingService) -> None:
    seed(tracker)
    report = tracker.get_response_time_metrics()  # 100, 200, 300, 400, 50 (+1 without)
    assert report.count == 5
    assert report.avg_ms == pytest.approx(210.0)
    assert (report.min_ms, report.max_ms) == (50.0, 400.0)
    assert report.p95_ms == pytest.approx(380.0)  # numpy.percentile([50,100,200,300,400], 95)
    assert tracker.get_response_time_metrics(user_id="bob").avg_ms == pytest.approx(50.0)


def test_user_summary(tracker: ClickTrackingService) -> None:
    seed(tracker)
    alice = tracker.get_user_summary("alice")
    assert (alice.impressions, alice.clicks) == (4, 2)
    assert alice.ctr == pytest.approx(0.5)
    assert alice.avg_rank == pytest.approx(2.0)
    assert alice.response_time.avg_ms == pytest.approx(250.0)
    assert set(alice.by_variant) == {"search_v1"}
    assert alice.first_seen is not None and alice.last_seen is not None
    assert alice.first_seen <= alice.last_seen
    nobody = tracker.get_user_summary("nobody")
    assert (nobody.impressions, nobody.clicks, nobody.ctr, nobody.first_seen) == (0, 0, None, None)
    assert tracker.get_user_summary("carol").clicks == 0
    assert tracker.get_user_summary("carol", days=30).avg_rank == 9


def test_variant_comparison(tracker: ClickTrackingService) -> None:
    seed(tracker)
    report = tracker.get_variant_comparison()
    v1, v2 = report.variants["search_v1"], report.variants["search_v2"]
    assert (v1.impressions, v1.clicks, v2.impressions, v2.clicks) == (4, 2, 2, 3)
    assert v1.avg_rank == pytest.approx(2.0)
    assert v2.avg_rank == pytest.approx(5 / 3)
    assert v1.avg_response_ms == pytest.approx(250.0)
    assert v1.p95_response_ms == pytest.approx(385.0)
    assert v2.p95_response_ms == pytest.approx(50.0)
    # Two users: search_v2 leads on CTR, and it is far too early to call.
    assert report.leader == "search_v2"
    assert report.stats is not None and report.stats["winner"] is None
    assert report.winner is None


def test_variant_comparison_names_the_decided_winner(tmp_path: Path) -> None:
    """300 users per variant, two searches each: 40% clicked on search_v1, 55% on search_v2.
    The decision is the service's, the same on every backend; on DuckDB alone, as mongomock
    takes 20 s over these 1,800 events."""
    tracker = ClickTrackingService(open_store(f"duckdb://{tmp_path}/decided.duckdb"))
    events: list[ClickEvent | SearchImpression] = []
    for n in range(600):
        variant, user = ("search_v1", "search_v2")[n % 2], f"user-{n}"
        for k in range(2):
            sid = f"{user}-{k}"
            events.append(SearchImpression(user_id=user, query="q", variant=variant, search_id=sid))
            if (n // 2 + 7 * k) % 20 < (8 if variant == "search_v1" else 11):
                events.append(ClickEvent(user_id=user, product_id="p", rank=1, search_id=sid))
    with tracker:
        tracker.store.append_sync(events)
        report = tracker.get_variant_comparison()
    assert report.stats is not None and report.stats["winner"] == "search_v2"
    assert report.winner == report.leader == "search_v2"
    # clicks sent without a variant count for their searches'
    assert (report.variants["search_v1"].clicks, report.variants["search_v2"].clicks) == (240, 330)


def test_leader_rule() -> None:
    assert pick_leader({}) is None
    assert pick_leader({"a": None}) is None
    assert pick_leader({"a": 0.2, "b": 0.2}) is None
    assert pick_leader({"a": 0.2, "b": 0.3, "c": None}) == "b"
    assert pick_leader({"a": 0.0}) == "a"


@pytest.mark.parametrize("days", [0, -1, 366])
def test_days_out_of_range(tracker: ClickTrackingService, days: int) -> None:
    with pytest.raises(ValueError, match="between 1 and 365"):
        tracker.get_ctr(days=days)


def test_log_results_and_idempotency(tracker: ClickTrackingService) -> None:
    first = tracker.log_impression(query="q", event_id="e1", search_id="s1")
    assert (first.event_id, first.search_id, first.duplicate) == ("e1", "s1", False)
    again = tracker.log_impression(query="q", event_id="e1", search_id="s1")
    assert again.duplicate
    assert tracker.get_ctr().total_impressions == 1
    report = tracker.reset()
    assert report["deleted_impressions"] == 1
    assert "deleted_clicks" in report and report.get("nope", 0) == 0
    with pytest.raises(KeyError):
        report["nope"]


def test_get_click_tracker_uses_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import clickstats.tracking as tracking

    monkeypatch.setenv("CLICKSTATS_STORE", f"duckdb://{tmp_path}/env.duckdb")
    monkeypatch.setattr(tracking, "_tracker", None)
    tracker = tracking.get_click_tracker()
    try:
        assert tracker is tracking.get_click_tracker()
        tracker.log_click(product_id="p", rank=1)
        assert (tmp_path / "env.duckdb").exists()
    finally:
        tracker.close()
