"""The original design's reports (/analytics/ctr, rank-metrics, response-time, user, variants-comparison, reset) and what logging an event answers."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from clickstats.reports.base import Report


class LogResult(Report):
    status: Literal["success", "dropped_bot"] = Field(
        "success",
        description="success: stored; dropped_bot: sent by a known crawler, not stored "
        "(docs/SECURITY.md, Bots)",
    )
    event_id: str
    timestamp: datetime
    duplicate: bool = Field(
        False, description="true when an event with this event_id was already stored"
    )
    search_id: str | None = Field(
        None, description="the impression's search id (for a click: the one it cites, if any)"
    )


CLICKS_PER_SEARCH = (
    "clicks per search: clicks / impressions (named `ctr` as in the original design, kept for "
    "compatibility; not search CTR, the share of searches with a click); null without "
    "impressions"
)


class VariantCtr(Report):
    ctr: float | None = Field(description=CLICKS_PER_SEARCH)
    clicks: int
    impressions: int


class CtrReport(Report):
    ctr: float | None = Field(description=CLICKS_PER_SEARCH)
    total_clicks: int
    total_impressions: int
    by_variant: dict[str, VariantCtr]


class RankReport(Report):
    avg_rank: float | None
    median_rank: float | None
    min_rank: int | None
    max_rank: int | None
    clicks_by_rank: dict[str, int] = Field(description='{"1": clicks at rank 1, ...}')
    total_clicks: int


class ResponseTimeReport(Report):
    avg_ms: float | None
    min_ms: float | None
    max_ms: float | None
    p95_ms: float | None = Field(description="95th percentile, linear interpolation")
    count: int = Field(description="searches with a response time")


class UserSummary(Report):
    user_id: str
    days: int
    impressions: int
    clicks: int
    ctr: float | None = Field(description=CLICKS_PER_SEARCH)
    avg_rank: float | None
    response_time: ResponseTimeReport
    by_variant: dict[str, VariantCtr]
    first_seen: datetime | None
    last_seen: datetime | None


class VariantStats(Report):
    impressions: int
    clicks: int
    ctr: float | None = Field(description=CLICKS_PER_SEARCH)
    avg_rank: float | None
    avg_response_ms: float | None
    p95_response_ms: float | None


class VariantComparison(Report):
    days: int
    variants: dict[str, VariantStats]
    winner: str | None = Field(
        description="the experiment's decision, as stats.winner: a variant only when its "
        "improvement in the primary metric is significant and the health checks pass; null "
        "otherwise, however far apart the variants are"
    )
    leader: str | None = Field(
        description="the variant with the strictly most clicks per search (`ctr`); null without "
        "data or on a "
        "tie (what `winner` meant before; it names a leader in A/A tests too)"
    )
    stats: dict[str, Any] | None = Field(
        None,
        description="the experiment's decision: a winner only when its improvement in the "
        "primary metric is significant at the user level and the health checks pass",
    )


class ResetReport(Report):
    status: Literal["success"] = "success"
    deleted_clicks: int
    deleted_impressions: int
