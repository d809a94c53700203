"""The ceiling for single-event ingestion: /analytics/log-click without the store.

Same request model (ClickEvent), same X-User-ID header, same app-wide body limit, same
response shape and serializer, served by uvicorn with the options `clickstats serve` uses.
What it does not do is everything between validation and the answer: resolving the user,
queueing the event for the writer thread and waiting for its durable commit. The ratio
real/bare throughput therefore says how much of this machine's HTTP + validation capacity
the storage path leaves.

Run: .venv/bin/python bench/bare_app.py --port 8001 [--workers 2]
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import orjson
import uvicorn
from fastapi import FastAPI, Response

from clickstats.api.deps import UserHeader
from clickstats.events import ClickEvent
from clickstats.settings import Settings


def create_bare_app() -> FastAPI:
    # The same body-limit middleware as the real app: it runs on every request.
    app = FastAPI(title="clickstats-bare", max_body_size=Settings().max_body_bytes)

    @app.post("/analytics/log-click", response_class=Response)
    async def log_click(event: ClickEvent, x_user_id: UserHeader = None) -> Response:
        body: dict[str, Any] = {
            "status": "success",
            "event_id": event.event_id,
            "timestamp": event.timestamp,
            "duplicate": False,
            "search_id": event.search_id,
        }
        return Response(orjson.dumps(body, option=orjson.OPT_UTC_Z), media_type="application/json")

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    # cli.py sets this for its writer thread; there is no other thread here, but the two
    # processes should differ only in what the endpoint does.
    sys.setswitchinterval(0.001)
    # uvicorn's worker processes import the app by name (this folder is on their sys.path)
    app: Any = create_bare_app() if args.workers == 1 else "bare_app:create_bare_app"
    uvicorn.run(
        app,
        factory=args.workers > 1,
        workers=args.workers,
        host=args.host,
        port=args.port,
        access_log=False,
        log_level="info",
    )


if __name__ == "__main__":
    main()
