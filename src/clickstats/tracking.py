"""ClickTrackingService: the original design's Python API over any EventStore.

A thin service: each read is a report of `clickstats.reports` (a function of the store and a
typed query), and every write (the HTTP API's, the CLI's) goes through its methods."""

from __future__ import annotations

import atexit
import threading
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any

from clickstats.events import ActionEvent, ClickEvent, ConversionEvent, SearchImpression, utcnow
from clickstats.experiments import Experiment, default_experiments
from clickstats.privacy import DeletedCounts, UserDeletion, retention_cutoff
from clickstats.reports import analytics
from clickstats.reports.analytics import (
    CtrReport,
    LogResult,
    MetricsReport,
    RankReport,
    ResetReport,
    ResponseTimeReport,
    UserSummary,
    VariantComparison,
    pick_leader,
)
from clickstats.reports.overview import Overview, Period, overview
from clickstats.reports.queries import QueriesQuery, QueriesReport, queries
from clickstats.reports.user import UserQuery, user_summary
from clickstats.settings import Settings
from clickstats.store import EventStore, open_store
from clickstats.store.base import (
    Activity,
    AnyEvent,
    AppendStatus,
    Deleted,
    EventRow,
    Filters,
    Outcome,
)

if TYPE_CHECKING:
    from clickstats.reports.experiment import ExperimentResults, Method
    from clickstats.reports.interleaving import InterleavingResults
    from clickstats.reports.judgments import JudgmentsQuery, JudgmentsReport

__all__ = ["ClickTrackingService", "get_click_tracker", "pick_leader"]

MIN_DAYS, MAX_DAYS, DEFAULT_DAYS = 1, 365, 7


def check_days(days: int) -> int:
    if not MIN_DAYS <= days <= MAX_DAYS:
        raise ValueError(f"days must be between {MIN_DAYS} and {MAX_DAYS}, got {days}")
    return days


#: Before any event (event times are checked to be after 1970).
EVER = datetime(1970, 1, 1, tzinfo=UTC)


def filters(days: int, user_id: str | None = None, variant: str | None = None) -> Filters:
    check_days(days)
    return Filters(since=utcnow() - timedelta(days=days), user_id=user_id, variant=variant)


