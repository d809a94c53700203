"""A DuckDB read past read_timeout_s is stopped (ReadTimeout), and only that read: the other
threads' reads, the writes and the database go on."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from clickstats import ClickEvent, SearchImpression
from clickstats.events import event_time_now
from clickstats.store.base import Counts, Filters, ReadTimeout
from clickstats.store.duckdb import DuckDBStore

NOW = event_time_now()
WEEK = Filters(since=NOW - timedelta(days=7))
#: minutes of work for DuckDB: only an interrupt ends it in time
SLOW = "SELECT sum(a.range * b.range) FROM range(10000000) AS a, range(10000000) AS b"


def imp(n: int) -> SearchImpression:
    return SearchImpression(
        event_id=f"i{n}", search_id=f"s{n}", query="q", timestamp=NOW - timedelta(hours=1)
    )


def clk(n: int) -> ClickEvent:
    return ClickEvent(
        event_id=f"c{n}", search_id=f"s{n}", product_id="p", rank=1,
        timestamp=NOW - timedelta(minutes=30),
    )  # fmt: skip


@pytest.fixture
def store(tmp_path: Path) -> Iterator[DuckDBStore]:
    s = DuckDBStore(tmp_path / "events.duckdb", read_timeout_s=0.2)
    s.open()
    yield s
    s.close()


def test_a_slow_read_raises_read_timeout_and_the_store_goes_on(
    store: DuckDBStore, tmp_path: Path
) -> None:
    store.append_sync([imp(1), clk(1)])
    started = time.monotonic()
    with pytest.raises(ReadTimeout) as raised:
        store._query(SLOW, {})  # the path of every read
    assert 0.2 <= time.monotonic() - started < 5
    assert raised.value.limit_s == 0.2
    assert "0.2 s" in str(raised.value)
    # the same thread's cursor takes the next read; writes go on; nothing was invalidated
    assert store.counts(WEEK) == {(): Counts(impressions=1, clicks=1)}
    store.append_sync([imp(2), clk(2)])
    assert store.counts(WEEK) == {(): Counts(impressions=2, clicks=2)}
    store.close()
    again = DuckDBStore(tmp_path / "events.duckdb")
    again.open()
    try:
        assert again.counts(WEEK) == {(): Counts(impressions=2, clicks=2)}
    finally:
        again.close()


def test_the_interrupt_stops_no_other_read_and_no_write(store: DuckDBStore) -> None:
    errors: list[BaseException] = []

    def slow() -> None:
        try:
            store._query(SLOW, {})
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=slow) for _ in range(2)]
    for t in threads:
        t.start()
    n = 0
    deadline = time.monotonic() + 1.0  # past the others' interrupts
    while time.monotonic() < deadline:  # reads and writes meanwhile, all answered
        n += 1
        store.append_sync([imp(n), clk(n)])
        assert store.counts(WEEK) == {(): Counts(impressions=n, clicks=n)}
    for t in threads:
        t.join(timeout=10)
    assert [type(e) for e in errors] == [ReadTimeout, ReadTimeout]
    assert n > 1


def test_no_limit_without_read_timeout(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "events.duckdb")
    store.open()
    try:
        assert store.read_timeout_s is None
        assert store._query("SELECT count(*) FROM range(1000)", {}) == [(1000,)]
    finally:
        store.close()
