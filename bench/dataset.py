"""(c)'s store: N impressions and N*0.3 clicks over the last 30 days, generated inside DuckDB.

The file gets the app's own schema (DuckDBStore creates it) and is then filled by two
INSERT ... SELECT statements over range(): rows in time order, as real ingestion appends
them. Every attribute of a search (user, variant, query, response time, results) is a hash
of its row number, so that a click can recompute the search it came from without a join.

- users: 200,000, activity skewed (a few heavy users, a long tail); variant by user (A/B).
- queries: 5,000 distinct, Zipf-like; 5% of searches find nothing.
- response time: lognormal, median 40 ms; 1% of impressions have none.
- clicks: spread evenly over the searches, 2 to 60 s after them; rank geometric (p=0.35,
  so about a third on rank 1) up to 50; the product is the one shown at that rank when it
  was among the 10 stored results.
- ids: 32 hex digits, random-looking (md5), like the ids the app generates.

The file is cached under bench/.data/, named by VERSION, a hash of the app's schema and the
size; it is rebuilt when the generator changes (bump VERSION), when the schema changes, or
when it is more than MAX_AGE old, since "the last 30 days" moves on.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb

from clickstats.store.duckdb import SCHEMA, DuckDBStore

VERSION = "v2"  # v2: 200,000 users (issue 5)
DATA_DIR = Path(__file__).resolve().parent / ".data"
SPAN = timedelta(days=30)
MAX_AGE = timedelta(hours=24)
USERS = 200_000
CLICKS_PER_IMPRESSION = 0.3

# Pseudo-random attributes of search number j (BIGINT), the same wherever they are computed.
MACROS = f"""
CREATE OR REPLACE TEMP MACRO u01(j, salt) AS ((hash(j, salt) % 4294967296) + 0.5) / 4294967296.0;
CREATE OR REPLACE TEMP MACRO user_idx(j) AS floor({USERS} * pow(u01(j, 1), 2.5))::BIGINT;
CREATE OR REPLACE TEMP MACRO user_name(j) AS 'user-' || lpad(user_idx(j)::VARCHAR, 6, '0');
CREATE OR REPLACE TEMP MACRO variant(j) AS
    CASE WHEN user_idx(j) % 2 = 0 THEN 'search_v1' ELSE 'search_v2' END;
