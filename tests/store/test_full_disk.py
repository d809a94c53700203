"""A full disk, for real: a 4 MB tmpfs filled to the last byte under the store.

The server starts and serves reads; every write is refused with 507 and a message that names
no server path; a refused experiment change leaves memory and the document as they were; and
once space is freed, writes work again without a restart. Mounting needs root (as in the
project's container and CI); elsewhere these tests are skipped with the reason.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import duckdb
import httpx
import pytest
from fastapi.testclient import TestClient

from clickstats.app import create_app
from clickstats.events import ClickEvent, SearchImpression
from clickstats.experiments import open_experiments
from clickstats.settings import Settings
from clickstats.store import open_store
from clickstats.store.duckdb import DISK_FULL, NOT_WRITABLE, SCHEMA
from tests.conftest import LiveServer

SIZE = "4m"
CLICK = {"product_id": "sku-1", "rank": 1, "user_id": "late", "variant": "search_v1"}
NEW = {"name": "layout", "variants": {"grid": 1, "list": 1}}
#: The schema's change since the first release: opening an older file makes it (a write).
TEAMS = "ALTER TABLE impressions ADD COLUMN IF NOT EXISTS teams VARCHAR[];"


def _mount(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["mount", *args], capture_output=True, text=True, check=False)


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    """An empty 4 MB file system of its own, unmounted afterwards."""
    where = tmp_path / "disk"
    where.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount command: a full disk cannot be made here")
    mounted = _mount("-t", "tmpfs", "-o", f"size={SIZE}", "tmpfs", str(where))
    if mounted.returncode != 0:
        pytest.skip(
            f"cannot mount a tmpfs to fill ({mounted.stderr.strip()}): full-disk tests need "
            "root in a container that allows mount"
        )
    try:
        yield where
    finally:
        if subprocess.run(["umount", str(where)], capture_output=True, check=False).returncode:
            subprocess.run(["umount", "-l", str(where)], capture_output=True, check=False)


def fill(disk: Path) -> Path:
    """Take every free byte of the file system; the filler's path (delete it to free)."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        for size in (1 << 20, 1 << 16, 1 << 12, 1 << 9, 1):
            chunk = b"\0" * size
            try:
                while True:
                    os.write(fd, chunk)
            except OSError as exc:
                assert exc.strerror == os.strerror(28)  # ENOSPC: the disk is full
    finally:
        os.close(fd)
    assert shutil.disk_usage(disk).free == 0
    return filler


def stored_store(folder: Path) -> str:
    """A store with 3 searches and 2 clicks, and its experiments document, in `folder`."""
    url = f"duckdb://{folder}/s.duckdb"
    store = open_store(url)
    store.open()
    try:
        searches = [SearchImpression(user_id=f"u{n}", query="tent") for n in range(3)]
        clicks = [
            ClickEvent(user_id=s.user_id, product_id="sku-9", rank=2, search_id=s.search_id)
            for s in searches[:2]
        ]
        store.append_sync([*searches, *clicks])
    finally:
        store.close()
    open_experiments(Settings(store=url))  # writes s.experiments.json with search_ranking
    return url


def assert_no_path(answer: httpx.Response, disk: Path) -> None:
    assert str(disk) not in answer.text and "/tmp" not in answer.text, answer.text


def test_a_server_on_a_full_disk_reads_refuses_writes_and_recovers(disk: Path) -> None:
    url = stored_store(disk)
    document = disk / "s.experiments.json"
    saved = document.read_bytes()
    filler = fill(disk)
    app = create_app(Settings(store=url))
    with TestClient(app) as client:
        # (a) it starts and serves reads
        assert client.get("/health").status_code == 200
        overview = client.get("/analytics/overview")
        assert overview.status_code == 200
        assert client.get("/analytics/ctr").json()["total_impressions"] == 3
        assert client.get("/dashboard").status_code == 200
        assert client.get("/analytics/user/u0").json()["clicks"] == 1

        # (b) an event: 507, said plainly, no path
        answer = client.post("/analytics/log-click", json=CLICK)
        assert answer.status_code == 507
        detail = answer.json()["detail"]
        assert detail.startswith("the disk is full: storing the events failed.")
        assert "Free space on the server, then try again." in detail
        assert_no_path(answer, disk)
        assert client.post("/search/text", json={"query": "tent"}).status_code == 507

        # (c) an experiment change: 507, unchanged in memory and on disk
        answer = client.post("/experiments/search_ranking/stop")
        assert answer.status_code == 507
        assert answer.json()["detail"] == (
            "cannot write s.experiments.json beside the store: the disk is full; "
            "'search_ranking' is unchanged"
        )
        assert_no_path(answer, disk)
        assert client.post("/experiments", json=NEW).status_code == 507
        assert client.get("/experiments/search_ranking").json()["status"] == "running"
        assert client.get("/experiments/layout").status_code == 404
        assert document.read_bytes() == saved
        assert not [p.name for p in disk.iterdir() if p.name.endswith(".tmp")]

        # space again: writes work, without a restart
        filler.unlink()
        assert client.post("/analytics/log-click", json=CLICK).status_code == 200
        assert client.get("/analytics/ctr").json()["total_clicks"] == 3
        assert client.post("/experiments/search_ranking/stop").json()["status"] == "stopped"
        assert json.loads(document.read_text())["experiments"][0]["status"] == "stopped"


