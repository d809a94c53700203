"""Limits that keep one client from taking the server: request rates, slow requests, sockets.

- `RateLimit`: a token bucket per client address (and per API key, see below), refilled at
  `rate_limit` requests/s up to `rate_burst`; over it, 429 with Retry-After. O(1) a request,
  and bounded in memory: a bucket idle long enough to be full again is the same as no bucket,
  so the least recently used ones are dropped as they fill up, and there are never more than
  `MAX_BUCKETS`.
- `BodyTimeout`: a request's whole body must arrive within `body_timeout` seconds, else 408
  (uvicorn waits for a trickled body forever).
- `header_deadline_protocol`: uvicorn's HTTP protocol with a deadline for the request's
  headers and a cap on their size. uvicorn arms its keep-alive timer only after a response:
  a connection that sends nothing, or half a request line, is otherwise kept forever, and
  each one holds a file descriptor (the way 300 idle sockets took a server down).
- `raise_open_file_limit`: the soft limit of open files up to the hard one, at serve start.

The client address is the socket peer, or what uvicorn's proxy headers support made of
X-Forwarded-For when the peer is in `--forwarded-allow-ips` (it rewrites scope["client"]
before the app runs).
"""

from __future__ import annotations

import asyncio
import ipaddress
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl

import orjson
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from clickstats.keys import ApiKey, KeyRing
from clickstats.keys import Scope as KeyScope
from clickstats.settings import Settings

#: Most buckets kept (about 260 bytes each: 13 MB). Beyond it the least recently used goes,
#: which hands that client a fresh burst: only when this many clients were active within
#: the seconds a bucket takes to refill (rate_burst / rate_limit, 2 s by default).
MAX_BUCKETS = 50_000
#: Never limited: liveness probes and the static files a page needs to load.
EXEMPT_PATHS = frozenset({"/health", "/analytics/tracker.js", "/favicon.ico"})
EXEMPT_PREFIXES = ("/dashboard/assets/", "/demo/")
#: The query parameter that carries a key to the ingestion endpoints (as api/auth.py reads it).
KEY_QUERY = "key"
#: Where Algolia's search-insights puts its API key (a header or a query parameter), on /1/events.
ALGOLIA_KEY = "X-Algolia-API-Key"
#: Largest request head (request line and headers) accepted; as nginx's default buffers.
MAX_HEADER_BYTES = 64 * 1024
#: Methods whose requests have no body to wait for.
BODILESS = frozenset({"GET", "HEAD", "OPTIONS"})


