"""Implicit relevance judgments per (query, product), by COEC or PBM (clickstats.stats.judgments),
as JSON (the report), CSV, or the judgment import of the OpenSearch Search Relevance Workbench.

The query is as sent, as in the query tables (reports/queries.py): "TV" and "tv" are two
queries. Ratings for the Workbench are the 0-3 grades, as strings with three decimals ("1.500"),
which is what its IMPORT_JUDGMENT parser reads (`Float.parseFloat` of a string)."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from pydantic import Field

from clickstats.events import utcnow
from clickstats.reports.base import Report, cached
from clickstats.stats.judgments import CONFIDENCE, MAX_GRADE, Judgments, Model, judge
from clickstats.store.base import EventStore, Filters
from clickstats.text import plural

#: The output formats: the report, one CSV row per pair, the Workbench's judgment import.
Format = Literal["json", "csv", "srw"]
DEFAULT_MIN_IMPRESSIONS = 10
#: Ranks beyond this are not read (the Workbench's maxRank default is 20 too).
DEFAULT_MAX_RANK = 20
MAX_RANK_LIMIT = 1000
MAX_DAYS = 365


class JudgmentFigures(Report):
    query: str
    product_id: str
    impressions: int = Field(description="searches that showed the product for the query")
    clicks: int = Field(description="of those, the searches with a click on it")
    score: float | None = Field(
        description="COEC: clicks over the clicks expected at the ranks it was shown at; PBM: "
        "the attractiveness (probability of a click once examined); null when no product was "
        "clicked at its ranks"
    )
    low: float | None = Field(description="lower end of the score's interval")
    high: float | None = Field(description="upper end of the score's interval")
    grade: float | None = Field(description=f"the score on a 0-{MAX_GRADE:g} scale")
    grade_low: float | None
    grade_high: float | None
    evidence: float = Field(
        description="COEC: the expected clicks; PBM: the effective examinations (the "
        "binomial trials with the same information about the attractiveness)"
    )


class RankFigures(Report):
    rank: int
    impressions: int = Field(description="products shown at this rank")
    clicks: int = Field(description="of those, the ones clicked")
    ctr: float
    examination: float | None = Field(
        description="PBM: the probability that this rank is looked at (1 for the most looked at)"
    )


class JudgmentsReport(Report):
    model: Model
    days: int
    variant: str | None
    user_id: str | None
    min_impressions: int
    max_rank: int
    confidence: float
    iterations: int = Field(description="PBM: EM iterations run (0 for COEC)")
    converged: bool = Field(description="PBM: whether EM settled before its iteration limit")
    error: str | None = Field(description="why there are no judgments, when there are none")
    ranks: list[RankFigures]
    judgments: list[JudgmentFigures] = Field(
        description="by query, then best grade first (ties by product id)"
    )


@dataclass(frozen=True, slots=True)
class JudgmentsQuery:
    """The searches of the last `days` days (from now), optionally one variant's or user's;
    pairs shown in at least `min_impressions` of them at ranks 1..`max_rank`."""

    days: int = 7
    model: Model = "coec"
    min_impressions: int = DEFAULT_MIN_IMPRESSIONS
    max_rank: int = DEFAULT_MAX_RANK
    variant: str | None = None
    user_id: str | None = None
    now: datetime | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if not 1 <= self.days <= MAX_DAYS:
            raise ValueError(f"days must be between 1 and {MAX_DAYS}, got {self.days}")
        if self.min_impressions < 1:
            raise ValueError(f"min_impressions must be at least 1, got {self.min_impressions}")
        if not 1 <= self.max_rank <= MAX_RANK_LIMIT:
            raise ValueError(
                f"max_rank must be between 1 and {MAX_RANK_LIMIT}, got {self.max_rank}"
            )

    def filters(self) -> Filters:
        since = (self.now or utcnow()) - timedelta(days=self.days)
        return Filters(since=since, user_id=self.user_id, variant=self.variant)


def _order(j: JudgmentFigures) -> tuple[str, float, str]:
    return (j.query, -(j.grade if j.grade is not None else -1.0), j.product_id)


def judgments(store: EventStore, q: JudgmentsQuery) -> JudgmentsReport:
    f = q.filters()
    counts = cached(
        store,
        ("judgments", f, q.min_impressions, q.max_rank),
        lambda: store.judgment_counts(f, q.min_impressions, q.max_rank),
    )
    result: Judgments = judge(counts, q.model)
    figures = [
        JudgmentFigures(
            query=j.query,
            product_id=j.product_id,
            impressions=j.impressions,
            clicks=j.clicks,
            score=j.score,
            low=j.low,
            high=j.high,
            grade=j.grade,
            grade_low=j.grade_low,
            grade_high=j.grade_high,
            evidence=j.evidence,
        )
        for j in result.judgments
    ]
    return JudgmentsReport(
        model=q.model,
        days=q.days,
        variant=q.variant,
        user_id=q.user_id,
        min_impressions=q.min_impressions,
        max_rank=q.max_rank,
        confidence=CONFIDENCE,
        iterations=result.iterations,
        converged=result.converged,
        error=result.error,
        ranks=[
            RankFigures(
                rank=rank,
                impressions=c.impressions,
                clicks=c.clicks,
                ctr=result.rank_ctr[rank],
                examination=result.examination.get(rank),
            )
            for rank, c in sorted(counts.ranks.items())
            if rank in result.rank_ctr
        ],
        judgments=sorted(figures, key=_order),
    )


# -- the other formats -----------------------------------------------------------------------

CSV_COLUMNS = tuple(JudgmentFigures.model_fields)


def to_csv(report: JudgmentsReport) -> str:
    """One row per pair, the columns of JudgmentFigures; an unknown value is empty."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for j in report.judgments:
        writer.writerow(["" if v is None else v for v in (getattr(j, c) for c in CSV_COLUMNS)])
    return out.getvalue()


