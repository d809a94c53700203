"""The per-search click rollup: each search's clicks summed once, at ingestion, not at every read.

`search_clicks` has one row per search_id that clicks cite: how many clicks (n), the sum of
their ranks, the time and rank of the first (earliest; the lower rank on a tie) and the time of
the last. The writer merges each batch's new clicks into it in the transaction that stores them,
and a deletion recomputes the rows of the searches whose clicks it removed, so the table always
equals its recomputation from `click_events` (`REBUILD`), which the tests check.

A read that wants the clicks in its window (ts >= since) takes a row as it is when its first
click is in the window, leaves it out when its last click is before, and recomputes from
`click_events` only the few searches whose clicks straddle the window's start (`linked_rows`).
"""

from __future__ import annotations

import duckdb

CREATE = """
CREATE TABLE IF NOT EXISTS search_clicks (
    search_id  VARCHAR PRIMARY KEY,
    n          BIGINT NOT NULL,     -- clicks citing the search
    rank_sum   BIGINT NOT NULL,
    first_ts   TIMESTAMP NOT NULL,  -- the earliest click
    first_rank INTEGER NOT NULL,    -- its rank (the lower on a tie)
    last_ts    TIMESTAMP NOT NULL   -- the latest click
);
"""

#: The rollup's rows of the clicks in `source` (a table or subquery with search_id, rank, ts).
AGGREGATE = """
    SELECT search_id, count(*)::BIGINT AS n, sum(rank)::BIGINT AS rank_sum,
        min(ts) AS first_ts, arg_min(rank, (ts, rank)) AS first_rank, max(ts) AS last_ts
    FROM {source} WHERE search_id IS NOT NULL GROUP BY search_id
"""

#: Merges the rollup rows of new clicks (never seen before: each click is merged once).
MERGE = f"""
    INSERT INTO search_clicks {AGGREGATE}
    ON CONFLICT (search_id) DO UPDATE SET
        n = search_clicks.n + EXCLUDED.n,
        rank_sum = search_clicks.rank_sum + EXCLUDED.rank_sum,
        first_rank = CASE
            WHEN EXCLUDED.first_ts < search_clicks.first_ts
                OR (EXCLUDED.first_ts = search_clicks.first_ts
                    AND EXCLUDED.first_rank < search_clicks.first_rank)
            THEN EXCLUDED.first_rank ELSE search_clicks.first_rank END,
        first_ts = least(search_clicks.first_ts, EXCLUDED.first_ts),
        last_ts = greatest(search_clicks.last_ts, EXCLUDED.last_ts)
"""

#: The whole rollup, recomputed from the stored clicks.
REBUILD = f"""
    BEGIN;
    DELETE FROM search_clicks;
    INSERT INTO search_clicks {AGGREGATE.format(source="click_events")};
    COMMIT;
"""

#: The rows of the searches in the temporary table `touched` (search_id), recomputed.
RECOMPUTE = f"""
    DELETE FROM search_clicks WHERE search_id IN (SELECT search_id FROM touched);
    INSERT INTO search_clicks {
    AGGREGATE.format(
        source="(SELECT * FROM click_events WHERE search_id IN (SELECT search_id FROM touched))"
    )
};
"""


def merge_sql(source: str) -> str:
    return MERGE.format(source=source)


def ensure(con: duckdb.DuckDBPyConnection) -> None:
    """Create the rollup if needed, and rebuild it when it does not account for every stored
    click that cites a search: a store from before the rollup, or clicks written around the
    writer (a bulk load with SQL). Counting both sides takes milliseconds."""
    con.execute(CREATE)
    if not usable(con):
        con.execute(REBUILD)


#: Whether some search's clicks straddle the time $at (one before it, one at or after).
STRADDLED = """SELECT EXISTS (
    SELECT 1 FROM search_clicks WHERE first_ts < $at AND last_ts >= $at
)"""


def linked_rows(since: str, also: str = "", *, straddled: bool = True) -> str:
    """The rollup's rows for the clicks at or after `since` (SQL), one per search, as the raw
    aggregate of those clicks would give them (search_id, n, rank_sum, first_rank, first_ts);
    `also`: a further condition on search_id (e.g. "AND search_id IN (...)"). `straddled`:
    whether some search's clicks straddle `since` (STRADDLED); those are recomputed from the
    clicks. Without any, the read is a plain filtered scan of the rollup, which DuckDB plans
    better than the union (a quarter faster at 10M searches)."""
    rows = f"""SELECT search_id, n, rank_sum, first_rank, first_ts FROM search_clicks
        WHERE first_ts >= {since} {also}"""
    if not straddled:
        return rows
    straddling = (
        "SELECT search_id FROM search_clicks "
        f"WHERE first_ts < {since} AND last_ts >= {since} {also}"
    )
    return f"""{rows}
        UNION ALL
        SELECT search_id, count(*)::BIGINT, sum(rank)::BIGINT, arg_min(rank, (ts, rank)),
            min(ts)
        FROM click_events WHERE ts >= {since} AND search_id IN ({straddling})
        GROUP BY search_id"""


def usable(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether a store opened read-only has a complete rollup (else reads go to the clicks)."""
    try:
        row = con.execute(
            "SELECT (SELECT count(*) FROM click_events WHERE search_id IS NOT NULL), "
            "(SELECT coalesce(sum(n), 0) FROM search_clicks)"
        ).fetchone()
    except duckdb.CatalogException:  # a store from before the rollup
        return False
    return row is not None and row[0] == row[1]
