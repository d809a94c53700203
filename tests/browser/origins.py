"""A second origin for the browser tests: a tiny HTTP server in a thread that serves a "shop"
(pages that load the tracker from the clickstats server) and a scripted events endpoint (any
status, any Retry-After, with the CORS headers clickstats sends) that records every request."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from clickstats.keys import create_key
from clickstats.state import open_state
from tests.conftest import LiveServer

#: The CORS answer of an ingestion endpoint (docs/SECURITY.md), copied by the scripted endpoint.
CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Expose-Headers": "Retry-After",
}
PREFLIGHT = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "POST",
    "Access-Control-Allow-Headers": "Content-Type, Authorization, X-Clickstats-Key, X-User-ID",
    "Access-Control-Max-Age": "600",
}


@dataclass
class Answer:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None  # JSON; None: the per-event answer clickstats gives a stored batch


@dataclass
class Received:
    at: float  # time.monotonic()
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


class SecondOrigin:
    """Serves `pages` (path -> (media type, text)) on GET; answers POST /events with the next
    of `answers` (then 200), recording each in `received`."""

    def __init__(self) -> None:
        self.pages: dict[str, tuple[str, str]] = {}
        self.answers: list[Answer] = []
        self.received: list[Received] = []
        self.preflights = 0
        self._lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.port = self.httpd.server_address[1]
        #: Pages are opened by this name; the endpoint, by the other (127.0.0.1): two origins.
        self.url = f"http://localhost:{self.port}"
        self.events_url = f"http://127.0.0.1:{self.port}/events"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def start(self) -> SecondOrigin:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=10)

    def posts(self) -> list[Received]:
        with self._lock:
            return list(self.received)

    def _next(self, request: Received) -> Answer:
        with self._lock:
            self.received.append(request)
            return self.answers.pop(0) if self.answers else Answer(200)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        origin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                page = origin.pages.get(self.path.split("?")[0])
                if page is None:
                    self._send(404, {"Content-Type": "text/plain"}, b"no such page")
                    return
                media_type, text = page
                self._send(200, {"Content-Type": media_type, "Cache-Control": "no-store"},
                           text.encode())  # fmt: skip

            def do_OPTIONS(self) -> None:
                with origin._lock:
                    origin.preflights += 1
                self._send(204, PREFLIGHT, b"")

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                body = json.loads(raw or b"{}")
                request = Received(time.monotonic(), self.path, dict(self.headers.items()), body)
                answer = origin._next(request)
                payload = answer.body
                if payload is None:
                    events = body.get("events", [])
                    results = [
                        {"index": i, "status": "accepted", "event_id": e.get("event_id")}
                        for i, e in enumerate(events)
                    ]
                    payload = {"accepted": len(events), "duplicates": 0, "rejected": 0,
                               "results": results}  # fmt: skip
                headers = {**CORS, "Content-Type": "application/json", **answer.headers}
                self._send(answer.status, headers, json.dumps(payload).encode())

        return Handler


@dataclass(frozen=True)
class Keys:
    ingest: str  # accepted only from the second origin's pages
    read: str
    admin: str


def create_keys(store_path: Path, shop_origin: str) -> Keys:
    """What `clickstats keys create` writes, before the server starts (so keys are on from its
    first request)."""
    state = open_state(f"duckdb://{store_path}")
    return Keys(
        ingest=create_key(state, scope="ingest", name="shop", origins=[shop_origin])[1],
        read=create_key(state, scope="read", name="dashboard")[1],
        admin=create_key(state, scope="admin", name="ops")[1],
    )


@dataclass(frozen=True)
class Keyed:
    server: LiveServer
    keys: Keys
