"""`clickstats report`, `export` and `judgments` beside a running `clickstats serve` that holds
the DuckDB store: through its HTTP API, given with --server or found by themselves."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner, Result

from clickstats.cli import main
from clickstats.keys import create_key
from clickstats.state import open_state
from tests.api.test_export_endpoint import events
from tests.conftest import LiveServer

#: Events sent: two days of 4 searches, each with a click and a view, and a purchase a day
#: (1 and 3 days old: a server takes events of the last 7 days).
SENT = 26
#: No setting of the test's environment leaks into the commands.
CLEAN = {"CLICKSTATS_SERVER": None, "CLICKSTATS_KEY": None, "CLICKSTATS_STORE": None}


def run(*args: str, **env: str) -> Result:
    return CliRunner().invoke(main, list(args), env={**CLEAN, **env})


def filled(server: LiveServer, headers: dict[str, str] | None = None) -> LiveServer:
    batch = {"events": events(1) + events(3)}
    answer = httpx.post(f"{server.url}/analytics/events", json=batch, headers=headers)
    assert answer.json()["accepted"] == SENT, answer.text
    return server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = LiveServer(tmp_path_factory.mktemp("live") / "live.duckdb").start()
    try:
        yield filled(live)
    finally:
        live.stop()


def api(server: LiveServer, path: str, **params: Any) -> Any:
    answer = httpx.get(f"{server.url}{path}", params=params, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer


def test_report_through_the_server_prints_what_the_store_gives(tmp_path: Path) -> None:
    live = LiveServer(tmp_path / "report.duckdb").start()
    try:
        filled(live)
        searches = api(live, "/analytics/overview", days=30).json()["totals"]["searches"]
        remote = run("report", "--server", live.url, "--days", "30")
    finally:
        live.stop()
    assert remote.exit_code == 0, remote.output
    assert f"│ total   │ {searches:>8} │" in remote.stdout and searches == 8
    local = run("report", "--store", f"duckdb://{live.store_path}", "--days", "30")
    assert local.exit_code == 0, local.output
    assert remote.stdout == local.stdout  # every table, every number, every verdict


def test_export_through_the_server_writes_every_event(server: LiveServer, tmp_path: Path) -> None:
    out = tmp_path / "f.jsonl"
    done = run("export", "--server", server.url, "-o", str(out))
    assert done.exit_code == 0, done.output
    assert f"from {server.url} to {out} (jsonl)" in done.output
    lines = out.read_bytes().splitlines()
    searches = api(server, "/analytics/overview", days=30).json()["totals"]["searches"]
    assert len(lines) == SENT and sum(b'"type":"impression"' in line for line in lines) == searches
    assert out.read_bytes() == api(server, "/analytics/export").content
    assert not list(tmp_path.glob(".*partial"))  # written beside, then renamed

    parquet = tmp_path / "f.data"
    done = run("export", "--server", server.url, "-o", str(parquet), "--format", "parquet")
    assert done.exit_code == 0, done.output
    table = pq.read_table(parquet)
    assert table.num_rows == SENT
    assert table.column("event_id").to_pylist() == [
        line.split(b'"event_id":"')[1].split(b'"')[0].decode() for line in lines
    ]

    recent = tmp_path / "recent.csv"
    assert run("export", "--server", server.url, "-o", str(recent), "--since", "2d").exit_code == 0
    assert len(recent.read_text().splitlines()) == 1 + SENT // 2  # the header, a day's events


def test_judgments_through_the_server(server: LiveServer, tmp_path: Path) -> None:
    args = ["--days", "30", "--min-impressions", "1"]
    done = run("judgments", "--server", server.url, *args, "--format", "csv")
    assert done.exit_code == 0, done.output
    served = api(server, "/analytics/judgments", days=30, min_impressions=1, format="csv").text
    assert done.stdout == served and served.count("\n") == 4  # the header, p1, p2, p3
    assert "3 judgments (coec) for 1 query" in done.output


def test_a_held_store_is_read_through_the_server_that_holds_it(
    server: LiveServer, tmp_path: Path
) -> None:
    store = f"duckdb://{server.store_path}"
    out = tmp_path / "found.jsonl"
    done = run("export", "--store", store, "-o", str(out))
    assert done.exit_code == 0, done.output
    assert f"the store is held by the server at {server.url}: reading through it" in done.output
    assert len(out.read_bytes().splitlines()) == SENT
    report = run("report", "--store", store, "--days", "30")
    assert report.exit_code == 0 and "│ total   │        8 │" in report.stdout, report.output


def test_a_held_store_without_a_known_server_is_the_clear_error(
    server: LiveServer, tmp_path: Path
) -> None:
    record = server.store_path.with_name("live.server.json")
    saved = record.read_bytes()
    store, out = f"duckdb://{server.store_path}", str(tmp_path / "x.jsonl")
    try:
        record.unlink()  # e.g. held by another process than `clickstats serve`
        missing = run("export", "--store", store, "-o", out)
        # a record left by another process (a server stopped, then one started on the port)
        record.write_text(json.dumps({"url": server.url, "pid": os.getpid()}))
        stale = run("export", "--store", store, "-o", out)
    finally:
        record.write_bytes(saved)
    for done in (missing, stale):
        assert done.exit_code == 1 and "Traceback" not in done.output
        assert "Could not set lock" in done.output and "--server URL" in done.output
        assert "reading through it" not in done.output


def test_an_unreachable_server_is_one_line(tmp_path: Path) -> None:
    done = run("report", "--server", "http://127.0.0.1:9")
    assert done.exit_code == 1 and "Traceback" not in done.output
    assert "Error: cannot read from http://127.0.0.1:9" in done.output


def test_keys_a_missing_or_wrong_key_is_a_clean_error(tmp_path: Path) -> None:
    path = tmp_path / "keys.duckdb"
    state = open_state(f"duckdb://{path}")
    read = create_key(state, scope="read", name="reader")[1]
    ingest = create_key(state, scope="ingest", name="sender")[1]
    live = LiveServer(path).start()
    try:
        filled(live, {"Authorization": f"Bearer {ingest}"})
        for key in (None, "cs_read_" + "0" * 32, ingest):
            args = ["report", "--server", live.url, *(["--key", key] if key else [])]
            done = run(*args)
            assert done.exit_code == 1 and "Traceback" not in done.output, done.output
            assert "Give a read key: --key KEY or CLICKSTATS_KEY" in done.output
            assert ("answered 403" if key == ingest else "answered 401") in done.output
        keyed = run("export", "--server", live.url, "-o", str(tmp_path / "k.jsonl"), "--key", read)
        assert keyed.exit_code == 0, keyed.output
        by_env = run("judgments", "--server", live.url, "--days", "30", CLICKSTATS_KEY=read)
        assert by_env.exit_code == 0 and '"judgments"' in by_env.stdout, by_env.output
        found = run("report", "--store", f"duckdb://{path}", "--days", "30", CLICKSTATS_KEY=read)
        assert found.exit_code == 0 and "│ total   │        8 │" in found.stdout, found.output
    finally:
        live.stop()