class TokenBuckets:
    """Token buckets by id, least recently used first. The caller passes the time, so that
    tests can use a fake clock and one request reads the clock once."""

    def __init__(self, max_buckets: int = MAX_BUCKETS) -> None:
        self.max_buckets = max_buckets
        # id -> [tokens, last update, rate, burst]; a list, the cheapest mutable record
        self._buckets: OrderedDict[str, list[float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, bucket_id: str, rate: float, burst: float, now: float) -> float:
        """Take a token: 0.0 if there was one, else the seconds until there is one."""
        buckets = self._buckets
        entry = buckets.get(bucket_id)
        if entry is None:
            tokens = burst
            entry = buckets[bucket_id] = [burst, now, rate, burst]
        else:
            buckets.move_to_end(bucket_id)
            tokens = entry[0] + (now - entry[1]) * rate
            if tokens > burst:
                tokens = burst
            entry[1], entry[2], entry[3] = now, rate, burst
        if tokens >= 1:
            entry[0] = tokens - 1
            wait = 0.0
        else:  # a refused request takes nothing: it costs the client no later request
            entry[0] = tokens
            wait = (1 - tokens) / rate
        self._evict(now)
        return wait

    def _evict(self, now: float) -> None:
        # One look a call, at the least recently used bucket: gone if it is full again (the
        # same as no bucket) or if there are too many. O(1), and the table follows the
        # clients active within a refill time, up to max_buckets.
        buckets = self._buckets
        tokens, stamp, rate, burst = next(iter(buckets.values()))
        if len(buckets) > self.max_buckets or tokens + (now - stamp) * rate >= burst:
            buckets.popitem(last=False)


def retry_after(wait: float) -> int:
    """Whole seconds for Retry-After: rounded up, at least 1."""
    return max(1, math.ceil(wait))


@lru_cache(maxsize=4096)
def address_bucket(host: str) -> str:
    """The bucket of a client address: IPv4 as is, IPv6 by its /64, which one subscriber
    usually holds whole (a bucket per address would give such a client 2^64 buckets)."""
    if ":" not in host:
        return host
    try:
        address = ipaddress.IPv6Address(host.split("%", 1)[0])
    except ValueError:
        return host
    if address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return f"{int(address) >> 64:016x}::/64"


def presented_key(scope: Scope) -> str | None:
    """The key a request carries, where api/auth.py looks: Authorization: Bearer, then
    X-Clickstats-Key, then ?key= (which auth accepts on the ingestion endpoints only); on
    /1/events, X-Algolia-API-Key as a header or in the query string."""
    header: bytes | None = None
    algolia: bytes | None = None
    value: bytes
    for name, value in scope["headers"]:
        if name == b"authorization" and value[:7].lower() == b"bearer ":
            return value[7:].strip().decode("latin-1")
        if name == b"x-clickstats-key":
            header = value
        elif name == b"x-algolia-api-key":
            algolia = value
    if header is not None:
        return header.strip().decode("latin-1")
    # Algolia's search-insights sends its API key (a clickstats ingest key) to /1/events as a
    # header or in the query string, where auth takes it too.
    on_algolia = scope.get("path") == "/1/events"
    if on_algolia and algolia is not None:
        return algolia.strip().decode("latin-1")
    query: bytes = scope.get("query_string", b"")
    if b"key=" in query.lower():  # KEY_QUERY or X-Algolia-API-Key; a quick look before parsing
        fields = dict(parse_qsl(query.decode("latin-1")))
        if fields.get(KEY_QUERY):
            return fields[KEY_QUERY]
        if on_algolia and fields.get(ALGOLIA_KEY):
            return fields[ALGOLIA_KEY]
    return None


def is_exempt(scope: Scope) -> bool:
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :] or "/"
    return path in EXEMPT_PATHS or path.startswith(EXEMPT_PREFIXES)


def _rate(value: float) -> str:
    return f"{value:g}"


