"""`clickstats serve --workers 2`: real processes on a real DuckDB file. Two HTTP workers, one
process owning the store; every acknowledged event stored once; state seen by every worker;
live reads beside it; a clean stop."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from clickstats.cli import main
from clickstats.store.base import Filters
from clickstats.store.duckdb import DuckDBStore
from tests.conftest import free_port

CLICKS = 120  # single events, 32 at a time
BATCHES = 10  # of 10 impressions each


@dataclass
class Served:
    proc: subprocess.Popen[bytes]
    url: str
    store: Path

    def children(self) -> list[int]:
        return _children(self.proc.pid)


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    store = tmp_path_factory.mktemp("workers") / "w.duckdb"
    port = free_port()
    args = [sys.executable, "-m", "clickstats", "serve", "--workers", "2", "--port", str(port)]
    args += ["--store", f"duckdb://{store}", "--rate-limit", "0"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLICKSTATS_")}
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]  # type: ignore[union-attr]
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "no answer from /health within 30 s"
        time.sleep(0.1)
    served = Served(proc, url, store)
    try:
        yield served
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()


def _click(i: int) -> dict[str, object]:
    return {"event_id": f"click-{i}", "product_id": f"p{i % 7}", "rank": 1 + i % 5,
            "search_query": "shoes", "search_id": f"s-{i % 40}"}  # fmt: skip


def _impressions(b: int) -> dict[str, object]:
    return {"events": [
        {"type": "impression", "event_id": f"imp-{b}-{i}", "search_id": f"s-{b}-{i}",
         "user_id": f"u{b}", "query": "shoes", "results_count": 3}
        for i in range(10)
    ]}  # fmt: skip


async def _post_all(url: str) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=32)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
        # Every click twice: the second copy is a duplicate, whichever worker takes it.
        clicks = [client.post("/analytics/log-click", json=_click(i % CLICKS))
                  for i in range(2 * CLICKS)]  # fmt: skip
        batches = [client.post("/analytics/events", json=_impressions(b)) for b in range(BATCHES)]
        return list(await asyncio.gather(*clicks, *batches))


def test_concurrent_events_are_each_stored_once(served: Served) -> None:
    assert len(served.children()) >= 2  # the workers (and multiprocessing's tracker)
    answers = asyncio.run(_post_all(served.url))
    assert [a.status_code for a in answers] == [200] * len(answers)
    clicks = [a.json() for a in answers[: 2 * CLICKS]]
    assert sum(not c["duplicate"] for c in clicks) == CLICKS
    assert {c["event_id"] for c in clicks if not c["duplicate"]} == {
        f"click-{i}" for i in range(CLICKS)
    }
    assert all(a.json()["accepted"] == 10 for a in answers[2 * CLICKS :])
    ctr = httpx.get(f"{served.url}/analytics/ctr", params={"days": 1}).json()
    assert (ctr["total_clicks"], ctr["total_impressions"]) == (CLICKS, 10 * BATCHES)
    metrics = httpx.get(f"{served.url}/metrics").text  # every process's figures, added up
    accepted = (
        'clickstats_events_total{outcome="accepted",route="/analytics/log-click",type="click"}'
    )
    assert f"{accepted} {float(CLICKS)}" in metrics
    assert "clickstats_writer_commit_seconds_count" in metrics


def test_an_experiment_made_through_one_worker_is_seen_by_every_request(served: Served) -> None:
    experiment = {"name": "w_test", "variants": {"a": 0.5, "b": 0.5}}
    made = httpx.post(f"{served.url}/experiments", json=experiment)
    assert made.status_code in (200, 201), made.text
    for _ in range(20):  # a new connection each time: any worker may take it
        answer = httpx.get(f"{served.url}/experiments/w_test")
        assert answer.status_code == 200 and answer.json()["variants"] == {"a": 0.5, "b": 0.5}


def test_reads_and_live_commands_beside_the_server(served: Served, tmp_path: Path) -> None:
    overview = httpx.get(f"{served.url}/analytics/overview", params={"days": 1})
    assert overview.status_code == 200 and overview.json()["totals"]["searches"] == 10 * BATCHES
    env = {"CLICKSTATS_SERVER": None, "CLICKSTATS_KEY": None, "CLICKSTATS_STORE": None}
    store = f"duckdb://{served.store}"
    out = tmp_path / "all.jsonl"
    done = CliRunner().invoke(main, ["export", "--store", store, "-o", str(out)], env=env)
    assert done.exit_code == 0 and f"from {served.url}" in done.output, done.output
    assert len(out.read_bytes().splitlines()) == CLICKS + 10 * BATCHES
    report = CliRunner().invoke(main, ["report", "--store", store, "--days", "1"], env=env)
    assert report.exit_code == 0, report.output
    assert served.url in report.output


def test_sigterm_stops_every_process_and_keeps_every_event(served: Served) -> None:
    workers = served.children()
    served.proc.send_signal(signal.SIGTERM)
    assert served.proc.wait(timeout=20) == 0
    deadline = time.monotonic() + 5
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [pid for pid in workers if _alive(pid)]
    assert not served.store.with_name("w.server.json").exists()  # the address record went
    store = DuckDBStore(served.store)
    store.open()  # the lock is free
    try:
        counts = store.counts(Filters(since=datetime.now(UTC) - timedelta(days=1)))[()]
    finally:
        store.close()
    assert (counts.clicks, counts.impressions) == (CLICKS, 10 * BATCHES)


def test_a_remote_store_answers_as_the_store_it_reaches(tmp_path: Path) -> None:
    """In one process: RemoteStore -> StoreOwner -> DuckDBStore, against the store itself."""
    from clickstats.events import ClickEvent, SearchImpression
    from clickstats.store.base import ReadTimeout, StoreFull
    from clickstats.store.owner import StoreOwner
    from clickstats.store.remote import RemoteStore, decode_error, encode_error

    store = DuckDBStore(tmp_path / "r.duckdb")
    store.open()
    owner = StoreOwner(store, str(tmp_path / "owner.sock"))
    owner.start()
    remote = RemoteStore(str(tmp_path / "owner.sock"))
    try:
        remote.open()
        assert (remote.kind, remote.path) == ("duckdb", store.path)
        before = remote.generation()
        searches = [
            SearchImpression(query="q", search_id=f"s{i}", event_id=f"i{i}") for i in range(5)
        ]
        assert remote.append_sync(searches) == ["accepted"] * 5
        assert remote.generation() != before

        async def clicks() -> list[list[str]]:
            sent = [[ClickEvent(product_id="p", rank=1, search_id=f"s{i}", event_id=f"c{i}")]
                    for i in [0, 1, 2, 2]]  # fmt: skip
            return [list(s) for s in await asyncio.gather(*(remote.append(e) for e in sent))]

        assert asyncio.run(clicks()) == [["accepted"]] * 3 + [["duplicate"]]
        since = Filters(since=datetime.now(UTC) - timedelta(days=1))
        assert remote.counts(since, ("variant",)) == store.counts(since, ("variant",))
        assert remote.latency_histogram(since) == store.latency_histogram(since)
        assert list(remote.export(batch_rows=2)) == list(store.export(batch_rows=2))
        with pytest.raises(LookupError, match="Not/AZone"):  # the owner's error, raised here
            remote.conversion_totals(since, ("day",), tz="Not/AZone")
    finally:
        remote.close()
        owner.stop()
        store.close()
    for error in (ReadTimeout(2.5), StoreFull("the disk is full")):
        again = decode_error(encode_error(error))
        assert type(again) is type(error) and str(again) == str(error)
