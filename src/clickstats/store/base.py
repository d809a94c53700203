"""The small interface every store implements, and the summaries its aggregates return.

A store appends events durably and reduces them to summaries (counts, histograms,
percentiles) inside the database. Everything else (ratios, medians of histograms,
winners) is computed from those summaries by the service, identically for every backend.
"""

from __future__ import annotations

import abc
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Literal

from clickstats.events import AnyEvent as AnyEvent

#: The event types, in the order a store writes and exports them.
EVENT_TYPES: tuple[str, ...] = ("impression", "click", "conversion", "action")
#: The events of one write, by type (every type present, maybe with no events).
Batch = Mapping[str, Sequence[AnyEvent]]

#: The percentile reported as "p95": linear interpolation between the two closest ranks
#: (numpy's default, DuckDB's quantile_cont), so that every backend can compute it exactly.
P95 = 0.95


class StoreError(RuntimeError):
    """The store cannot be reached or refused a write; the caller should answer 503.
    Messages may reach HTTP answers: they name no server path (see `without_paths`)."""


class ReadTimeout(StoreError):
    """A read took longer than the store's time limit (`read_timeout_s`) and was stopped; the
    caller should answer 504. The message names the limit and the setting."""

    def __init__(self, limit_s: float) -> None:
        self.limit_s = limit_s
        super().__init__(
            f"the query took longer than the read time limit of {limit_s:g} s and was stopped "
            "(raise it with --read-timeout or CLICKSTATS_READ_TIMEOUT_S, or ask for fewer days)"
        )


class StoreFull(StoreError):
    """The store cannot take writes because its disk is full (or, opened read-only, its file
    cannot be written); reads go on. The caller should answer 507."""


#: An absolute path (two or more parts) not inside a URL: "/srv/data/x.duckdb" -> "x.duckdb".
_ABSOLUTE_PATH = re.compile(r"(?<![\w:/.~-])/(?:[^\s\"'/]+/)+([^\s\"'/]*)")


def without_paths(text: str) -> str:
    """`text` with each absolute path cut to its last part (database drivers name files)."""
    return _ABSOLUTE_PATH.sub(r"\1", text)