class RateLimit:
    """429 for a client over its rate; pure ASGI, so the refusal costs no routing or parsing.

    Which bucket a request draws from:
    - a valid key with its own `rate`: that key's bucket (rate, burst twice the rate), in
      place of the address limit; everyone using the key shares it;
    - any other request: its address's bucket (rate_limit, rate_burst); with a valid read or
      admin key also that key's bucket at the same figures, so a secret key used from many
      addresses still gets no more than one address. Ingest keys are public (every browser
      on the site shares one), so only the address counts for them.
    A key that is no key of ours counts for nothing here (auth refuses it): made-up keys can
    neither escape the address limit nor fill the bucket table.
    """

    def __init__(
        self,
        app: ASGIApp,
        settings: Settings,
        keys: KeyRing | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.app = app
        self.rate = settings.rate_limit
        self.burst = float(settings.rate_burst)
        self.keys = keys
        self.clock = clock
        self.by_address = TokenBuckets()
        self.by_key = TokenBuckets()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and (self.rate or self.keys) and not is_exempt(scope):
            refusal = self.check(scope)
            if refusal is not None:
                await _too_many(send, *refusal)
                return
        await self.app(scope, receive, send)

    def check(self, scope: Scope) -> tuple[str, float] | None:
        """None to let the request through, else (the reason, seconds to wait)."""
        now = self.clock()
        key = self._valid_key(scope)
        if key is not None and key.rate is not None:
            wait = self.by_key.take(key.sha256, key.rate, max(1.0, 2 * key.rate), now)
            return (_key_reason(key, key.rate), wait) if wait else None
        if not self.rate:
            return None
        if key is not None and key.scope is not KeyScope.INGEST:
            wait = self.by_key.take(key.sha256, self.rate, self.burst, now)
            if wait:
                return _key_reason(key, self.rate), wait
        client = scope.get("client")
        host = address_bucket(client[0]) if client else "unknown"
        wait = self.by_address.take(host, self.rate, self.burst, now)
        if wait:
            return f"too many requests from this address: at most {_rate(self.rate)}", wait
        return None

    def _valid_key(self, scope: Scope) -> ApiKey | None:
        if self.keys is None:
            return None
        plain = presented_key(scope)
        if not plain:
            return None
        key = self.keys.verify(plain)
        return key if key is not None and not key.revoked else None


def _key_reason(key: ApiKey, rate: float) -> str:
    return f"too many requests with the API key {key.prefix}: at most {_rate(rate)}"


async def _too_many(send: Send, reason: str, wait: float) -> None:
    seconds = retry_after(wait)
    body = orjson.dumps({"detail": f"{reason} per second; retry after {seconds} s"})
    await send(
        {
            "type": "http.response.start",
            "status": 429,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", str(seconds).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BodyTooSlow(HTTPException):
    """Raised from `receive`: FastAPI re-raises HTTPExceptions met while reading a body,
    and its exception middleware answers them as {"detail": ...}."""

    def __init__(self, seconds: float) -> None:
        super().__init__(
            408,
            detail=f"the request body did not arrive within {seconds:g} s; send it at once",
            headers={"Connection": "close"},  # the rest of the body may still trickle in
        )


class BodyTimeout:
    """408 when a request's body takes longer than `body_timeout` seconds to arrive.

    One deadline for the whole body, from when the request's headers were read, rather than
    a timeout for each chunk: a client sending a byte every few seconds must not hold a
    connection and a task forever. After the body, `receive` is passed through untouched
    (it then waits for a disconnect, as long as the response takes).

    No timer per request: asyncio.timeout costs about 20 µs a request (measured on the
    ingestion path), most of it arming and cancelling a timer for a body that is usually
    there already. Instead a receive that waits is listed with its deadline, and one sweep,
    scheduled only while something waits, cancels the late ones every `sweep_s` seconds;
    the cancellation is turned into the 408 where it lands, inside `receive`.
    """

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.timeout = settings.body_timeout
        self.sweep_s = min(1.0, self.timeout / 2)
        self._waiting: dict[asyncio.Task[Any], float] = {}  # task in receive -> deadline
        self._late: set[asyncio.Task[Any]] = set()
        self._sweeping: asyncio.AbstractEventLoop | None = None  # the loop a sweep is due on

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in BODILESS:
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        complete = False

        async def receive_in_time() -> Message:
            nonlocal complete
            if complete:
                return await receive()
            task = asyncio.current_task()
            if task is None:  # pragma: no cover - receive is always awaited in a task
                return await receive()
            self._waiting[task] = deadline
            if self._sweeping is not loop:
                self._sweeping = loop
                loop.call_later(self.sweep_s, self._sweep, loop)
            try:
                message = await receive()
            except asyncio.CancelledError:
                if task not in self._late:
                    raise
                self._late.discard(task)
                task.uncancel()  # ours, not a real cancellation: let none see it
                raise BodyTooSlow(self.timeout) from None
            finally:
                self._waiting.pop(task, None)
            complete = message["type"] != "http.request" or not message.get("more_body", False)
            return message

        await self.app(scope, receive_in_time, send)

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        now = loop.time()
        for task, deadline in list(self._waiting.items()):
            if deadline <= now:
                del self._waiting[task]
                self._late.add(task)
                task.cancel()
        if self._waiting:
            loop.call_later(self.sweep_s, self._sweep, loop)
        else:
            self._sweeping = None


# -- the connection: headers in time, and not too large ------------------------------------


def _raw_answer(status: str, detail: str) -> bytes:
    body = orjson.dumps({"detail": detail})
    head = (
        f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\nconnection: close\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


class HeaderDeadline(asyncio.Protocol):
    """uvicorn's own HTTP protocol, wrapped: from a connection's start, and from the first
    byte of each later request, the request's headers must be complete within
    `header_timeout` seconds and `max_header_bytes` bytes. Else 408 (or 431) when part of a
    request came, and the connection is closed; a connection that sent nothing is just
    closed, as a client expects of an idle connection.

    A wrapper rather than a subclass, so that it works over uvicorn's httptools and h11
    protocols alike and touches only what both have: `cycle`, the current request (set
    when its headers are complete), and its `response_complete`."""

    header_timeout: float = 10.0
    max_header_bytes: int = MAX_HEADER_BYTES
    inner_class: Any = None  # set by header_deadline_protocol

    def __init__(
        self,
        config: Any,
        server_state: Any,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.inner: Any = self.inner_class(
            config=config, server_state=server_state, app_state=app_state, _loop=_loop
        )
        self.loop = _loop or asyncio.get_event_loop()
        self.transport: asyncio.Transport | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.received = 0  # bytes of the awaited request head so far

    def _arm(self) -> None:
        self.timer = self.loop.call_later(self.header_timeout, self._expired)

    def _disarm(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _expired(self) -> None:
        self.timer = None
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if self.received:
            detail = f"the request headers did not arrive within {self.header_timeout:g} s"
            transport.write(_raw_answer("408 Request Timeout", detail))
        transport.close()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.inner.connection_made(transport)
        self.transport = transport  # type: ignore[assignment]
        self.received = 0
        self._arm()

    def data_received(self, data: bytes) -> None:
        inner = self.inner
        before = inner.cycle
        waiting = self.timer is not None  # for the rest of a request head, under a deadline
        if not waiting:
            if before is not None and not before.response_complete:
                inner.data_received(data)  # the body of the request being served
                return
            self.received = 0  # the first bytes of the next request on a kept-alive connection
        self.received += len(data)
        inner.data_received(data)
        if inner.cycle is not before:
            self._disarm()  # the head is complete (data may hold some body as well)
        elif self.received > self.max_header_bytes:
            self._disarm()
            if self.transport is not None and not self.transport.is_closing():
                detail = f"the request headers are larger than {self.max_header_bytes} bytes"
                self.transport.write(_raw_answer("431 Request Header Fields Too Large", detail))
                self.transport.close()
        elif not waiting:
            # A head that came whole in one read, the usual case, never needs a timer.
            self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self.inner.connection_lost(exc)

    def eof_received(self) -> bool | None:
        result: bool | None = self.inner.eof_received()
        return result

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()


def header_deadline_protocol(
    header_timeout: float, max_header_bytes: int = MAX_HEADER_BYTES
) -> type[asyncio.Protocol]:
    """The protocol class for uvicorn.run(http=...): uvicorn's choice ("auto": httptools
    when installed, else h11) behind a `HeaderDeadline`."""
    from uvicorn.protocols.http.auto import AutoHTTPProtocol

    attributes = {
        "header_timeout": header_timeout,
        "max_header_bytes": max_header_bytes,
        "inner_class": AutoHTTPProtocol,
    }
    protocol: type[asyncio.Protocol] = type("HeaderDeadlineHTTP", (HeaderDeadline,), attributes)
    return protocol


def raise_open_file_limit(ceiling: int = 65536) -> tuple[int, int] | None:
    """Raise the soft limit on open files towards the hard one (at most `ceiling`): each
    connection holds a descriptor, and soft limits of 256 (macOS) or 1024 (many Linux
    setups) are reached by a few hundred idle sockets. (old, new), or None where there is
    no such limit (Windows)."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = ceiling if hard == resource.RLIM_INFINITY else min(hard, ceiling)
    if soft != resource.RLIM_INFINITY and soft < target:
        # macOS refuses more than OPEN_MAX (10240) for some processes, however high the hard
        # limit reads: try that before giving up
        for wanted in (target, min(target, 10240)):
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            except (ValueError, OSError):
                continue
            return soft, wanted
    return soft, soft