def test_a_store_that_cannot_open_for_writing_opens_read_only(disk: Path, tmp_path: Path) -> None:
    """A file from before the `teams` column: opening it adds the column, a write that the
    full disk refuses; the store opens read-only and says so in every refused write."""
    built = tmp_path / "built"
    stored_store(built)
    path = disk / "s.duckdb"
    with duckdb.connect(str(path)) as con:  # the same events, in the old schema
        con.execute(SCHEMA.replace(TEAMS, ""))
        con.execute(f"ATTACH '{built / 's.duckdb'}' AS built (READ_ONLY)")
        con.execute("INSERT INTO impressions SELECT * EXCLUDE (teams) FROM built.impressions")
        con.execute("INSERT INTO click_events SELECT * FROM built.click_events")
        con.execute("DETACH built; CHECKPOINT")
    fill(disk)
    app = create_app(Settings(store=f"duckdb://{path}"))
    with TestClient(app) as client:
        assert app.state.tracker.store.read_only == DISK_FULL
        assert client.get("/analytics/ctr").json()["total_impressions"] == 3
        assert client.get("/analytics/overview").status_code == 200
        answer = client.post("/analytics/log-click", json=CLICK)
        assert answer.status_code == 507
        assert answer.json()["detail"] == (
            "the store is read-only: the disk is full. Reads go on; free space on the server "
            "and restart it to store events again."
        )
        assert client.post("/experiments", json=NEW).status_code == 507


def test_a_read_only_file_system(disk: Path) -> None:
    url = stored_store(disk)
    remounted = _mount("-o", "remount,ro", str(disk))
    assert remounted.returncode == 0, remounted.stderr
    app = create_app(Settings(store=url))
    with TestClient(app) as client:
        assert app.state.tracker.store.read_only == NOT_WRITABLE
        assert client.get("/analytics/ctr").json()["total_impressions"] == 3
        answer = client.post("/analytics/log-click", json=CLICK)
        assert answer.status_code == 507
        assert answer.json()["detail"].startswith("the store is read-only: its file cannot be")
        answer = client.post("/experiments/search_ranking/stop")
        assert answer.status_code == 503  # not a full disk: the write failed otherwise
        assert answer.json()["detail"] == (
            "cannot write s.experiments.json beside the store: Read-only file system; "
            "'search_ranking' is unchanged"
        )
        assert client.get("/experiments/search_ranking").json()["status"] == "running"


def test_a_failed_checkpoint_turns_the_store_read_only_and_reads_go_on(disk: Path) -> None:
    """DuckDB checkpoints after a commit once its log is large (16 MB by default; here at
    once). A checkpoint that the disk refuses makes DuckDB refuse every later query: the store
    opens the file again, read-only, and reads go on."""
    url = stored_store(disk)
    app = create_app(Settings(store=url))
    with TestClient(app) as client:
        app.state.tracker.store._db.execute("SET checkpoint_threshold = '1B'")
        fill(disk)
        answer = client.post("/analytics/log-click", json=CLICK)
        assert answer.status_code == 507
        assert answer.json()["detail"] == (
            "the disk is full: storing the events failed, and the store is read-only until the "
            "server restarts; reads go on. Free space on the server, then restart it."
        )
        assert_no_path(answer, disk)
        assert client.get("/analytics/ctr").status_code == 200
        assert client.get("/analytics/overview").status_code == 200
        assert app.state.tracker.store.read_only == DISK_FULL
        answer = client.post("/analytics/log-click", json=CLICK)
        assert answer.status_code == 507 and "the store is read-only" in answer.text


def test_clickstats_serve_starts_on_a_full_disk(disk: Path) -> None:
    """As a user runs it: the start-up probe (open and close, with a checkpoint) and the
    server's own open both pass on a full disk."""
    stored_store(disk)
    fill(disk)
    server = LiveServer(disk / "s.duckdb").start()  # waits for /health 200
    try:
        ctr = httpx.get(f"{server.url}/analytics/ctr", timeout=10)
        assert ctr.status_code == 200 and ctr.json()["total_impressions"] == 3
        answer = httpx.post(f"{server.url}/analytics/log-click", json=CLICK, timeout=10)
        assert answer.status_code == 507 and answer.json()["detail"].startswith("the disk is")
        assert_no_path(answer, disk)
    finally:
        server.stop()