class AppendStatus(StrEnum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"


@dataclass(frozen=True, slots=True)
class Filters:
    """Which events an aggregate covers: those at or after `since`, optionally one user/variant.
    `currency`: the currency of revenue figures (None: no revenue is counted)."""

    since: datetime
    user_id: str | None = None
    variant: str | None = None
    currency: str | None = None


@dataclass(frozen=True, slots=True)
class Counts:
    impressions: int = 0
    clicks: int = 0


@dataclass(frozen=True, slots=True)
class LatencyStats:
    """Response times of searches (impressions with a response time)."""

    count: int = 0
    mean: float | None = None
    minimum: float | None = None
    maximum: float | None = None
    p95: float | None = None


@dataclass(frozen=True, slots=True)
class Activity:
    first_seen: datetime | None = None
    last_seen: datetime | None = None


@dataclass(frozen=True, slots=True)
class Deleted:
    clicks: int = 0
    impressions: int = 0
    conversions: int = 0
    actions: int = 0


@dataclass(frozen=True, slots=True)
class Selection:
    """The events a deletion removes: every event, narrowed to one user's and/or to those
    whose event time is before `before` (both given: both hold)."""

    user_id: str | None = None
    before: datetime | None = None


#: rank -> number of clicks at that rank
RankHistogram = dict[int, int]
#: searches made by a user in the window -> number of users who made that many
SearchesHistogram = dict[int, int]


@dataclass(frozen=True, slots=True)
class Cap:
    """How a column's per-user values are capped (winsorized) before they are summed: at
    `absolute`, or at the `percentile` (in (0, 1)) of the non-zero per-user values of every user
    of the analysis, all variants pooled (linear interpolation, as quantile_cont). Zeros are left
    out (GrowthBook's "ignore zeros"): most users buy nothing, and over every user the p99 of
    revenue would be 0 whenever fewer than 1% buy, capping all revenue away."""

    absolute: float | None = None
    percentile: float | None = None


@dataclass(frozen=True, slots=True)
class SumOptions:
    """What user_sums computes beyond the plain sums.

    - `currency`: the currency of the revenue facts (conversions in other currencies add
      nothing); None: no revenue is counted.
    - `caps`: (column, Cap) pairs: those columns' per-user values are capped first.
    - `pre_days`, `pre_columns`: CUPED's covariates. A user's pre-exposure value of a column is
      its sum over the user's searches (of any variant) in the `pre_days` days before their
      first search in the window, with the clicks and conversions linked to those searches;
      capped as the column is."""

    currency: str | None = None
    caps: tuple[tuple[str, Cap], ...] = ()
    pre_days: int = 0
    pre_columns: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PreSums:
    """CUPED's covariate of one column over the users of one variant: the users with a search
    in their pre-exposure window, and over all users the sums of the pre-exposure value, of its
    square, and of its product with the user's value in the window (0 without history)."""

    users: int
    sum: float
    squares: float
    products: float


@dataclass(frozen=True, slots=True)
class UserSums:
    """Over the users of one variant: how many, and the sums of their per-user columns
    (`metrics.columns()`, each a sum over the user's searches), of those columns squared, and
    of the products of the metrics' column pairs (`metrics.pairs()`). With SumOptions: `caps`,
    the cap applied to each capped column (its sums are of capped values), and `pre`, each
    pre-exposure column's sums."""

    users: int
    sums: dict[str, float]
    squares: dict[str, float]
    products: dict[tuple[str, str], float]
    caps: Mapping[str, float] = field(default_factory=dict)
    pre: Mapping[str, PreSums] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PreferenceSums:
    """Interleaving outcomes over units (users, or users within a query): per unit the searches
    won by team A, by team B, and tied (searches without a clicked position are left out)."""

    units: int = 0
    wins_a: float = 0.0
    wins_b: float = 0.0
    ties: float = 0.0
    wins_a2: float = 0.0
    wins_b2: float = 0.0
    wins_ab: float = 0.0


@dataclass(frozen=True, slots=True)
class SearchTotals:
    """Searches (impressions) of a group, with the clicks linked to them by search_id (clicks
    in the window, whoever and whichever variant they carry): the distinct users among them,
    and each of `metrics.columns(dashboard=True)` summed over them (the columns of the dashboard's
    metrics and the search counts; integer columns as int)."""

    users: int = 0
    sums: Mapping[str, int | float] = field(default_factory=dict)

    @property
    def searches(self) -> int:
        return int(self.sums.get("searches", 0))

    def __getitem__(self, column: str) -> int | float:
        """A column's sum (0 for an empty group)."""
        return self.sums.get(column, 0)


@dataclass(frozen=True, slots=True)
class ConversionTotals:
    """Conversions of one group (of one currency): how many, of which purchases and add to carts;
    the purchases' revenue (the sum of their values) and orders (purchases with a value); the
    product units purchased; and how many of the conversions count for a stored search."""

    conversions: int = 0
    purchases: int = 0
    add_to_carts: int = 0
    revenue: float = 0.0
    orders: int = 0
    units: int = 0
    attributed: int = 0


@dataclass(frozen=True, slots=True)
class ActionTotal:
    """The actions (ActionEvent) of one name: how many, by how many users, naming how many
    distinct products."""

    name: str
    events: int
    users: int
    products: int


@dataclass(frozen=True, slots=True)
class JudgmentCount:
    """One product at one rank for one query: the searches (impressions with stored `results`)
    that showed it there, and how many of them have a click on it (at most one per search,
    linked by search_id, whatever rank the click reports). The query is as sent, as in the
    query tables; the rank is its first position (1-based) in the search's results."""

    query: str
    product_id: str
    rank: int
    impressions: int
    clicks: int


@dataclass(frozen=True, slots=True)
class JudgmentCounts:
    """What judgments are computed from: `rows` for the (query, product) pairs shown in at least
    the asked number of searches, ordered by (query, product_id, rank); and `ranks`, per rank
    over every shown product of every search (kept pairs or not), the impressions and clicks
    from which each rank's click-through rate comes."""

    rows: tuple[JudgmentCount, ...] = ()
    ranks: Mapping[int, Counts] = field(default_factory=dict)


def ranked_actions(totals: Iterable[ActionTotal]) -> list[ActionTotal]:
    """Most events first, then by name: the order action_totals answers in."""
    return sorted(totals, key=lambda t: (-t.events, t.name))


#: What conversion_totals groups by, besides the currency: the variant of the search a conversion
#: is attributed to ("" when it is attributed to none), the day of the conversion in a time zone,
#: its subtype.
ConversionKey = Literal["variant", "day", "subtype"]


#: What an interleaved search is credited by: its clicks, or its attributed purchases.
Outcome = Literal["clicks", "purchases"]


#: What search_totals groups by: the variant, the day in a time zone, the query as sent.
GroupKey = Literal["variant", "day", "query"]
#: What the click, latency and rank aggregates group by: nothing (one group, the key ()) or
#: the variant (a click's variant resolved as described in EventStore).
ByVariant = tuple[()] | tuple[Literal["variant"]]
#: A group's key: its values in the order of the grouping's keys (() without keys).
Key = tuple[str, ...]
#: How a ranked search_totals orders its groups (largest first, groups with 0 left out).
TotalsOrder = Literal["searches", "zero_results", "abandoned", "revenue", "unconverted_clicks"]


@dataclass(frozen=True, slots=True)
class Grouping:
    """The groups of a search_totals query. Keys come back as strings in the order of `by`;
    a day as 'YYYY-MM-DD' in the IANA time zone `tz`. With `order` and `top`, only the `top`
    groups with the most `order` (ties by key), those with none left out."""

    by: tuple[GroupKey, ...] = ()
    tz: str = "UTC"
    order: TotalsOrder | None = None
    top: int | None = None


@dataclass(frozen=True, slots=True)
class ProductClicks:
    product_id: str
    clicks: int
    users: int  # distinct users who clicked it
    rank_sum: int  # sum of the ranks it was clicked at


#: Lower edges of the response-time histogram's buckets, in ms; the last is open-ended.
LATENCY_EDGES_MS: tuple[float, ...] = (
    0, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000,
)  # fmt: skip

#: One exported event: the fields of its model (ClickEvent or SearchImpression, told apart by
#: "type"), timestamps as aware UTC datetimes. Feeding it back to the model rebuilds the event.
EventRow = dict[str, Any]


#: How long after a click a conversion without a search_id is attributed to the click's search.
DEFAULT_ATTRIBUTION_WINDOW = timedelta(hours=24)


class EventStore(abc.ABC):
    """Durable event storage with a handful of aggregate queries."""

    #: short backend name shown by /health
    kind: str
    #: a conversion without a search_id counts for the search of the user's latest click on one
    #: of its products at most this long before it (docs/CLICK_TRACKING.md, "Attribution")
    attribution_window: timedelta = DEFAULT_ATTRIBUTION_WINDOW
    #: the time limit of one read, in seconds (None: none); a read past it raises ReadTimeout
    read_timeout_s: float | None = None
    #: why the store takes no writes (e.g. "the disk is full"; writes raise StoreFull), None
    #: while it does
    read_only: str | None = None
    #: whether reads take each search's clicks from the store's per-search rollup, kept at
    #: ingestion (docs/SCALING.md, "Rollups"), instead of from every click: the same answers;
    #: turned off, reads recompute from the events (what the tests compare the rollup with)
    use_rollup: bool = False

    @abc.abstractmethod
    def open(self) -> None:
        """Connect, create the schema if needed, start background writers."""

    @abc.abstractmethod
    def close(self) -> None:
        """Flush pending writes and release the database."""

    @abc.abstractmethod
    async def append(self, events: Sequence[AnyEvent]) -> list[AppendStatus]:
        """Store events durably; one status per event, in order. Raises StoreError."""

    @abc.abstractmethod
    def append_sync(self, events: Sequence[AnyEvent]) -> list[AppendStatus]:
        """`append` for synchronous callers (the Python API, imports, tests)."""

    @abc.abstractmethod
    def reset(self) -> Deleted:
        """Delete every event."""

    @abc.abstractmethod
    def delete_user(self, user_id: str) -> Deleted:
        """Delete every click and impression of one user (a request to erase their data).
        Clicks of other users on that user's searches stay; they no longer find the search."""

    @abc.abstractmethod
    def delete_before(self, cutoff: datetime) -> Deleted:
        """Delete every event whose event time is before `cutoff` (retention)."""

    def warm(self) -> None:
        """Get ready, in the background, for the first large batch (a server calls it once
        open; short-lived commands do not). Nothing by default."""
        return None

    def generation(self) -> int | None:
        """A number that changes whenever stored data may have changed, for exact caching of
        aggregates; None when other processes may write too (no caching)."""
        return None

    @abc.abstractmethod
    def ping(self) -> None:
        """Raise StoreError unless the store answers."""

    # A click's variant, wherever clicks are grouped or filtered by variant, is the one it
    # was sent with; else that of the search (impression) its search_id cites, stored before
    # or after it; else DEFAULT_VARIANT. Only the clicks sent without a variant are looked up.

    # Every aggregate takes the window (and filters) and, where it groups, a `by` of group
    # keys; it answers {key: summary}. Without keys the one group () is always there (empty
    # summaries for an empty window); with them, only groups that have events.

    @abc.abstractmethod
    def counts(self, f: Filters, by: ByVariant = ()) -> dict[Key, Counts]:
        """Impressions and clicks."""

    @abc.abstractmethod
    def rank_histogram(self, f: Filters, by: ByVariant = ()) -> dict[Key, RankHistogram]:
        """Clicks per rank."""

    @abc.abstractmethod
    def latency(self, f: Filters, by: ByVariant = ()) -> dict[Key, LatencyStats]:
        """Response-time summary over impressions (each search once)."""

    @abc.abstractmethod
    def activity(self, f: Filters) -> Activity:
        """Earliest and latest event (click or impression)."""

    @abc.abstractmethod
    def preference_sums(
        self,
        since: datetime,
        label: str,
        top_queries: int | None = None,
        outcome: Outcome = "clicks",
    ) -> dict[Key, PreferenceSums]:
        """Interleaved searches (impressions with `teams`, variant `label`) since `since`,
        credited by their clicked positions (each distinct position to its team), or with
        outcome "purchases" by the products of their attributed purchases (each distinct
        product to the team of its first position in the search's results). Without `top_queries`: summed per user, the key ();
        with it: per query (units: a user within a query), keys (query,), for the `top_queries`
        queries with the most searches with clicks, most first."""

    @abc.abstractmethod
    def user_sums(
        self,
        since: datetime,
        variants: Sequence[str],
        max_searches: int | None = None,
        options: SumOptions | None = None,
    ) -> dict[str, UserSums]:
        """Per variant (of `variants`): sums over users of the metrics' columns (compiled from
        `clickstats.metrics`), their squares and the products of `metrics.pairs()`, in one
        aggregate query. With `max_searches`, users with more searches than that in the window
        (outliers, e.g. bots) are left out, of the sums and of `users` alike. `options`: the
        revenue currency, caps and CUPED's pre-exposure sums (SumOptions)."""

    @abc.abstractmethod
    def searches_per_user(
        self, since: datetime, variants: Sequence[str]
    ) -> dict[str, SearchesHistogram]:
        """Per variant (of `variants`): how many users made each number of searches in the
        window (the users of user_sums); no clicks are read."""

    def search_totals(self, f: Filters, grouping: Grouping) -> dict[Key, SearchTotals]:
        """Searches in the window with their linked clicks, the metrics' columns summed per
        group (one group, the key (), without grouping keys); ordered as the grouping asks,
        else by key."""
        return self.search_totals_many(f, [grouping])[0]

    @abc.abstractmethod
    def search_totals_many(
        self, f: Filters, groupings: Sequence[Grouping]
    ) -> list[dict[Key, SearchTotals]]:
        """search_totals for each grouping, in one pass over the searches."""

    @abc.abstractmethod
    def conversion_totals(
        self, f: Filters, by: tuple[ConversionKey, ...] = (), tz: str = "UTC"
    ) -> dict[Key, ConversionTotals]:
        """Conversions at or after f.since (one user's with f.user_id; those attributed to a
        search of f.variant with it), grouped by `by` and then always by currency (the last
        part of every key; "" for conversions without one), so that amounts in different
        currencies are never added. A day is 'YYYY-MM-DD' in the IANA time zone `tz`. Only
        groups with conversions, ordered by key."""

    @abc.abstractmethod
    def action_totals(self, f: Filters) -> list[ActionTotal]:
        """Actions at or after f.since (one user's with f.user_id; with f.variant, those whose
        search_id names a search of that variant), per name: most events first, then by name."""

    @abc.abstractmethod
    def judgment_counts(
        self, f: Filters, min_impressions: int = 1, max_rank: int = 20
    ) -> JudgmentCounts:
        """Searches at or after f.since (one user's with f.user_id; of f.variant with it) that
        stored their `results`: each product shown at ranks 1..`max_rank` counted per (query,
        product, rank), with its clicks in the window linked by search_id (JudgmentCount); the
        pairs shown in fewer than `min_impressions` searches left out of `rows`, not of
        `ranks`."""

    @abc.abstractmethod
    def top_products(self, f: Filters, top: int) -> list[ProductClicks]:
        """The `top` most clicked product ids (ties by id)."""

    @abc.abstractmethod
    def latency_histogram(self, f: Filters) -> dict[float, int]:
        """Searches with a response time, counted per bucket of LATENCY_EDGES_MS (lower edge
        -> count; every bucket present, empty ones as 0)."""

    @abc.abstractmethod
    def export(
        self, since: datetime | None = None, batch_rows: int = 10_000
    ) -> Iterator[list[EventRow]]:
        """Every stored event at or after `since` (all without it): impressions, clicks,
        conversions, then actions, each table in (timestamp, event_id) order, in lists of at most `batch_rows`."""
