"""The few shared fixtures: a store per backend, a service on it, an app, a live server."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from clickstats.app import create_app
from clickstats.settings import Settings
from clickstats.store import EventStore, open_store
from clickstats.store.mongo import mongomock_client, split_uri, uri_options
from clickstats.tracking import ClickTrackingService

#: Every contract and HTTP test runs on each of these. MongoDB's server cannot be installed
#: here: "mongomock" runs the Mongo backend in-process; "mongodb" runs it on the real server
#: that MONGODB_URI names (e.g. mongodb://localhost:27017), when that is set.
MONGODB_URI = os.environ.get("MONGODB_URI")
BACKENDS = ["duckdb", "mongomock", *(["mongodb"] if MONGODB_URI else [])]


def on_database(uri: str, name: str) -> str:
    """The same server (and credentials) as `uri`, another database."""
    scheme, authority, database, query = split_uri(uri)
    if "@" in authority and "authsource" not in uri_options(uri):
        # Credentials are checked against the URI's database unless authSource says otherwise.
        query = "&".join(filter(None, [query, f"authSource={database or 'admin'}"]))
    return f"{scheme}://{authority}/{name}" + (f"?{query}" if query else "")


@contextmanager
def store_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """A store URL on an empty database (a fresh one per test), dropped afterwards."""
    if backend == "duckdb":
        yield f"duckdb://{tmp_path}/events.duckdb"
        return
    name = f"clickstats_test_{uuid.uuid4().hex[:12]}"
    if backend == "mongomock":
        url = f"mongomock://localhost/{name}"
        try:
            yield url
        finally:
            mongomock_client(url).drop_database(name)
    elif backend == "mongodb" and MONGODB_URI:
        import pymongo

        url = on_database(MONGODB_URI, name)
        try:
            yield url
        finally:
            with pymongo.MongoClient(url, serverSelectionTimeoutMS=5000) as client:
                client.drop_database(name)
    else:
        raise ValueError(backend)


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EventStore]:
    with store_url(request.param, tmp_path) as url:
        s = open_store(url)
        s.open()
        yield s
        s.close()


@pytest.fixture
def tracker(store: EventStore) -> ClickTrackingService:
    return ClickTrackingService(store)


@pytest.fixture(params=BACKENDS)
def client(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TestClient]:
    """The app on each backend: the same HTTP tests, the same answers."""
    with store_url(request.param, tmp_path) as url:
        # Events of any age: these tests seed days-old events to test the reports' windows
        # (max_event_age_days has its own tests, tests/api/test_bad_input.py).
        settings = Settings(store=url, allow_reset=True, max_event_age_days=0)
        with TestClient(create_app(settings)) as c:
            yield c


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class LiveServer:
    """`clickstats serve` in a subprocess, as a user runs it."""

    def __init__(self, store_path: Path, *, allow_reset: bool = True) -> None:
        self.store_path = store_path
        self.allow_reset = allow_reset
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> LiveServer:
        args = [
            sys.executable, "-m", "clickstats", "serve", "--workers", "1",
            "--port", str(self.port), "--store", f"duckdb://{self.store_path}",
        ]  # fmt: skip
        # One process: the tests of a live server are about the app (tests/test_workers.py
        # runs the default, N workers over one owner); three processes per start cost minutes.
        if self.allow_reset:
            args.append("--allow-reset")
        env = {k: v for k, v in os.environ.items() if not k.startswith("CLICKSTATS_")}
        self.proc = subprocess.Popen(
            args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.proc.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("server did not answer /health within 30 s")

    def stop(self, *, kill: bool = False) -> None:
        if self.proc is None:
            return
        if kill:
            self.proc.kill()
        else:
            self.proc.terminate()
        self.proc.wait(timeout=30)
        if self.proc.stderr is not None:
            self.proc.stderr.close()
        self.proc = None


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[LiveServer]:
    server = LiveServer(tmp_path / "live.duckdb").start()
    yield server
    server.stop()