class SrwRating(Report):
    doc_id: str = Field(serialization_alias="docId")
    rating: str = Field(description="the grade with three decimals, as a string")


class SrwQueryRatings(Report):
    query: str
    ratings: list[SrwRating]


class SrwImport(Report):
    """The body of `PUT /_plugins/_search_relevance/judgments` that imports judgments into the
    OpenSearch Search Relevance Workbench (3.1+); serialise it with `by_alias=True`."""

    name: str
    description: str
    type: Literal["IMPORT_JUDGMENT"] = "IMPORT_JUDGMENT"
    judgment_ratings: list[SrwQueryRatings] = Field(serialization_alias="judgmentRatings")


def srw_name(report: JudgmentsReport) -> str:
    # The Workbench refuses names and descriptions holding " \ < or >.
    return f"clickstats {report.model} judgments, last {plural(report.days, 'day')}"


def to_srw(report: JudgmentsReport, name: str | None = None) -> SrwImport:
    """The judgments with a grade, grouped by query (pairs without one are left out)."""
    by_query: dict[str, list[SrwRating]] = {}
    for j in report.judgments:
        if j.grade is not None:
            by_query.setdefault(j.query, []).append(
                SrwRating(doc_id=j.product_id, rating=f"{j.grade:.3f}")
            )
    description = (
        f"{report.model.upper()} grades on 0-{MAX_GRADE:g} from clicks, products shown in at "
        f"least {plural(report.min_impressions, 'search')} at ranks 1-{report.max_rank}"
    )
    return SrwImport(
        name=name or srw_name(report),
        description=description,
        judgment_ratings=[
            SrwQueryRatings(query=query, ratings=ratings) for query, ratings in by_query.items()
        ],
    )


def render(report: JudgmentsReport, fmt: Format) -> str:
    """The report as text in `fmt` (JSON as the endpoint answers it)."""
    if fmt == "csv":
        return to_csv(report)
    if fmt == "srw":
        return to_srw(report).model_dump_json(by_alias=True, indent=2) + "\n"
    return report.model_dump_json(indent=2) + "\n"
