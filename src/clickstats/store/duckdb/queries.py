"""The SQL of the store's reads, and the metric registry compiled into it.

The metrics' columns (`clickstats.metrics`) are compiled at query time, so that a metric added
to the registry is in the next query's answer. Each column is summed over a group's searches,
each search an impression `i` with its clicks in the window, linked by search_id and reduced to
one row `c` per search first (`c.n` is NULL for a search without a click). A search's first
click is its earliest (the lower rank on a tie).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from clickstats import metrics
from clickstats.events import DEFAULT_VARIANT, utcnow
from clickstats.metrics import AllOf, Compare, Divide, Expr, Minus, Num, Of, When
from clickstats.store.base import (
    P95,
    Filters,
    Grouping,
    Key,
    LatencyStats,
    PreferenceSums,
    SearchTotals,
    SumOptions,
    TotalsOrder,
)
from clickstats.store.duckdb import rollup as rollups
from clickstats.store.fields import naive_utc
from clickstats.timezones import utc_offsets

# -- the registry, compiled -----------------------------------------------------------------

#: Each fact of a search as SQL over the impression `i`, its reduced clicks `c` and its reduced
#: attributed conversions `v`.
FACTS: dict[metrics.Fact, str] = {
    "clicks": "coalesce(c.n, 0)",
    "first_rank": "c.first_rank",
    "rank_sum": "coalesce(c.rank_sum, 0)",
    "results_count": "i.results_count",
    "ms_to_first_click": "(epoch_ms(c.first_ts) - epoch_ms(i.ts))",
    **{fact: f"coalesce(v.{fact}, 0)" for fact in sorted(metrics.CONVERSION_FACTS)},
}


def condition(expr: Compare | AllOf) -> str:
    """A condition as a SQL boolean (NULL, which no filter passes, where a fact is null)."""
    match expr:
        case Compare(left, op, right):
            return f"({value(left)} {op} {value(right)})"
        case AllOf(conditions):
            return "(" + " AND ".join(condition(c) for c in conditions) + ")"


def value(expr: Expr) -> str:
    """A per-search value as SQL."""
    match expr:
        case Of(fact):
            return FACTS[fact]
        case Num(number):
            return str(number) if isinstance(number, int) else f"{number!r}::DOUBLE"
        case Compare() | AllOf():
            return f"(CASE WHEN {condition(expr)} THEN 1 ELSE 0 END)"
        case Divide(left, right):
            return f"({value(left)}::DOUBLE / {value(right)})"
        case Minus(left, right):
            return f"({value(left)} - {value(right)})"
        case When(cond, then):
            return f"(CASE WHEN {condition(cond)} THEN {value(then)} ELSE 0 END)"


def total(expr: Expr, summed: str = "sum") -> str:
    """The sum of a per-search value over the rows of a group, as SQL (0 for no rows), with the
    aggregate `summed` (fsum, Kahan's, for fractions: see column_sums)."""
    match expr:
        case Num(1):
            return "count(*)"
        case When(cond, Num(1)):
            return f"count(*) FILTER (WHERE {condition(cond)})"
        case When(cond, then):
            return f"coalesce({summed}({value(then)}) FILTER (WHERE {condition(cond)}), 0)"
    return f"coalesce({summed}({value(expr)}), 0)"


def column_sums(*, dashboard: bool = False, per_user: bool = False) -> dict[str, str]:
    """Each of `metrics.columns(dashboard=)` summed over a group's searches, typed: BIGINT for
    integer columns, DOUBLE for the others. A per-user column is 1 in a group of one user's
    searches (`per_user`), else the group's distinct users."""
    out = {}
    for name in metrics.columns(dashboard=dashboard):
        column = metrics.COLUMNS[name]
        if column.per_user:
            sql = "1" if per_user else "count(DISTINCT i.user_id)"
        else:  # fractions by Kahan's sum: the same figure whatever order DuckDB adds rows in
            sql = total(column.value, "sum" if column.integer else "fsum")
        out[name] = f"({sql})::{'BIGINT' if column.integer else 'DOUBLE'}"
    return out


def reads_conversions(columns: list[str]) -> bool:
    return bool(metrics.needed_facts(columns) & metrics.CONVERSION_FACTS)


#: The conversions at or after a time (the parameter named), each with the search it is
#: attributed to: its own search_id, else the search of the user's latest click (ties: the
#: greater search id) on one of its products at most $window_ms before it (inclusive).
ATTRIBUTED = """
    SELECT cv.*, coalesce(cv.search_id, inferred.search_id) AS attributed_to
    FROM (SELECT * FROM conversions WHERE ts >= {since}) AS cv
    LEFT JOIN (
        SELECT cv.event_id, arg_max(k.search_id, (k.ts, k.search_id)) AS search_id
        FROM conversions AS cv JOIN click_events AS k
            ON k.user_id = cv.user_id AND list_contains(cv.product_ids, k.product_id)
            AND k.ts <= cv.ts AND k.ts >= cv.ts - to_milliseconds($window_ms)
        WHERE cv.ts >= {since} AND cv.search_id IS NULL AND k.search_id IS NOT NULL
            AND k.ts >= {since} - to_milliseconds($window_ms)
        GROUP BY cv.event_id
    ) AS inferred USING (event_id)
"""


def attributed(since: str = "$since") -> str:
    return ATTRIBUTED.format(since=since)


def converted(since: str = "$since") -> str:
    """The attributed conversions reduced to one row per search (the `v` of the facts); revenue
    and orders in $currency only."""
    purchase = "subtype = 'purchase'"
    in_currency = f"{purchase} AND currency = $currency AND value IS NOT NULL"
    return f"""SELECT attributed_to AS search_id, count(*) AS conversions,
            count(*) FILTER (WHERE subtype = 'add_to_cart') AS add_to_carts,
            count(*) FILTER (WHERE {purchase}) AS purchases,
            coalesce(fsum(value) FILTER (WHERE {in_currency}), 0) AS revenue,
            count(*) FILTER (WHERE {in_currency}) AS orders,
            coalesce(sum(coalesce(list_sum(quantities), len(product_ids)))
                FILTER (WHERE {purchase}), 0) AS units
        FROM ({attributed(since)}) WHERE attributed_to IS NOT NULL
        GROUP BY attributed_to"""


def quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def conversion_totals_sql(f: Filters, by: Sequence[str], tz: str) -> str:
    """conversion_totals: the attributed conversions (as `i`, for local_day), each with the
    variant of its search, grouped by `by` and the currency."""
    keys = {
        "variant": "coalesce(s.variant, '')",
        "subtype": "i.subtype",
        "day": f"strftime({local_day(tz, f.since)}, '%Y-%m-%d')",
    }
    selected = [keys[k] for k in by] + ["coalesce(i.currency, '')"]
    where = []
    if f.user_id is not None:
        where.append("i.user_id = $user")
    if f.variant is not None:
        where.append("s.variant = $variant")
    purchase = "i.subtype = 'purchase'"
    return f"""
        WITH a AS ({attributed()}),
        s AS (
            SELECT search_id, min(variant) AS variant FROM impressions
            WHERE search_id IN (SELECT attributed_to FROM a) GROUP BY search_id
        )
        SELECT {", ".join(f"{k} AS k{n}" for n, k in enumerate(selected))},
            count(*), count(*) FILTER (WHERE {purchase}),
            count(*) FILTER (WHERE i.subtype = 'add_to_cart'),
            coalesce(fsum(i.value) FILTER (WHERE {purchase}), 0)::DOUBLE,
            count(*) FILTER (WHERE {purchase} AND i.value IS NOT NULL),
            coalesce(sum(coalesce(list_sum(i.quantities), len(i.product_ids)))
                FILTER (WHERE {purchase}), 0)::BIGINT,
            count(s.search_id)
        FROM a AS i LEFT JOIN s ON s.search_id = i.attributed_to
        {"WHERE " + " AND ".join(where) if where else ""}
        GROUP BY ALL ORDER BY ALL
    """


def linked(
    columns: list[str],
    also: str = "",
    since: str = "$since",
    *,
    rollup: bool,
    recompute_at: frozenset[str] = frozenset(),
) -> str:
    """The clicks in the window reduced to one row per search (the `c` of the facts): from the
    per-search rollup when the store keeps one (`rollup`; `recompute_at`: the window starts, as
    SQL parameters, at which some search must be recomputed: rollup.NEEDS_RECOMPUTE), else from
    the clicks, with the first click's rank and time only when a column reads them (arg_min is
    the costly part)."""
    if rollup:
        return rollups.linked_rows(since, also, recompute=since in recompute_at)
    facts = metrics.needed_facts(columns)
    first = [
        *([", arg_min(rank, (ts, rank)) AS first_rank"] if "first_rank" in facts else []),
        *([", min(ts) AS first_ts"] if "ms_to_first_click" in facts else []),
    ]
    return f"""SELECT search_id, count(*) AS n, sum(rank) AS rank_sum{"".join(first)}
        FROM click_events WHERE ts >= {since} AND search_id IS NOT NULL {also}
        GROUP BY search_id"""


def reads_clicks(columns: list[str]) -> bool:
    return bool(metrics.needed_facts(columns) - metrics.CONVERSION_FACTS - {"results_count"})


def joins(columns: list[str], c: str = "c", v: str = "v", *, always_c: bool = True) -> str:
    """The LEFT JOINs of a search `i` to its reduced clicks and conversions (as `c` and `v`):
    the clicks always (unless not `always_c` and no column reads them), the conversions when
    a column reads them."""
    out = f"LEFT JOIN {c} AS c USING (search_id)" if always_c or reads_clicks(columns) else ""
    return out + (f" LEFT JOIN {v} AS v USING (search_id)" if reads_conversions(columns) else "")


def with_linked(
    columns: list[str],
    since: str = "$since",
    suffix: str = "",
    *,
    always_c: bool = True,
    rollup: bool,
    recompute_at: frozenset[str] = frozenset(),
) -> str:
    """The CTEs `c` (and `v` when read) for `columns`, named with `suffix`."""
    parts = []
    if always_c or reads_clicks(columns):
        sql = linked(columns, since=since, rollup=rollup, recompute_at=recompute_at)
        parts.append(f"c{suffix} AS ({sql})")
    if reads_conversions(columns):
        parts.append(f"v{suffix} AS ({converted(since)})")
    return ",\n".join(parts)


@dataclass(frozen=True, slots=True)
class UserSumsQuery:
    """user_sums as one query: its SQL and how to read its row per variant."""

    sql: str
    columns: list[str]
    pairs: list[tuple[str, str]]
    caps: list[str]  # the capped columns, whose caps follow the sums in each row
    pre: list[str]  # the CUPED columns, whose pre-exposure sums come last


def user_sums_query(
    options: SumOptions,
    *,
    outliers: bool = False,
    rollup: bool = True,
    recompute_at: frozenset[str] = frozenset({"$since", "$pre_since"}),
) -> UserSumsQuery:
    """The query of user_sums. `outliers`: users with more than $max_searches searches are left
    out (before caps are taken). Caps: a percentile over every kept user of the variants, or an
    absolute value; each user's capped value is least(value, cap). CUPED: each user's searches
    in the $pre_days days before their first in the window, summed the same way and capped
    at the same cap."""
    sums = column_sums(per_user=True)
    names = list(sums)
    pairs = metrics.pairs()
    caps = dict(options.caps)
    capped = [name for name in names if name in caps]
    pre = [name for name in options.pre_columns if name in sums]
    per_user = ",\n".join(f"({sql})::DOUBLE AS {quoted(name)}" for name, sql in sums.items())
    cap_values = []
    for n, name in enumerate(capped):
        cap = caps[name]
        value = (
            f"quantile_cont({quoted(name)}, {float(cap.percentile)!r}) "
            f"FILTER (WHERE {quoted(name)} > 0)"
            if cap.percentile is not None
            else f"any_value({float(cap.absolute or 0)!r}::DOUBLE)"
        )
        cap_values.append(f"{value} AS cap{n}")
    cap_of = {name: f"caps.cap{n}" for n, name in enumerate(capped)}
    kept = [
        f"least(u.{quoted(n)}, {cap_of[n]}) AS {quoted(n)}" if n in cap_of else f"u.{quoted(n)}"
        for n in names
    ]
    cols = [f"u.{quoted(name)}" for name in names]
    # Kahan's sums over users: the same figures whatever order the users are added in
    totals = [f"fsum({c})" for c in cols] + [f"fsum({c} * {c})" for c in cols]
    totals += [f"fsum(u.{quoted(a)} * u.{quoted(b)})" for a, b in pairs]
    totals += [f"any_value({cap_of[n]})" for n in capped]
    ctes = [with_linked(names, rollup=rollup, recompute_at=recompute_at)]
    pre_join = ""
    if pre:
        pre_values = ", ".join(
            (
                f"least(({sums[name]})::DOUBLE, any_value({cap_of[name]}))"
                if name in cap_of
                else f"({sums[name]})::DOUBLE"
            )
            + f" AS pre{n}"
            for n, name in enumerate(pre)
        )
        # only what the CUPED columns read (revenue: the conversions, not the clicks)
        linked_pre = with_linked(
            pre, "$pre_since", "_pre", always_c=False, rollup=rollup, recompute_at=recompute_at
        )
        if linked_pre:
            ctes.append(linked_pre)
        ctes.append(f"""pre AS (
            SELECT u.variant, u.user_id, {pre_values}
            FROM kept AS u CROSS JOIN caps
            JOIN impressions AS i ON i.user_id = u.user_id
                AND i.ts >= u.first_ts - to_days($pre_days) AND i.ts < u.first_ts
            {joins(pre, "c_pre", "v_pre", always_c=False)}
            GROUP BY u.variant, u.user_id
        )""")
        pre_join = "LEFT JOIN pre AS p USING (variant, user_id)"
        for n, name in enumerate(pre):
            totals += [
                "count(p.user_id)",
                f"coalesce(fsum(p.pre{n}), 0)",
                f"coalesce(fsum(p.pre{n} * p.pre{n}), 0)",
                f"coalesce(fsum(u.{quoted(name)} * p.pre{n}), 0)",
            ]
    caps_cte = f"SELECT {', '.join(cap_values)} FROM kept" if cap_values else "SELECT 1 AS one"
    sql = f"""
        WITH {ctes[0]},
        per_user AS (
            SELECT i.variant, i.user_id, min(i.ts) AS first_ts, {per_user}
            FROM impressions AS i {joins(names)}
            WHERE i.ts >= $since AND list_contains($variants, i.variant)
            GROUP BY i.variant, i.user_id
        ),
        kept AS (
            SELECT * FROM per_user {'WHERE "searches" <= $max_searches' if outliers else ""}
        ),
        caps AS ({caps_cte}),
        {"".join(f"{cte}," for cte in ctes[1:])}
        capped AS (
            SELECT u.variant, u.user_id, {", ".join(kept)} FROM kept AS u CROSS JOIN caps
        )
        SELECT u.variant, count(*), {", ".join(totals)}
        FROM capped AS u {pre_join} CROSS JOIN caps
        GROUP BY u.variant
    """
    return UserSumsQuery(sql, names, pairs, capped, pre)


SEARCHES_PER_USER = """
    SELECT variant, searches, count(*) FROM (
        SELECT variant, count(*) AS searches FROM impressions
        WHERE ts >= $since AND list_contains($variants, variant)
        GROUP BY variant, user_id
    ) GROUP BY ALL
"""

# -- search totals --------------------------------------------------------------------------

#: search_totals' group keys as SQL over the impression `i`.
_GROUP_KEYS = {"variant": "i.variant", "query": "i.query"}


class SearchTotalsQuery:
    """One scan and one join for several groupings: GROUPING SETS over every grouping's keys,
    then each grouping's rows (ranked ones ordered and cut) from that one result."""

    def __init__(
        self,
        f: Filters,
        groupings: Sequence[Grouping],
        window_ms: int,
        *,
        rollup: bool = True,
        recompute: bool = True,
    ) -> None:
        self.groupings = groupings
        recompute_starts = frozenset({"$since"} if recompute else ())
        scope = Scope(f)
        self.params: dict[str, Any] = dict(scope.params)
        # Each distinct key expression is one column a<n>; each grouping is a set of them.
        keys: dict[str, str] = {}
        self.sets: list[list[str]] = []
        for g in groupings:
            aliases = []
            for key in g.by:
                sql = local_day(g.tz, f.since) if key == "day" else _GROUP_KEYS[key]
                aliases.append(keys.setdefault(sql, f"a{len(keys)}"))
            self.sets.append(aliases)
        self.keys = list(keys.values())
        sums = column_sums(dashboard=True)
        self.columns = list(sums)
        conversions = reads_conversions(self.columns)
        if conversions:
            self.params |= {"currency": f.currency or "", "window_ms": window_ms}
        # GROUPING() has a bit per column, the first the highest, set where it is not a key.
        flags = [
            sum(1 << (len(self.keys) - 1 - n) for n, a in enumerate(self.keys) if a not in aliases)
            for aliases in self.sets
        ]
        parts = []
        for n, (g, aliases) in enumerate(zip(groupings, self.sets, strict=True)):
            where = f'flags = {flags[n]} AND "searches" > 0'  # no row for an empty window
            if g.order is not None:
                where += f" AND {quoted(g.order)} > 0"
            order = [*([f"{quoted(g.order)} DESC"] if g.order else []), *aliases]
            part = f"SELECT {n} AS grouping, * FROM g WHERE {where}"
            if g.top is not None:  # a top-k, cheaper than numbering every group
                part += f" ORDER BY {', '.join(order)} LIMIT {int(g.top)}"
            parts.append(f"({part})")
        # One user's searches are few: link only their clicks, found through those searches.
        also = "AND search_id IN (SELECT search_id FROM i)" if f.user_id is not None else ""
        selected = "".join(f"{sql} AS {alias}, " for sql, alias in keys.items())
        grouping_flags = f"GROUPING({', '.join(self.keys)})" if self.keys else "0"
        # Each set once: a set named twice would give each of its groups twice.
        distinct = dict.fromkeys(f"({', '.join(sorted(aliases))})" for aliases in self.sets)
        summed = ", ".join(f"{sql} AS {quoted(name)}" for name, sql in sums.items())
        self.sql = f"""
            {scope.with_clause("impressions")}{"," if f.user_id else "WITH"}
            i AS (
                SELECT search_id, user_id, variant, query, results_count, ts
                FROM {scope.rows("impressions")}
            ),
            c AS ({linked(self.columns, also, rollup=rollup, recompute_at=recompute_starts)}),
            {f"v AS ({converted()})," if conversions else ""}
            g AS MATERIALIZED (
                SELECT {selected} {grouping_flags} AS flags,
                    count(DISTINCT i.user_id) AS users, {summed}
                FROM i {joins(self.columns)}
                GROUP BY GROUPING SETS ({", ".join(distinct)})
            )
            {" UNION ALL ".join(parts)}
        """

    def answers(self, rows: Sequence[Sequence[Any]]) -> list[dict[Key, SearchTotals]]:
        out: list[list[tuple[Key, SearchTotals]]] = [[] for _ in self.groupings]
        k = len(self.keys)
        for row in rows:
            n, values = row[0], dict(zip(self.keys, row[1 : k + 1], strict=True))
            group = tuple(str(values[a]) for a in self.sets[n])
            sums = dict(zip(self.columns, row[k + 3 :], strict=True))
            out[n].append((group, SearchTotals(users=row[k + 2], sums=sums)))
        # UNION ALL promises no order: each grouping's rows are put in theirs here.
        return [
            dict(sorted(r, key=_sort_key(g.order)))
            for g, r in zip(self.groupings, out, strict=True)
        ]


def _sort_key(
    order: TotalsOrder | None,
) -> Callable[[tuple[Key, SearchTotals]], tuple[Any, ...]]:
    """search_totals' order: the most `order` first, then by key."""
    if order is None:
        return lambda item: item[0]
    return lambda item: (-item[1][order], item[0])


def local_day(tz: str, since: datetime) -> str:
    """The local date of i.ts (UTC wall-clock time) in `tz`, as SQL: the zone's UTC offsets
    over the window, from zoneinfo, are added by stretches. About twice as fast as DuckDB's
    ICU conversion of every row (AT TIME ZONE), and the same answer."""
    stretches = utc_offsets(tz, since, utcnow() + timedelta(days=1))
    offset = str(stretches[0][1])
    for start, seconds in stretches[1:]:
        instant = naive_utc(start).isoformat(sep=" ")
        offset = f"CASE WHEN i.ts >= TIMESTAMP '{instant}' THEN {seconds} ELSE {offset} END"
    return f"(i.ts + to_seconds({offset}))::DATE"


# -- latency, preference ----------------------------------------------------------------------

LATENCY = (
    "count(response_time_ms), avg(response_time_ms), min(response_time_ms), "
    f"max(response_time_ms), quantile_cont(response_time_ms, {P95})"
)


def latency(row: Sequence[Any]) -> LatencyStats:
    count, mean, minimum, maximum, p95 = row
    return LatencyStats(count=count, mean=mean, minimum=minimum, maximum=maximum, p95=p95)


# Interleaved searches with at least one clicked position (a position clicked twice counts
# once), each credited to the teams of its clicked positions; then per unit the searches A
# won, B won, and ties.
_PREFERENCE = """
    WITH {credited}, s AS (
        SELECT any_value(i.user_id) AS user_id, any_value(i.query) AS query,
               count(*) FILTER (WHERE i.teams[c.rank] = 'A') AS a,
               count(*) FILTER (WHERE i.teams[c.rank] = 'B') AS b
        FROM impressions AS i JOIN c ON c.search_id = i.search_id
        WHERE i.ts >= $since AND i.variant = $label AND i.teams IS NOT NULL
        GROUP BY i.search_id
        HAVING a + b > 0
    ), u AS (
        SELECT {unit}, count(*) FILTER (WHERE a > b) AS wa, count(*) FILTER (WHERE b > a) AS wb,
               count(*) FILTER (WHERE a = b) AS t
        FROM s GROUP BY {unit}
    )
    SELECT {outer} count(*), sum(wa), sum(wb), sum(t), sum(wa * wa), sum(wb * wb), sum(wa * wb)
    FROM u {tail}
"""
_CLICKED = """c AS (
        SELECT DISTINCT search_id, rank FROM click_events
        WHERE ts >= $since AND search_id IS NOT NULL
    )"""
# The purchases' products instead: each distinct product of a search's attributed purchases at
# the position of its first appearance in the search's results (none: not credited).
_PURCHASED = f"""a AS ({attributed()}), c AS (
        SELECT DISTINCT p.search_id, list_position(i.results, p.product_id) AS rank
        FROM (
            SELECT DISTINCT attributed_to AS search_id, unnest(product_ids) AS product_id
            FROM a WHERE subtype = 'purchase' AND attributed_to IS NOT NULL
        ) AS p JOIN impressions AS i ON i.search_id = p.search_id
        WHERE i.ts >= $since AND i.variant = $label AND i.teams IS NOT NULL
            AND list_position(i.results, p.product_id) IS NOT NULL
    )"""


def preference_sql(outcome: str, by_query: bool) -> str:
    return _PREFERENCE.format(
        credited=_PURCHASED if outcome == "purchases" else _CLICKED,
        unit="user_id, query" if by_query else "user_id",
        outer="query," if by_query else "",
        tail="GROUP BY query ORDER BY sum(wa + wb + t) DESC, query LIMIT $top" if by_query else "",
    )


def preference(row: Sequence[Any]) -> PreferenceSums:
    units, *sums = row
    return PreferenceSums(units, *(float(v or 0) for v in sums))


# -- the rows a Filters selects -----------------------------------------------------------------

#: Days before a window in which the searches of its clicks are looked for first.
NEAR_DAYS = 1


class Scope:
    """The rows a Filters selects, as SQL.

    DuckDB uses the user_id index only for a lone equality filter, and would merge the time
    window into the same scan. So one user's rows are fetched first, through the index, in a
    materialized CTE (which the optimizer does not merge), and the window applies to those.
    """

    def __init__(self, f: Filters) -> None:
        self.user = f.user_id
        self.variant = f.variant
        self.params: dict[str, Any] = {"since": naive_utc(f.since)}
        conditions = ["ts >= $since"]
        if f.variant is not None:
            conditions.append("variant = $variant")
            self.params["variant"] = f.variant
        if f.user_id is not None:
            self.params["user"] = f.user_id
        self.condition = " AND ".join(conditions)

    def with_clause(self, *tables: str) -> str:
        if self.user is None:
            return ""
        ctes = (
            f"{t}_of_user AS MATERIALIZED (SELECT * FROM {t} WHERE user_id = $user)" for t in tables
        )
        return "WITH " + ", ".join(ctes)

    def rows(self, table: str) -> str:
        source = f"{table}_of_user" if self.user is not None else table
        return f"(SELECT * FROM {source} WHERE {self.condition})"

    def clicks(self, *, by_variant: bool = False) -> str:
        """The clicks in scope; when a report groups or filters them by variant, each with its
        variant resolved: as sent, else that of the search it cites, else the default.

        The clicks sent with a variant pass as they are; only those sent without one are
        joined to their searches. Those are looked for where they nearly always are first (the
        user's own searches, through the user index; else the searches from a day before the
        window on, which the time order of the table lets DuckDB read alone), and in the whole
        table only for the search ids still not found (a search that was never stored)."""
        if not by_variant and self.variant is None:
            return self.rows("click_events")
        source = "click_events_of_user" if self.user is not None else "click_events"
        sent = "" if self.variant is None else " AND variant = $variant"
        resolved = f"coalesce(cited.variant, '{DEFAULT_VARIANT}')"
        keep = "" if self.variant is None else f"WHERE {resolved} = $variant"
        unsent = f"(SELECT * FROM {source} WHERE ts >= $since AND variant IS NULL)"
        # Materialized, so that the user's searches come through the index (see the class).
        near = (
            "mine AS MATERIALIZED (SELECT * FROM impressions WHERE user_id = $user),"
            if self.user is not None
            else "mine AS (SELECT * FROM impressions "
            f"WHERE ts >= $since - INTERVAL {NEAR_DAYS} DAY),"
        )
        return f"""(
            SELECT * FROM {source} WHERE ts >= $since AND variant IS NOT NULL{sent}
            UNION ALL
            SELECT c.* REPLACE ({resolved} AS variant)
            FROM {unsent} AS c
            LEFT JOIN (
                WITH {near}
                ids AS (SELECT DISTINCT search_id FROM {unsent} WHERE search_id NOT NULL),
                near AS MATERIALIZED (
                    SELECT search_id, min(variant) AS variant FROM mine
                    WHERE search_id IN (SELECT search_id FROM ids) GROUP BY search_id
                )
                SELECT * FROM near
                UNION ALL
                SELECT search_id, min(variant) FROM impressions
                WHERE search_id IN (SELECT search_id FROM ids EXCEPT SELECT search_id FROM near)
                GROUP BY search_id
            ) AS cited ON c.search_id = cited.search_id
            {keep}
        )"""


# -- implicit relevance judgments ---------------------------------------------------------------


def judgment_counts_sql(f: Filters) -> str:
    """judgment_counts as one query: rows ("pair", query, product, rank, impressions, clicks)
    for the kept pairs, then ("rank", NULL, NULL, rank, impressions, clicks) per rank. A search
    counts once (duplicate impressions of one search_id are one search), a product once per
    search at its first position, and its clicks at most once per search."""
    where = ["ts >= $since", "results IS NOT NULL"]
    if f.variant is not None:
        where.append("variant = $variant")
    if f.user_id is not None:
        where.append("user_id = $user")
    return f"""
    WITH shown AS (
        SELECT i.search_id, any_value(i.query) AS query, r.product_id, min(r.rank) AS rank
        FROM (SELECT search_id, query, results FROM impressions WHERE {" AND ".join(where)}) i,
            unnest(i.results) WITH ORDINALITY AS r(product_id, rank)
        WHERE r.rank <= $max_rank
        GROUP BY i.search_id, r.product_id
    ),
    clicked AS (
        SELECT DISTINCT search_id, product_id FROM click_events
        WHERE ts >= $since AND search_id IN (SELECT search_id FROM shown)
    ),
    counted AS (
        SELECT s.query, s.product_id, s.rank, count(*) AS impressions,
            count(k.search_id) AS clicks
        FROM shown s LEFT JOIN clicked k USING (search_id, product_id)
        GROUP BY s.query, s.product_id, s.rank
    )
    SELECT * FROM (
        SELECT 'pair' AS kind, query, product_id, rank, impressions, clicks FROM counted
        QUALIFY sum(impressions) OVER (PARTITION BY query, product_id) >= $min_impressions
    )
    UNION ALL
    SELECT 'rank', NULL, NULL, rank, sum(impressions)::BIGINT, sum(clicks)::BIGINT
    FROM counted GROUP BY rank
    ORDER BY kind, query, product_id, rank
    """
