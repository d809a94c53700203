"""ClickTrackingService: the original design's Python API over any EventStore."""

from __future__ import annotations

import atexit
import threading
from collections.abc import Mapping
from datetime import timedelta
from types import TracebackType
from typing import Any

from clickstats.events import ClickEvent, SearchImpression, utcnow
from clickstats.experiments import Experiment, default_experiments
from clickstats.overview import Overview, QueriesReport, overview, queries
from clickstats.privacy import DeletedCounts, UserDeletion, retention_cutoff
from clickstats.reports.analytics import (
    CtrReport,
    LogResult,
    RankReport,
    ResetReport,
    ResponseTimeReport,
    UserSummary,
    VariantComparison,
    VariantCtr,
    VariantStats,
)
from clickstats.reports.base import ratio
from clickstats.results import (
    Method,
    decision_block,
    experiment_results,
    interleaving_results,
    window,
)
from clickstats.settings import Settings
from clickstats.stats.ranks import summarize_ranks
from clickstats.store import EventStore, open_store
from clickstats.store.base import (
    AnyEvent,
    AppendStatus,
    Counts,
    Deleted,
    Filters,
    LatencyStats,
)

MIN_DAYS, MAX_DAYS, DEFAULT_DAYS = 1, 365, 7


def filters(days: int, user_id: str | None = None, variant: str | None = None) -> Filters:
    if not MIN_DAYS <= days <= MAX_DAYS:
        raise ValueError(f"days must be between {MIN_DAYS} and {MAX_DAYS}, got {days}")
    return Filters(since=utcnow() - timedelta(days=days), user_id=user_id, variant=variant)


def log_result(event: AnyEvent, status: AppendStatus) -> LogResult:
    return LogResult(
        event_id=event.event_id,
        timestamp=event.timestamp,
        duplicate=status is AppendStatus.DUPLICATE,
        search_id=event.search_id,
    )


def _variant_ctr(counts: Counts) -> VariantCtr:
    return VariantCtr(
        ctr=ratio(counts.clicks, counts.impressions),
        clicks=counts.clicks,
        impressions=counts.impressions,
    )


def _response_time(stats: LatencyStats) -> ResponseTimeReport:
    return ResponseTimeReport(
        avg_ms=stats.mean,
        min_ms=stats.minimum,
        max_ms=stats.maximum,
        p95_ms=stats.p95,
        count=stats.count,
    )


def pick_leader(ctr_by_variant: Mapping[str, float | None]) -> str | None:
    """The variant with the strictly highest CTR; None without data or on a tie."""
    rates = sorted(((c, v) for v, c in ctr_by_variant.items() if c is not None), reverse=True)
    if not rates or (len(rates) > 1 and rates[0][0] == rates[1][0]):
        return None
    return rates[0][1]