CREATE OR REPLACE TEMP MACRO session(j, n) AS
    'sess-' || user_idx(j) || '-' || (j * 200 // n);
CREATE OR REPLACE TEMP MACRO query_text(j) AS 'query ' || floor(5000 * pow(u01(j, 2), 3))::BIGINT;
CREATE OR REPLACE TEMP MACRO results_count(j) AS
    CASE WHEN u01(j, 3) < 0.05 THEN 0 ELSE 1 + floor(499 * pow(u01(j, 4), 2))::INTEGER END;
-- Box-Muller: a standard normal from two uniforms; exp(ln 40 + 0.6 z) is lognormal.
CREATE OR REPLACE TEMP MACRO response_ms(j) AS
    CASE WHEN u01(j, 5) < 0.01 THEN NULL ELSE round(exp(ln(40) + 0.6 *
        sqrt(-2 * ln(u01(j, 6))) * cos(2 * pi() * u01(j, 7))), 1) END;
CREATE OR REPLACE TEMP MACRO product(j, position) AS
    'sku-' || (hash(j, position, 8) % 200000);
CREATE OR REPLACE TEMP MACRO search_ts(j, n, start_us) AS
    make_timestamp(start_us + (j::HUGEINT * {int(SPAN.total_seconds() * 1e6)} // n)::BIGINT);
"""

# Columns are named: a column the app adds later (nullable, e.g. interleaving's teams) stays
# NULL, as it does for ordinary A/B traffic.
IMPRESSIONS_SQL = """
INSERT INTO impressions (event_id, search_id, user_id, session_id, query, variant,
    results_count, response_time_ms, results, ts, received_at)
SELECT
    md5('i' || j), md5('s' || j), user_name(j), session(j, $n), query_text(j), variant(j),
    results_count(j), response_ms(j),
    list_slice([product(j, 0), product(j, 1), product(j, 2), product(j, 3), product(j, 4),
                product(j, 5), product(j, 6), product(j, 7), product(j, 8), product(j, 9)],
               1, least(results_count(j), 10)),
    search_ts(j, $n, $start_us),
    search_ts(j, $n, $start_us) + INTERVAL 15 MILLISECOND
FROM range($n) AS t(j)
"""

# No ORDER BY: DuckDB keeps the insertion order of range() (preserve_insertion_order), and
# a sort of every column would cost more than the rest of the generation.
# Click k cites search j = k * n // m: clicks stay in time order and spread evenly.
CLICKS_SQL = """
INSERT INTO click_events (event_id, search_id, user_id, session_id, product_id, rank,
    search_query, variant, response_time_ms, source, ts, received_at)
SELECT
    md5('c' || k), md5('s' || j), user_name(j), session(j, $n), product(j, rank - 1), rank,
    query_text(j), variant(j), response_ms(j),
    CASE WHEN u01(k, 11) < 0.9 THEN 'SEARCH_RESULTS' WHEN u01(k, 11) < 0.97
         THEN 'RECOMMENDATIONS' ELSE 'AUTOCOMPLETE' END,
    ts, ts + INTERVAL 20 MILLISECOND
FROM (
    SELECT k, j,
        least(1 + floor(ln(u01(k, 9)) / ln(0.65)), 50)::INTEGER AS rank,
        search_ts(j, $n, $start_us) + to_microseconds((2e6 + 58e6 * u01(k, 10))::BIGINT) AS ts
    FROM (SELECT k, k * $n // $m AS j FROM range($m) AS t(k))
)
"""


@dataclass(frozen=True)
class Dataset:
    path: Path
    impressions: int
    clicks: int
    generated_at: datetime
    generation_s: float | None  # None when the cached file was used
    sample_user: str  # a user with activity in the last 7 days

    @property
    def size_bytes(self) -> int:
        return self.path.stat().st_size


def ensure_dataset(impressions: int) -> Dataset:
    """The cached store for this size, generated first if missing or stale."""
    clicks = int(impressions * CLICKS_PER_IMPRESSION)
    # The app's schema is part of the key: when it changes, the cached file is rebuilt.
    schema = hashlib.sha256(SCHEMA.encode()).hexdigest()[:8]
    path = DATA_DIR / f"store-{VERSION}-{schema}-{impressions}.duckdb"
    meta_path = path.with_suffix(".json")
    if path.exists() and meta_path.exists():
        meta = json.loads(meta_path.read_text())
        generated_at = datetime.fromisoformat(meta["generated_at"])
        if datetime.now(UTC) - generated_at < MAX_AGE:
            return Dataset(path, impressions, clicks, generated_at, None, meta["sample_user"])
        print(f"  (c) cached store is from {generated_at:%Y-%m-%d %H:%M} UTC: regenerating")
    return _generate(path, meta_path, impressions, clicks)


def _generate(path: Path, meta_path: Path, impressions: int, clicks: int) -> Dataset:
    print(f"  (c) generating {impressions:,} impressions and {clicks:,} clicks ...", flush=True)
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    # Files of this size from older generators or schemas (2.5 GB each at 10M) go too.
    for stale in DATA_DIR.glob(f"store-*-{impressions}.*"):
        stale.unlink()
    started = time.perf_counter()
    store = DuckDBStore(partial)  # the app creates its schema, tables and indexes
    store.open()
    store.close()
    generated_at = datetime.now(UTC)
    params = {
        "n": impressions,
        "m": clicks,
        # Searches end a minute ago, so that their clicks (up to 60 s later) are not ahead.
        "start_us": int((generated_at - SPAN - timedelta(minutes=1)).timestamp() * 1e6),
    }
    # The app's secondary indexes, exactly as its schema creates them. Kept up to date row
    # by row they would more than double the generation time; built afterwards, in bulk,
    # they are the same indexes.
    indexes = [line for line in SCHEMA.splitlines() if line.startswith("CREATE INDEX")]
    with duckdb.connect(str(partial)) as con:
        con.execute("SET enable_progress_bar = false")
        con.execute(MACROS)
        for statement in indexes:
            con.execute(f"DROP INDEX {statement.split()[5]}")
        con.execute(IMPRESSIONS_SQL, {k: params[k] for k in ("n", "start_us")})
        print(f"      impressions: {time.perf_counter() - started:.0f} s", flush=True)
        con.execute(CLICKS_SQL, params)
        print(f"      clicks: {time.perf_counter() - started:.0f} s", flush=True)
        for statement in indexes:
            con.execute(statement)
        con.execute("CHECKPOINT")
        # The median user among those active in the last 7 days: a typical user, not the
        # heaviest one, for the per-user endpoints.
        since = (generated_at - timedelta(days=7)).replace(tzinfo=None)
        users = con.execute(
            "SELECT user_id FROM impressions WHERE ts >= ? GROUP BY user_id "
            "ORDER BY count(*), user_id",
            [since],
        ).fetchall()
        sample_user = users[len(users) // 2][0]
    partial.rename(path)
    elapsed = time.perf_counter() - started
    meta = {
        "version": VERSION,
        "generated_at": generated_at.isoformat(),
        "generation_s": round(elapsed, 1),
        "impressions": impressions,
        "clicks": clicks,
        "sample_user": sample_user,
    }
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    print(f"      done in {elapsed:.0f} s ({path.stat().st_size / 1e9:.2f} GB)", flush=True)
    return Dataset(path, impressions, clicks, generated_at, elapsed, sample_user)
