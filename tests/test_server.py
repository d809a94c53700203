"""The real server in a subprocess: acknowledged events survive a crash; concurrency loses nothing."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from tests.conftest import LiveServer


def test_every_acknowledged_event_survives_a_kill(tmp_path: Path) -> None:
    server = LiveServer(tmp_path / "crash.duckdb").start()
    acknowledged = 0
    try:
        with httpx.Client(base_url=server.url, timeout=10) as http:
            for i in range(60):
                r = http.post(
                    "/analytics/log-click",
                    json={"product_id": f"p{i}", "rank": 1 + i % 5, "event_id": f"k{i}"},
                )
                assert r.status_code == 200
                acknowledged += 1
            batch = [{"type": "impression", "query": "q", "event_id": f"b{i}"} for i in range(200)]
            assert http.post("/analytics/events", json={"events": batch}).json()["accepted"] == 200
    finally:
        server.stop(kill=True)  # SIGKILL: no shutdown hook runs, no checkpoint happens

    server.start()
    try:
        ctr = httpx.get(f"{server.url}/analytics/ctr", timeout=10).json()
        assert ctr["total_clicks"] == acknowledged == 60
        assert ctr["total_impressions"] == 200
        # after the restart, retries of acknowledged events are still recognised
        again = httpx.post(
            f"{server.url}/analytics/log-click",
            json={"product_id": "p0", "rank": 1, "event_id": "k0"},
            timeout=10,
        ).json()
        assert again["duplicate"] is True
    finally:
        server.stop()

    server.start()  # and a clean stop/start keeps everything too
    try:
        assert httpx.get(f"{server.url}/analytics/ctr", timeout=10).json()["total_clicks"] == 60
    finally:
        server.stop()


def test_many_concurrent_clients_lose_and_duplicate_nothing(live_server: LiveServer) -> None:
    clients, per_client = 40, 25

    async def send(
        http: httpx.AsyncClient, body: dict[str, object], headers: dict[str, str]
    ) -> tuple[httpx.Response, bool]:
        """The answer, and whether it took a resend: a pooled connection the server closed
        as idle fails on reuse (httpx.ReadError), and a client sends the same event again."""
        for attempt in range(3):
            try:
                return await http.post("/analytics/log-click", json=body, headers=headers), (
                    attempt > 0
                )
            except (httpx.ReadError, httpx.RemoteProtocolError):
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def one_client(http: httpx.AsyncClient, n: int) -> int:
        accepted = 0
        # each client from its own address (127.0.0.1 is a trusted proxy by default): from
        # one address, 1200 requests at once would be over the rate limit (docs/SECURITY.md)
        address = {"X-Forwarded-For": f"198.51.100.{n}"}
        for i in range(per_client):
            body = {"product_id": f"p{i}", "rank": 1 + i % 10, "event_id": f"c{n}-{i}"}
            headers = {"X-User-ID": f"u{n}", **address}
            r, resent = await send(http, body, headers)
            assert r.status_code == 200
            # After a resend the first try may have been stored: then this one is a duplicate.
            accepted += resent or not r.json()["duplicate"]
            if i % 5 == 0:  # a client retry of the same event, as after a lost answer
                retry, _ = await send(http, body, address)
                assert retry.json()["duplicate"] is True
        return accepted

    async def main() -> list[int]:
        limits = httpx.Limits(max_connections=clients)
        async with httpx.AsyncClient(base_url=live_server.url, timeout=30, limits=limits) as http:
            return await asyncio.gather(*(one_client(http, n) for n in range(clients)))

    accepted = asyncio.run(main())
    assert accepted == [per_client] * clients
    ctr = httpx.get(f"{live_server.url}/analytics/ctr", timeout=10).json()
    assert ctr["total_clicks"] == clients * per_client
    user = httpx.get(f"{live_server.url}/analytics/user/u7", timeout=10).json()
    assert user["clicks"] == per_client
