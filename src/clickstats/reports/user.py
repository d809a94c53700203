"""One user's summary (/analytics/user/{user_id}): searches, clicks, click position, response
times, variants, first and last event."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from clickstats.events import utcnow
from clickstats.reports.analytics import (
    UserSummary,
    counts_by_variant,
    response_time_report,
    variant_ctr,
)
from clickstats.reports.base import cached, ratio
from clickstats.stats.ranks import summarize_ranks
from clickstats.store.base import EventStore, Filters, LatencyStats


@dataclass(frozen=True, slots=True)
class UserQuery:
    """One user's events of the last `days` days."""

    user_id: str
    days: int

    def filters(self) -> Filters:
        return Filters(since=utcnow() - timedelta(days=self.days), user_id=self.user_id)


def user_summary(store: EventStore, query: UserQuery) -> UserSummary:
    f = query.filters()
    per_variant = counts_by_variant(store, f)
    clicks = sum(c.clicks for c in per_variant.values())
    impressions = sum(c.impressions for c in per_variant.values())
    activity, ranks, latency = cached(
        store,
        ("user", f),
        lambda: (store.activity(f), store.rank_histogram(f), store.latency(f)),
    )
    return UserSummary(
        user_id=query.user_id,
        days=query.days,
        impressions=impressions,
        clicks=clicks,
        ctr=ratio(clicks, impressions),
        avg_rank=summarize_ranks(ranks.get((), {})).mean,
        response_time=response_time_report(latency.get((), LatencyStats())),
        by_variant={v: variant_ctr(c) for v, c in sorted(per_variant.items())},
        first_seen=activity.first_seen,
        last_seen=activity.last_seen,
    )
