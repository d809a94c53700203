"""create_app(settings) builds the whole service; nothing connects at import time."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from clickstats import __version__
from clickstats.api import algolia as algolia_api
from clickstats.api import analytics, dashboard, errors, experiments, health, privacy, search, web
from clickstats.api import prometheus as prometheus_api
from clickstats.api import ubi as ubi_api
from clickstats.api.auth import CorsMiddleware
from clickstats.api.export import router as export_router
from clickstats.api.headers import SecurityHeaders
from clickstats.experiments import open_experiments
from clickstats.keys import KeyRing
from clickstats.limits import BodyTimeout, RateLimit
from clickstats.privacy import retention
from clickstats.settings import Settings
from clickstats.state import open_state
from clickstats.store import EventStore, StoreError, open_store
from clickstats.store.base import StoreFull, without_paths
from clickstats.telemetry import RequestTimer, Telemetry
from clickstats.tracking import ClickTrackingService

DESCRIPTION = """
Search click tracking and analytics: log impressions and clicks, read CTR, click position,
response time, per-user and per-variant figures. Every 200 for an event means it is stored.
"""


async def _store_unavailable(request: Request, exc: Exception) -> JSONResponse:
    """507 when the disk is full (reads go on), else 503; the message names no server path."""
    detail = without_paths(str(exc))
    if isinstance(exc, StoreFull):
        return JSONResponse({"detail": detail}, status_code=507)
    return JSONResponse({"detail": f"store unavailable: {detail}"}, status_code=503)


def create_app(
    settings: Settings | None = None, *, store: Callable[[], EventStore] | None = None
) -> FastAPI:
    """The app on `settings`. `store` builds (does not open) its store; default: the one
    `settings.store` names (a worker of `serve --workers N` reads its owner's instead)."""
    settings = settings or Settings()

    def build_store() -> EventStore:
        if store is not None:
            return store()
        return open_store(
            settings.store,
            read_timeout_s=settings.read_timeout_s,
            attribution_window=timedelta(hours=settings.attribution_window_hours),
        )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Read before the first request: a server must not start open because of a bad read.
        await run_in_threadpool(app.state.keys.load)
        tracker = ClickTrackingService(build_store())
        await run_in_threadpool(tracker.open)
        tracker.store.warm()  # ready for the first large batch
        app.state.tracker = tracker
        app.state.telemetry.watch(tracker.store)
        app.state.experiments = await run_in_threadpool(open_experiments, settings)
        app.state.bots_dropped = 0  # events of known crawlers dropped since start (/health)
        try:
            async with retention(tracker, settings.retention_days):  # at start, then daily
                yield
        finally:
            await run_in_threadpool(tracker.close)

    app = FastAPI(
        title="clickstats",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        max_body_size=settings.max_body_bytes,  # 413 before a huge body is read
        dependencies=[errors.SingleQueryValues],  # ?days=1&days=7 is a 422, not days=7
    )
    app.state.settings = settings
    app.state.telemetry = Telemetry()  # this app's metrics (GET /metrics), in its own registry
    app.state.keys = KeyRing(open_state(settings.store), require=settings.require_keys)
    app.include_router(analytics.router)
    app.include_router(privacy.router)
    app.include_router(experiments.router)
    app.include_router(health.router)
    app.include_router(search.router)
    app.include_router(web.router)
    app.include_router(dashboard.router)
    app.include_router(algolia_api.router)
    app.include_router(ubi_api.router)
    app.include_router(prometheus_api.router)
    app.include_router(export_router)
    app.add_exception_handler(StoreError, _store_unavailable)
    errors.install(app)  # 422s that always render, 405 with Allow, every status in OpenAPI
    # Innermost first: a slow body gets a 408; a client over its rate a 429 before any
    # routing or parsing, with CORS and security headers put on it by the two outside.
    app.add_middleware(BodyTimeout, settings=settings)
    app.add_middleware(RateLimit, settings=settings, keys=app.state.keys)
    # Inside the security headers, outside everything else: 4xx/429/5xx answers get CORS too.
    app.add_middleware(CorsMiddleware, settings=settings)
    app.add_middleware(SecurityHeaders)  # every answer gets its headers
    # Outermost: every request's latency, 429s and preflights too (their route is "unrouted").
    app.add_middleware(RequestTimer, telemetry=app.state.telemetry)
    return app