def log_result(event: AnyEvent, status: AppendStatus) -> LogResult:
    return LogResult(
        event_id=event.event_id,
        timestamp=event.timestamp,
        duplicate=status is AppendStatus.DUPLICATE,
        search_id=event.search_id,
    )


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

    def log_conversion(
        self, event: ConversionEvent | Mapping[str, Any] | None = None, **fields: Any
    ) -> LogResult:
        """Store a conversion (an add to cart, a purchase...) durably."""
        conversion = ConversionEvent.coerce(event, **fields)
        (status,) = self.store.append_sync([conversion])
        return log_result(conversion, status)

    def log_action(
        self, event: ActionEvent | Mapping[str, Any] | None = None, **fields: Any
    ) -> LogResult:
        """Store another action (a product view, a hover...) durably, under its name."""
        action = ActionEvent.coerce(event, **fields)
        (status,) = self.store.append_sync([action])
        return log_result(action, status)

    async def append(self, events: Sequence[AnyEvent]) -> list[AppendStatus]:
        """Store events durably (the HTTP API's path); one status per event, in order."""
        return await self.store.append(events)

    def append_sync(self, events: Sequence[AnyEvent]) -> list[AppendStatus]:
        """`append` for synchronous callers."""
        return self.store.append_sync(events)

    def reset(self) -> ResetReport:
        deleted = self.store.reset()
        return ResetReport(
            deleted_clicks=deleted.clicks,
            deleted_impressions=deleted.impressions,
            deleted_conversions=deleted.conversions,
            deleted_actions=deleted.actions,
        )

    def delete_user(self, user_id: str) -> UserDeletion:
        """Erase every click and impression of one user (zeros when there is none)."""
        return UserDeletion(
            user_id=user_id, deleted=DeletedCounts.of(self.store.delete_user(user_id))
        )

    def prune(self, retention_days: int) -> Deleted:
        """Delete the events older than `retention_days` days (by their event time)."""
        return self.store.delete_before(retention_cutoff(retention_days))

    def ping(self) -> str:
        """The store's backend name, once the store has answered (StoreError otherwise)."""
        self.store.ping()
        return self.store.kind

    def get_activity(self, since: datetime | None = None) -> Activity:
        """The earliest and latest stored event (since `since`; ever without it)."""
        return self.store.activity(Filters(since=since or EVER))

    # -- metrics ---------------------------------------------------------------------------

    def get_ctr(
        self, user_id: str | None = None, variant: str | None = None, days: int = DEFAULT_DAYS
    ) -> CtrReport:
        return analytics.ctr(self.store, filters(days, user_id, variant))

    def get_rank_metrics(
        self, user_id: str | None = None, variant: str | None = None, days: int = DEFAULT_DAYS
    ) -> RankReport:
        return analytics.rank_metrics(self.store, filters(days, user_id, variant))

    def get_response_time_metrics(
        self, user_id: str | None = None, variant: str | None = None, days: int = DEFAULT_DAYS
    ) -> ResponseTimeReport:
        return analytics.response_time(self.store, filters(days, user_id, variant))

    def get_user_summary(self, user_id: str, days: int = DEFAULT_DAYS) -> UserSummary:
        return user_summary(self.store, UserQuery(user_id, check_days(days)))

    def get_variant_comparison(
        self, days: int = DEFAULT_DAYS, experiment: Experiment | None = None
    ) -> VariantComparison:
        """Per-variant figures; `stats` holds the decision for `experiment` (by default the
        search_ranking experiment's default definition, search_v1 against search_v2)."""
        from clickstats.reports.experiment import decision_block, experiment_results, window

        f = filters(days)
        experiment = experiment or default_experiments()[0]
        stats = decision_block(
            experiment_results(self.store, experiment, window(f), response_time=False)
        )
        return analytics.variants_comparison(self.store, f, days, stats)

    def get_metrics(self) -> MetricsReport:
        """The metric registry: each metric's name, label, definition and direction."""
        return analytics.metric_registry()

    def get_overview(
        self,
        days: int = DEFAULT_DAYS,
        tz: str = "UTC",
        variant: str | None = None,
        user_id: str | None = None,
        currency: str | None = None,
    ) -> Overview:
        """The dashboard's overview of the last `days` whole days in time zone `tz`: totals,
        per variant, per day, clicks by rank, a latency histogram, conversions and revenue in
        `currency` (None: the currency of most purchases) (docs/DASHBOARD.md)."""
        return overview(self.store, Period(check_days(days), tz, variant, user_id, currency))

    def get_queries(
        self,
        days: int = DEFAULT_DAYS,
        variant: str | None = None,
        user_id: str | None = None,
        limit: int = 20,
        tz: str = "UTC",
        currency: str | None = None,
    ) -> QueriesReport:
        """Top, zero-result and no-click queries, the queries with the most revenue (in
        `currency`, as the overview's) and with the most unconverted clicks, and the most
        clicked products."""
        period = Period(check_days(days), tz, variant, user_id, currency)
        return queries(self.store, QueriesQuery(period, limit))

    def get_judgments(self, query: JudgmentsQuery) -> JudgmentsReport:
        """Implicit relevance judgments: per (query, product), a grade from clicks corrected
        for position bias (COEC or PBM), with its interval (docs/INTEGRATIONS.md)."""
        from clickstats.reports.judgments import judgments

        return judgments(self.store, query)

    def export_events(
        self, since: datetime | None = None, batch_rows: int = 10_000
    ) -> Iterator[list[EventRow]]:
        """Every stored event at or after `since`, in lists of at most `batch_rows`, read
        lazily (transfer.py writes them as a file; GET /analytics/export streams them)."""
        return self.store.export(since=since, batch_rows=batch_rows)

    def get_interleaving_results(
        self, experiment: Experiment, days: int = 30, outcome: Outcome = "clicks"
    ) -> InterleavingResults:
        """Team-draft interleaving outcomes and the preference between its two rankers, credited
        by clicks or by attributed purchases."""
        from clickstats.reports.interleaving import interleaving_results, window

        return interleaving_results(self.store, experiment, window(filters(days)), outcome=outcome)

    def get_experiment_results(
        self, experiment: Experiment, days: int = 30, method: Method = "sequential"
    ) -> ExperimentResults:
        """Comparisons, health checks and the decision for one experiment (docs/STATISTICS.md)."""
        from clickstats.reports.experiment import experiment_results, window

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
