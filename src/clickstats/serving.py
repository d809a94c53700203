"""`clickstats serve --workers N`: N HTTP worker processes over one store.

The process `serve` starts is the **owner**: it opens the DuckDB store (DuckDB lets one
process open the file), serves it to the workers at a Unix socket in a private folder
(store/owner.py), runs retention, and supervises the workers with uvicorn's `Multiprocess`
(it restarts a worker that dies, and on Ctrl-C or SIGTERM stops them all). Each worker runs the
whole app on a `RemoteStore` (store/remote.py) and accepts connections from the one listening
socket the owner bound. Once the workers have stopped, the owner closes the store: its writer
finishes every queued write first.

On MongoDB there is nothing to own: each worker connects to the database itself.

What each process keeps for itself: rate limits (per worker, so an address may get up to N
times its rate when its connections land on different workers), the keys and experiments read
from their documents (re-read when a document changes: at once for experiments, within a second
for keys), and its metrics, which `GET /metrics` adds up over every process
(docs/OPERATIONS.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import socket
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import uvicorn
from fastapi import FastAPI
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors import Multiprocess

from clickstats.settings import Settings

if TYPE_CHECKING:
    from clickstats.tracking import ClickTrackingService

log = logging.getLogger("clickstats.serve")

#: prometheus_client's multiprocess mode: every process writes its metrics under this folder,
#: and a scrape adds them up (must be set before prometheus_client is first imported).
METRICS_DIR = "PROMETHEUS_MULTIPROC_DIR"
#: Seconds a worker waits for its own graceful shutdown once the owner is gone.
ORPHAN_GRACE_S = 10.0


class WorkerFailed(RuntimeError):
    """A worker could not start (its app failed at startup): the server stopped."""


@dataclass(frozen=True)
class Worker:
    """What a worker process needs from the owner: the settings, and where the store is (None:
    each worker opens the store itself, as on MongoDB)."""

    settings: Settings
    owner: str | None


#: The worker this process runs (set in the worker by WorkerConfig.load).
_worker: Worker | None = None


class WorkerConfig(uvicorn.Config):
    """uvicorn's configuration, as pickled to each worker, which builds its app and protocol
    when it loads: the app from `worker`, the protocol with the header deadline (a class made
    at run time cannot be pickled)."""

    def __init__(self, worker: Worker, **options: Any) -> None:
        super().__init__("clickstats.serving:worker_app", factory=True, **options)
        self.worker = worker

    def load(self) -> None:
        from clickstats.limits import header_deadline_protocol

        global _worker
        _worker = self.worker
        super().load()
        self.http_protocol_class = header_deadline_protocol(self.worker.settings.header_timeout)


def worker_app() -> FastAPI:
    """The app of one worker process (uvicorn's factory)."""
    from clickstats.app import create_app
    from clickstats.store.remote import RemoteStore

    worker = _worker
    if worker is None:
        raise RuntimeError("worker_app is called in the worker processes of serve --workers")
    owner = worker.owner
    if owner is None:
        app = create_app(worker.settings)
    else:
        _exit_with(owner)
        app = create_app(worker.settings, store=lambda: RemoteStore(owner))
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[Any]:
        async with inner(app) as state:
            # Another worker may have changed an experiment: look at the document (one stat)
            # on every read, so that a change is seen by the next request, wherever it lands.
            app.state.experiments.reload_seconds = 0.0
            yield state

    app.router.lifespan_context = lifespan
    return app


def _exit_with(owner: str) -> None:
    """End this worker when the owner process ends, however it ends (even killed): a
    connection to it that sees EOF. The worker first shuts down as on SIGTERM. The owner
    stops answering only once its workers have stopped, or when it is gone: then its private
    folder is removed here (a killed owner could not)."""

    def watch() -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(owner)
            while sock.recv(1):
                pass
        except OSError:
            pass
        shutil.rmtree(Path(owner).parent, ignore_errors=True)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(ORPHAN_GRACE_S)
        os._exit(1)

    threading.Thread(target=watch, name="owner-watch", daemon=True).start()


@contextlib.contextmanager
def _private_folder() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="clickstats-serve-"))  # mode 0700
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def serve_workers(settings: Settings, workers: int, **options: Any) -> None:
    """Serve with `workers` worker processes until Ctrl-C or SIGTERM (options: uvicorn's)."""
    with _private_folder() as folder:
        metrics = folder / "metrics"
        metrics.mkdir()
        os.environ[METRICS_DIR] = str(metrics)  # the workers inherit it
        if settings.store.startswith(("mongodb://", "mongodb+srv://")):
            _serve_shared(settings, workers, options)
            return
        _serve_owned(settings, workers, folder / "store.sock", options)


def _open(settings: Settings) -> ClickTrackingService:
    from clickstats.store import open_store
    from clickstats.tracking import ClickTrackingService

    store = open_store(
        settings.store,
        read_timeout_s=settings.read_timeout_s,
        attribution_window=timedelta(hours=settings.attribution_window_hours),
    )
    tracker = ClickTrackingService(store).open()
    store.warm()  # ready for the first large batch
    return tracker


@contextlib.contextmanager
def _pruning(tracker: ClickTrackingService, days: int | None) -> Iterator[None]:
    """Retention in this process, once, not in every worker: on a thread with its own loop."""
    from clickstats.privacy import retention

    if days is None:
        yield
        return
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    async def prune() -> None:
        async with retention(tracker, days):
            await stop.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(prune(),), name="retention")
    thread.start()
    try:
        yield
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join()
        loop.close()


def _serve_shared(settings: Settings, workers: int, options: dict[str, Any]) -> None:
    """MongoDB: each worker connects to the database itself."""
    without_retention = settings.model_copy(update={"retention_days": None})
    if settings.retention_days is None:
        _supervise(Worker(settings, None), workers, options)
        return
    tracker = _open(settings)
    try:
        with _pruning(tracker, settings.retention_days):
            _supervise(Worker(without_retention, None), workers, options)
    finally:
        tracker.close()


def _serve_owned(settings: Settings, workers: int, address: Path, options: dict[str, Any]) -> None:
    from clickstats.store.owner import StoreOwner
    from clickstats.telemetry import observe_writer

    tracker = _open(settings)
    observe_writer(tracker.store)
    owner = StoreOwner(tracker.store, str(address))
    try:
        owner.start()
        worker = Worker(settings.model_copy(update={"retention_days": None}), str(address))
        with _pruning(tracker, settings.retention_days):
            _supervise(worker, workers, options)
    finally:
        owner.stop()
        tracker.close()  # the writer finishes every queued write; then a checkpoint


def _supervise(worker: Worker, workers: int, options: dict[str, Any]) -> None:
    config = WorkerConfig(worker, workers=workers, **options)
    sock = config.bind_socket()
    try:
        supervisor = Multiprocess(config, sockets=[sock])
        supervisor.run()
    finally:
        sock.close()
    if any(p.exitcode == STARTUP_FAILURE for p in supervisor.processes):
        raise WorkerFailed("a worker could not start; its error is above")