class ClickTrackingService:
    """Log clicks and impressions; answer CTR, rank, latency, user and variant questions."""

    def __init__(self, store: EventStore) -> None:
        self.store = store

    def open(self) -> ClickTrackingService:
        self.store.open()
        return self

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> ClickTrackingService:
        return self.open()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- logging ---------------------------------------------------------------------------

    def log_click(
        self, event: ClickEvent | Mapping[str, Any] | None = None, **fields: Any
    ) -> LogResult:
        """Store a click durably: `log_click(ClickEvent(...))`, a dict, or keyword fields."""
        click = ClickEvent.coerce(event, **fields)
        (status,) = self.store.append_sync([click])
        return log_result(click, status)

    def log_impression(
        self, event: SearchImpression | Mapping[str, Any] | None = None, **fields: Any
    ) -> LogResult:
        """Store a search impression durably; the result carries its `search_id`."""
        impression = SearchImpression.coerce(event, **fields)
        (status,) = self.store.append_sync([impression])
        return log_result(impression, status)

    def reset(self) -> ResetReport:
        deleted = self.store.reset()
        return ResetReport(deleted_clicks=deleted.clicks, deleted_impressions=deleted.impressions)

    def delete_user(self, user_id: str) -> UserDeletion:
        """Erase every click and impression of one user (zeros when there is none)."""
        return UserDeletion(
            user_id=user_id, deleted=DeletedCounts.of(self.store.delete_user(user_id))
        )

    def prune(self, retention_days: int) -> Deleted:
        """Delete the events older than `retention_days` days (by their event time)."""
        return self.store.delete_before(retention_cutoff(retention_days))

    # -- metrics ---------------------------------------------------------------------------

    def get_ctr(
        self, user_id: str | None = None, variant: str | None = None, days: int = DEFAULT_DAYS
    ) -> CtrReport:
        per_variant = self.store.counts_by_variant(filters(days, user_id, variant))
        clicks = sum(c.clicks for c in per_variant.values())
        impressions = sum(c.impressions for c in per_variant.values())
        return CtrReport(
            ctr=ratio(clicks, impressions),
            total_clicks=clicks,
            total_impressions=impressions,
            by_variant={v: _variant_ctr(c) for v, c in sorted(per_variant.items())},
        )

    def get_rank_metrics(
        self, user_id: str | None = None, variant: str | None = None, days: int = DEFAULT_DAYS
    ) -> RankReport:
        histogram = self.store.rank_histogram(filters(days, user_id, variant))
        summary = summarize_ranks(histogram)
        return RankReport(
            avg_rank=summary.mean,
            median_rank=summary.median,
            min_rank=summary.minimum,
            max_rank=summary.maximum,
            clicks_by_rank={str(rank): histogram[rank] for rank in sorted(histogram)},
            total_clicks=summary.total,
        )

    def get_response_time_metrics(
        self, user_id: str | None = None, variant: str | None = None, days: int = DEFAULT_DAYS
    ) -> ResponseTimeReport:
        return _response_time(self.store.latency(filters(days, user_id, variant)))

    def get_user_summary(self, user_id: str, days: int = DEFAULT_DAYS) -> UserSummary:
        f = filters(days, user_id)
        per_variant = self.store.counts_by_variant(f)
        clicks = sum(c.clicks for c in per_variant.values())
        impressions = sum(c.impressions for c in per_variant.values())
        activity = self.store.activity(f)
        return UserSummary(
            user_id=user_id,
            days=days,
            impressions=impressions,
            clicks=clicks,
            ctr=ratio(clicks, impressions),
            avg_rank=summarize_ranks(self.store.rank_histogram(f)).mean,
            response_time=_response_time(self.store.latency(f)),
            by_variant={v: _variant_ctr(c) for v, c in sorted(per_variant.items())},
            first_seen=activity.first_seen,
            last_seen=activity.last_seen,
        )

    def get_variant_comparison(
        self, days: int = DEFAULT_DAYS, experiment: Experiment | None = None
    ) -> VariantComparison:
        """Per-variant figures; `stats` holds the decision for `experiment` (by default the
        search_ranking experiment's default definition, search_v1 against search_v2)."""
        f = filters(days)
        counts = self.store.counts_by_variant(f)
        ranks = self.store.rank_histogram_by_variant(f)
        latency = self.store.latency_by_variant(f)
        variants: dict[str, VariantStats] = {}
        for name in sorted(counts):
            c = counts[name]
            lat = latency.get(name, LatencyStats())
            variants[name] = VariantStats(
                impressions=c.impressions,
                clicks=c.clicks,
                ctr=ratio(c.clicks, c.impressions),
                avg_rank=summarize_ranks(ranks.get(name, {})).mean,
                avg_response_ms=lat.mean,
                p95_response_ms=lat.p95,
            )
        experiment = experiment or default_experiments()[0]
        stats = decision_block(
            experiment_results(self.store, experiment, window(f), response_time=False)
        )
        return VariantComparison(
            days=days,
            variants=variants,
            # One answer, one verdict: the top-level winner is the decision's, never a CTR lead
            # the statistics have not confirmed.
            winner=stats["winner"],
            leader=pick_leader({name: v.ctr for name, v in variants.items()}),
            stats=stats,
        )

    def get_overview(
        self,
        days: int = DEFAULT_DAYS,
        tz: str = "UTC",
        variant: str | None = None,
        user_id: str | None = None,
    ) -> Overview:
        """The dashboard's overview of the last `days` whole days in time zone `tz`: totals,
        per variant, per day, clicks by rank, a latency histogram (docs/DASHBOARD.md)."""
        filters(days)  # checks days
        return overview(self.store, days, tz, variant=variant, user_id=user_id)

    def get_queries(
        self,
        days: int = DEFAULT_DAYS,
        variant: str | None = None,
        user_id: str | None = None,
        limit: int = 20,
        tz: str = "UTC",
    ) -> QueriesReport:
        """Top, zero-result and no-click queries, and the most clicked products."""
        filters(days)
        return queries(self.store, days, limit, variant=variant, user_id=user_id, tz=tz)

    def get_interleaving_results(self, experiment: Experiment, days: int = 30) -> dict[str, Any]:
        """Team-draft interleaving outcomes and the preference between its two rankers."""
        return interleaving_results(self.store, experiment, window(filters(days)))

    def get_experiment_results(
        self, experiment: Experiment, days: int = 30, method: Method = "sequential"
    ) -> dict[str, Any]:
        """Comparisons, health checks and the decision for one experiment (docs/STATISTICS.md)."""
        return experiment_results(self.store, experiment, window(filters(days)), method)


_tracker: ClickTrackingService | None = None
_tracker_lock = threading.Lock()


def get_click_tracker() -> ClickTrackingService:
    """The process-wide service, opened on first use on the store CLICKSTATS_STORE names."""
    global _tracker
    with _tracker_lock:
        if _tracker is None:
            _tracker = ClickTrackingService(open_store(Settings().store)).open()
            atexit.register(_tracker.close)
        return _tracker
