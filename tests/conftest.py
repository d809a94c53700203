"""The few shared fixtures: a store per backend, a service on it, an app, a live server."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from clickstats.app import create_app
from clickstats.settings import Settings
from clickstats.store import EventStore
from clickstats.store.duckdb import DuckDBStore
from clickstats.tracking import ClickTrackingService

BACKENDS = ["duckdb"]


def make_store(backend: str, tmp_path: Path) -> EventStore:
    if backend == "duckdb":
        return DuckDBStore(tmp_path / "events.duckdb")
    raise ValueError(backend)


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EventStore]:
    s = make_store(request.param, tmp_path)
    s.open()
    yield s
    s.close()


@pytest.fixture
def tracker(store: EventStore) -> ClickTrackingService:
    return ClickTrackingService(store)


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(store=f"duckdb://{tmp_path}/api.duckdb", allow_reset=True)
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
            sys.executable, "-m", "clickstats", "serve",
            "--port", str(self.port), "--store", f"duckdb://{self.store_path}",
        ]  # fmt: skip
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
