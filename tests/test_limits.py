"""Limits: token buckets (fake clock), 429s from the app, slow bodies, and a real server with
hundreds of idle or half-sent connections still answering /health."""

from __future__ import annotations

import asyncio
import json
import os
import select
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient
from starlette.types import ASGIApp, Receive, Scope, Send

from clickstats.app import create_app
from clickstats.keys import create_key
from clickstats.limits import (
    BodyTimeout,
    RateLimit,
    TokenBuckets,
    address_bucket,
    presented_key,
    raise_open_file_limit,
    retry_after,
)
from clickstats.settings import Settings
from clickstats.state import open_state
from tests.conftest import free_port

# -- the bucket ----------------------------------------------------------------------------


def test_a_bucket_allows_the_burst_then_one_request_per_refill() -> None:
    buckets = TokenBuckets()
    assert [buckets.take("a", 2, 3, now=0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("a", 2, 3, now=0.0) == pytest.approx(0.5)  # one token takes 1/2 s
    assert buckets.take("a", 2, 3, now=0.25) == pytest.approx(0.25)
    assert buckets.take("a", 2, 3, now=0.5) == 0.0
    assert buckets.take("a", 2, 3, now=0.5) == pytest.approx(0.5)


def test_refused_requests_take_nothing_and_a_long_pause_refills_only_to_the_burst() -> None:
    buckets = TokenBuckets()
    for _ in range(4):
        buckets.take("a", 1, 4, now=0.0)
    assert [buckets.take("a", 1, 4, now=0.0) for _ in range(10)] == [1.0] * 10
    assert buckets.take("a", 1, 4, now=1.0) == 0.0  # the refusals cost nothing later
    # an hour idle gives back the burst (4), not 3600 requests
    assert [buckets.take("a", 1, 4, now=3600.0) for _ in range(5)][-2:] == [0.0, 1.0]


def test_buckets_are_independent() -> None:
    buckets = TokenBuckets()
    assert buckets.take("a", 1, 1, now=0.0) == 0.0
    assert buckets.take("a", 1, 1, now=0.0) > 0
    assert buckets.take("b", 1, 1, now=0.0) == 0.0


@pytest.mark.parametrize(("wait", "header"), [(0.001, 1), (0.2, 1), (1.0, 1), (1.01, 2), (7.5, 8)])
def test_retry_after_is_whole_seconds_rounded_up_and_at_least_one(wait: float, header: int) -> None:
    assert retry_after(wait) == header


def test_idle_buckets_are_dropped_and_the_table_is_bounded() -> None:
    buckets = TokenBuckets(max_buckets=100)
    for i in range(1000):  # 1000 clients at once: never more than the cap (+ the newcomer)
        buckets.take(f"10.0.{i // 256}.{i % 256}", 1, 2, now=0.0)
        assert len(buckets) <= 101
    # later, one active client: each of its requests drops one bucket that is full again
    for step in range(200):
        buckets.take("10.9.9.9", 1, 2, now=10.0 + step * 0.001)
    assert len(buckets) == 1


def test_ipv6_clients_share_a_bucket_per_64_and_mapped_ipv4_is_ipv4() -> None:
    assert address_bucket("2001:db8:1:2:aaaa::1") == address_bucket("2001:db8:1:2:ffff::9")
    assert address_bucket("2001:db8:1:2::1") != address_bucket("2001:db8:1:3::1")
    assert address_bucket("::ffff:192.0.2.7") == "192.0.2.7"
    assert address_bucket("192.0.2.7") == "192.0.2.7"


def test_the_key_is_read_where_auth_reads_it() -> None:
    def scope(headers: list[tuple[bytes, bytes]], query: bytes = b"") -> Scope:
        return {"type": "http", "headers": headers, "query_string": query}

    assert presented_key(scope([(b"authorization", b"Bearer cs_read_x")])) == "cs_read_x"
    assert presented_key(scope([(b"authorization", b"bearer  cs_read_x ")])) == "cs_read_x"
    assert presented_key(scope([(b"x-clickstats-key", b"cs_admin_y")])) == "cs_admin_y"
    assert presented_key(scope([], b"q=1&key=cs_ingest_z")) == "cs_ingest_z"
    assert presented_key(scope([(b"authorization", b"Basic dTpw")], b"monkey=1")) is None
    both = [(b"x-clickstats-key", b"cs_admin_y"), (b"authorization", b"Bearer cs_read_x")]
    assert presented_key(scope(both)) == "cs_read_x"  # as auth: the Bearer first
    # search-insights on /1/events: its API key in the query string or a header; elsewhere no key
    insights = b"X-Algolia-Application-Id=shop&X-Algolia-API-Key=cs_ingest_a&X-Algolia-Agent=x"
    algolia = {**scope([], insights), "path": "/1/events"}
    assert presented_key(algolia) == "cs_ingest_a"
    header = {**scope([(b"x-algolia-api-key", b"cs_ingest_b")]), "path": "/1/events"}
    assert presented_key(header) == "cs_ingest_b"
    assert presented_key({**scope([], insights), "path": "/analytics/events"}) is None


# -- the app: 429s ---------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def from_peer(app: ASGIApp) -> ASGIApp:
    """The test client always comes from one address; X-Peer sets the socket peer."""

    async def shim(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            peer = dict(scope["headers"]).get(b"x-peer", b"192.0.2.1").decode()
            scope = {**scope, "client": (peer, 40000)}
        await app(scope, receive, send)

    return shim


@pytest.fixture
def limited(tmp_path: Path) -> Iterator[tuple[TestClient, FakeClock, str]]:
    """The whole app with rate_limit=5, rate_burst=5 on a frozen clock; and a read key of
    its own rate (2/s) in the store. Yields the client, the clock and the key."""
    url = f"duckdb://{tmp_path / 'limits.duckdb'}"
    _, read_key = create_key(open_state(url), scope="read", name="fast", rate=2)
    app = create_app(Settings(store=url, rate_limit=5, rate_burst=5, require_keys=False))
    clock = FakeClock()
    with TestClient(from_peer(app)) as client:
        layer: Any = app.middleware_stack
        while not isinstance(layer, RateLimit):
            layer = layer.app
        layer.clock = clock
        yield client, clock, read_key


def test_the_sixth_quick_request_from_one_address_gets_429_with_retry_after(
    limited: tuple[TestClient, FakeClock, str],
) -> None:
    client, clock, key = limited
    read = {"Authorization": f"Bearer {key}"}
    statuses = [client.get("/analytics/ctr", headers=read).status_code for _ in range(4)]
    assert statuses == [200] * 4  # a key of its own rate (2/s, burst 4) is not the address's

    answers = [client.get("/analytics/tracker.js") for _ in range(5)]
    assert [a.status_code for a in answers] == [200] * 5  # static files are never limited
    answers = [client.get("/analytics/ctr") for _ in range(6)]
    assert [a.status_code for a in answers] == [401] * 5 + [429]  # auth is on: a key exists
    refused = answers[-1]
    assert refused.headers["retry-after"] == "1"
    assert refused.json() == {
        "detail": "too many requests from this address: at most 5 per second; retry after 1 s"
    }
    assert client.get("/health").status_code == 200  # never limited
    assert client.get("/analytics/ctr", headers={"X-Peer": "192.0.2.2"}).status_code == 401

    # the key's own bucket runs out on its own, and names the key (by its public prefix)
    over = client.get("/analytics/ctr", headers=read)
    assert over.status_code == 429
    assert over.headers["retry-after"] == "1"
    assert over.json()["detail"] == (
        f"too many requests with the API key {key[:16]}…: at most 2 per second; retry after 1 s"
    )
    clock.now += 0.2  # a fifth of a second: one more request for the address (5/s)
    assert client.get("/analytics/ctr").status_code == 401
    assert client.get("/analytics/ctr").status_code == 429
    clock.now += 0.3  # half a second since the key ran out: one more for it (2/s)
    assert client.get("/analytics/ctr", headers=read).status_code == 200


def test_a_made_up_key_is_limited_by_its_address(
    limited: tuple[TestClient, FakeClock, str],
) -> None:
    client, _, _ = limited
    guesses = [f"cs_read_{i:032x}" for i in range(6)]
    answers = [client.get("/analytics/ctr", headers={"X-Clickstats-Key": g}) for g in guesses]
    assert [a.status_code for a in answers] == [401] * 5 + [429]
    assert "from this address" in answers[-1].json()["detail"]


def test_a_429_on_an_ingestion_endpoint_can_be_read_by_the_page(
    limited: tuple[TestClient, FakeClock, str],
) -> None:
    client, _, _ = limited
    cors = {"Origin": "https://shop.example", "X-Peer": "198.51.100.4"}
    answers = [client.post("/analytics/log-click", json={}, headers=cors) for _ in range(6)]
    assert answers[-1].status_code == 429
    assert answers[-1].headers["access-control-allow-origin"] == "*"
    assert "Retry-After" in answers[-1].headers["access-control-expose-headers"]


def test_rate_limit_zero_turns_the_address_limit_off(tmp_path: Path) -> None:
    settings = Settings(store=f"duckdb://{tmp_path / 'off.duckdb'}", rate_limit=0, rate_burst=1)
    with TestClient(create_app(settings)) as client:
        assert {client.get("/analytics/ctr").status_code for _ in range(30)} == {200}


# -- slow bodies -----------------------------------------------------------------------------


def echo_app(body_timeout: float, work_s: float = 0.0) -> ASGIApp:
    app = FastAPI()

    @app.post("/echo")
    async def echo(request: Request) -> dict[str, int]:
        size = len(await request.body())
        await asyncio.sleep(work_s)  # slow work after the body is no business of the timeout
        return {"bytes": size}

    app.add_middleware(BodyTimeout, settings=Settings(body_timeout=body_timeout))
    return app


async def trickle(chunks: list[bytes], pause_s: float) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk
        await asyncio.sleep(pause_s)


def post(app: ASGIApp, content: AsyncIterator[bytes]) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            return await http.post("/echo", content=content)

    return asyncio.run(go())


def test_a_body_that_does_not_arrive_in_time_gets_408_and_the_connection_closes() -> None:
    started = time.monotonic()
    answer = post(echo_app(body_timeout=0.2), trickle([b"{", b"}"], pause_s=5))
    assert answer.status_code == 408
    assert answer.json() == {
        "detail": "the request body did not arrive within 0.2 s; send it at once"
    }
    assert answer.headers["connection"] == "close"
    assert time.monotonic() - started < 2


def test_a_body_in_time_and_slow_work_afterwards_are_not_cut() -> None:
    answer = post(echo_app(body_timeout=0.3, work_s=0.5), trickle([b"ab", b"cd"], pause_s=0.05))
    assert answer.status_code == 200
    assert answer.json() == {"bytes": 4}


# -- a real server ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`clickstats serve` with 1 s header and body timeouts; 5 requests an address, then one
    every 5 s (so that a slow machine cannot refill a bucket within a test)."""
    store = tmp_path_factory.mktemp("live") / "limits.duckdb"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLICKSTATS_")}
    env |= {"CLICKSTATS_HEADER_TIMEOUT": "1", "CLICKSTATS_BODY_TIMEOUT": "1"}
    args = [
        sys.executable, "-m", "clickstats", "serve", "--workers", "1", "--port", str(port),
        "--store", f"duckdb://{store}", "--rate-limit", "0.2", "--rate-burst", "5",
    ]  # fmt: skip
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]  # type: ignore[union-attr]
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "no /health within 30 s"
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        proc.stderr.close()  # type: ignore[union-attr]


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def read_until_closed(sockets: list[socket.socket], within_s: float) -> dict[int, bytes]:
    """What each socket received until the server closed it (those it closed in time)."""
    got: dict[int, bytes] = {}
    closed: set[int] = set()
    deadline = time.monotonic() + within_s
    while len(closed) < len(sockets) and time.monotonic() < deadline:
        ready, _, _ = select.select([s for s in sockets if s.fileno() not in closed], [], [], 0.1)
        for s in ready:
            try:
                data = s.recv(4096)
            except ConnectionResetError:
                data = b""
            if data:
                got[s.fileno()] = got.get(s.fileno(), b"") + data
            else:
                closed.add(s.fileno())
    return {fd: got.get(fd, b"") for fd in closed}


def test_idle_and_half_sent_connections_neither_block_health_nor_stay(server: str) -> None:
    port = port_of(server)
    idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(200)]
    half = [socket.create_connection(("127.0.0.1", port)) for _ in range(50)]
    for s in half:
        s.sendall(b"GET /hea")
    try:
        started = time.monotonic()
        assert httpx.get(f"{server}/health", timeout=5).status_code == 200
        assert time.monotonic() - started < 2
        # the header timeout (1 s here) closes them all: silently the idle, 408 the half-sent
        closed = read_until_closed(idle + half, within_s=5)
        assert len(closed) == 250
        assert {closed[s.fileno()] for s in idle} == {b""}
        answers = {closed[s.fileno()].split(b"\r\n", 1)[0] for s in half}
        assert answers == {b"HTTP/1.1 408 Request Timeout"}
        body = closed[half[0].fileno()].split(b"\r\n\r\n", 1)[1]
        assert json.loads(body) == {"detail": "the request headers did not arrive within 1 s"}
    finally:
        for s in idle + half:
            s.close()


def test_a_trickled_body_gets_408_and_huge_headers_431(server: str) -> None:
    port = port_of(server)
    with socket.create_connection(("127.0.0.1", port)) as slow:
        slow.sendall(
            b"POST /analytics/log-click HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            b'Content-Length: 100\r\n\r\n{"product_id":'
        )
        answer = read_until_closed([slow], within_s=5)[slow.fileno()]
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert b"the request body did not arrive within 1 s" in answer

    with socket.create_connection(("127.0.0.1", port)) as big:
        big.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\n" + b"X-Pad: " + b"a" * 70_000)
        answer = read_until_closed([big], within_s=5)[big.fileno()]
    assert answer.startswith(b"HTTP/1.1 431 Request Header Fields Too Large")


def test_a_kept_alive_connection_gets_the_same_deadline_for_its_next_request(
    server: str,
) -> None:
    with socket.create_connection(("127.0.0.1", port_of(server))) as kept:
        kept.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
        first = b""
        while not first.endswith(b"}"):  # the whole answer: its head and its JSON body
            first += kept.recv(65536)
        assert first.startswith(b"HTTP/1.1 200 ")
        kept.sendall(b"GET /heal")  # within the keep-alive time, then nothing more
        answer = read_until_closed([kept], within_s=5)[kept.fileno()]
    assert answer.startswith(b"HTTP/1.1 408 Request Timeout")


def test_behind_a_trusted_proxy_each_forwarded_client_has_its_own_bucket(server: str) -> None:
    # 127.0.0.1 is the default trusted proxy (--forwarded-allow-ips)
    with httpx.Client(base_url=server, timeout=10) as http:
        one = {"X-Forwarded-For": "203.0.113.7"}
        statuses = [http.get("/analytics/ctr", headers=one).status_code for _ in range(6)]
        assert statuses == [200] * 5 + [429]
        assert http.get("/analytics/ctr", headers={"X-Forwarded-For": "203.0.113.8"}).is_success


def test_serve_raises_the_open_file_limit_to_the_hard_one() -> None:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        lowered = min(256, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (lowered, hard))
        assert raise_open_file_limit(ceiling=4096) == (lowered, min(hard, 4096))
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == min(hard, 4096)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
