"""Who may call what: API keys by scope, the cross-site check, and CORS (docs/SECURITY.md).

Endpoint classes, decided by method and path so that a new route is protected by default:
INGEST (sending events, asking for a variant, searching) for the paths `ingest_methods`
names; READ for every other GET; ADMIN for every other method. Open endpoints (health,
tracker script, dashboard and demo pages) are those whose routers carry no dependency.

Keys travel only in headers, never in cookies, so a browser never attaches one on its own
and a forged cross-site request carries none. With keys off, the cross-site check alone
keeps other sites' pages from changing or reading anything through a visitor's browser.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Awaitable, Callable, Collection
from typing import Annotated, Any

import orjson
from fastapi import Depends, HTTPException, Request, Security
from fastapi.concurrency import run_in_threadpool
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from clickstats import limits
from clickstats.keys import ApiKey, KeyRing, normalize_origin
from clickstats.keys import Scope as KeyScope
from clickstats.settings import Settings

KEY_HEADER = "X-Clickstats-Key"
KEY_QUERY = "key"
#: search-insights sends the key in the query string; Algolia's REST API, as a header.
ALGOLIA_KEY = limits.ALGOLIA_KEY
#: What a page may send with an event: its body type, a key, a user id.
#: (Algolia's REST clients send their key and application id as headers: /1/events takes them.)
ALLOW_HEADERS = (
    f"Content-Type, Authorization, {KEY_HEADER}, X-User-ID, X-Algolia-API-Key, "
    "X-Algolia-Application-Id"
)
MAX_AGE = "600"
#: Ingestion paths and the methods they take; everything else is read (GET) or admin.
_INGEST_EXACT = {
    "/analytics/log-click": "POST",
    "/analytics/log-impression": "POST",
    "/analytics/events": "POST",
    "/analytics/log-conversion": "POST",
    "/analytics/log-action": "POST",
    # The clients teams already run (docs/INTEGRATIONS.md): Algolia's search-insights, UBI.
    "/1/events": "POST",
    "/ubi_queries": "POST",
    "/ubi_events": "POST",
}
_ASSIGN = re.compile(r"/experiments/[^/]+/assign")
_NAVIGATION_SAFE = ("GET", "HEAD")


class Problem(BaseModel):
    detail: str


AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {
        "model": Problem,
        "description": "No key, or a key that is unknown or revoked (when keys are on)",
    },
    403: {
        "model": Problem,
        "description": "The key's scope does not cover this endpoint, the key is not allowed "
        "from this origin, or the request came from another site's page",
    },
}

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="Bearer",
    description="An API key: `Authorization: Bearer cs_<scope>_<32 hex>`",
)
key_header = APIKeyHeader(
    name=KEY_HEADER,
    auto_error=False,
    scheme_name="ClickstatsKey",
    description=f"The same API key in the `{KEY_HEADER}` header",
)
BearerDep = Annotated[HTTPAuthorizationCredentials | None, Security(bearer)]
KeyHeaderDep = Annotated[str | None, Security(key_header)]


def ingest_methods(path: str) -> str | None:
    """The methods an ingestion path takes (for CORS), or None when it is not one. Works on a
    request's path and on a route's template (`/experiments/{name}/assign`)."""
    if path in _INGEST_EXACT:
        return _INGEST_EXACT[path]
    if path.startswith("/search/"):
        return "GET, POST"
    if _ASSIGN.fullmatch(path):
        return "GET"
    return None


def endpoint_scope(method: str, path: str) -> KeyScope:
    if ingest_methods(path) is not None:
        return KeyScope.INGEST
    return KeyScope.READ if method in ("GET", "HEAD") else KeyScope.ADMIN


def _origin(value: str | None) -> str | None:
    """An Origin header as configured origins are written; "null" and junk stay unmatched."""
    if value is None:
        return None
    try:
        return normalize_origin(value)
    except ValueError:
        return value


def _own_origins(headers: Headers) -> set[str]:
    host = headers.get("host")
    if not host:
        return set()
    own = set()
    # Either scheme: a proxy that ends TLS may speak plain HTTP to us.
    for scheme in ("http", "https"):
        with contextlib.suppress(ValueError):  # a Host header that is no host: nothing is own
            own.add(normalize_origin(f"{scheme}://{host}"))
    return own


def _forbidden(detail: str) -> HTTPException:
    return HTTPException(403, detail=detail)


def check_same_site(request: Request, allowed: Collection[str] = ()) -> None:
    """Refuse a request that another site's page made (CSRF, cross-site reads).

    The browser's Sec-Fetch-Site says where a request comes from and cannot be forged by a
    page; browsers without it still send Origin on every POST/PUT/DELETE. A link followed
    to a report (a GET navigation) is the user's own doing and shows nothing to the linking
    site, so it passes. Clients that are not browsers send neither header and pass too.
    """
    headers = request.headers
    origin = _origin(headers.get("origin"))
    if origin is not None and origin in allowed:
        return
    site = headers.get("sec-fetch-site")
    if site in ("cross-site", "same-site"):
        navigation = headers.get("sec-fetch-mode") == "navigate"
        if navigation and request.method in _NAVIGATION_SAFE:
            return
        raise _forbidden(
            "cross-site request refused: another site's page may not read or change this "
            "server's data"
        )
    if site in ("same-origin", "none"):
        return
    if origin is not None and origin not in _own_origins(headers):
        raise _forbidden(
            f"cross-site request refused: origin {headers.get('origin')!r} is not this server's"
        )


def _a(scope: KeyScope) -> str:
    return f"an {scope}" if scope in (KeyScope.INGEST, KeyScope.ADMIN) else f"a {scope}"


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(401, detail=detail, headers={"WWW-Authenticate": "Bearer"})


def _presented(
    request: Request,
    needed: KeyScope,
    credentials: HTTPAuthorizationCredentials | None,
    header: str | None,
) -> tuple[str | None, bool]:
    """The key the request carries, and whether it came in the URL."""
    if credentials is not None:
        return credentials.credentials, False
    if header:
        return header, False
    if getattr(request.scope.get("route"), "path_format", None) == "/1/events":
        if algolia := request.headers.get(ALGOLIA_KEY):
            return algolia, False
        if algolia := request.query_params.get(ALGOLIA_KEY):
            return algolia, True
    in_url = request.query_params.get(KEY_QUERY)
    if in_url and needed is KeyScope.INGEST:
        return in_url, True
    if in_url:
        raise _unauthorized(
            "a key in the URL is accepted only by the ingestion endpoints (it ends up in logs "
            "and browser history); send it as `Authorization: Bearer <key>`"
        )
    return None, False


async def _keyring(request: Request) -> KeyRing:
    ring: KeyRing = request.app.state.keys
    if ring.claim_check():  # at most once a second; in a thread, a Mongo read can be slow
        await run_in_threadpool(ring.refresh)
    return ring


async def authenticate(
    request: Request,
    needed: KeyScope,
    credentials: HTTPAuthorizationCredentials | None,
    header: str | None,
) -> ApiKey | None:
    """The request's key checked against `needed`; None when keys are off. Sets
    request.state.key (the rate limiter's per-key bucket and rate)."""
    settings: Settings = request.app.state.settings
    origin = _origin(request.headers.get("origin"))
    if needed is KeyScope.INGEST:
        if (
            settings.ingest_origins
            and origin is not None
            and origin not in settings.ingest_origins
            and origin not in _own_origins(request.headers)
        ):
            raise _forbidden(
                f"origin {request.headers.get('origin')!r} may not send events here: it is "
                "not in this server's ingest_origins"
            )
    else:  # reads may come from the configured read origins; changes only from this one
        check_same_site(request, settings.read_origins if needed is KeyScope.READ else ())

    request.state.key = None
    ring = await _keyring(request)
    if not ring.enabled:
        return None
    plain, in_url = _presented(request, needed, credentials, header)
    if plain is None:
        raise _unauthorized(
            f"this endpoint needs {_a(needed)} key: send `Authorization: Bearer <key>` or "
            f"`{KEY_HEADER}: <key>`"
        )
    key = ring.verify(plain)
    if key is None:
        raise _unauthorized("unknown API key")
    if key.revoked:
        raise _unauthorized(f"API key {key.id} ({key.name}) is revoked")
    if in_url and key.scope is not KeyScope.INGEST:
        raise _unauthorized(
            f"{_a(key.scope).capitalize()} key must not travel in the URL (it ends up in logs); send it in "
            "the Authorization header, and consider it exposed"
        )
    if not key.scope.allows(needed):
        raise _forbidden(
            f"this endpoint needs {_a(needed)} key (or an admin key); key {key.id} is "
            f"{_a(key.scope)} key"
        )
    if key.origins and origin is not None and origin not in key.origins:
        raise _forbidden(
            f"key {key.id} may be used only from {', '.join(key.origins)}, not from "
            f"{request.headers.get('origin')!r}"
        )
    request.state.key = key
    return key


def require(scope: KeyScope | str) -> Callable[..., Awaitable[ApiKey | None]]:
    """A dependency: the request needs a key of this scope (or admin) when keys are on."""
    needed = KeyScope(scope)

    async def dependency(
        request: Request, credentials: BearerDep, header: KeyHeaderDep
    ) -> ApiKey | None:
        return await authenticate(request, needed, credentials, header)

    return dependency


async def authorize(
    request: Request, credentials: BearerDep, header: KeyHeaderDep
) -> ApiKey | None:
    """A dependency: the scope the endpoint's class needs (`endpoint_scope`)."""
    route = request.scope.get("route")
    path = getattr(route, "path_format", None) or request.url.path
    needed = endpoint_scope(request.method, path)
    return await authenticate(request, needed, credentials, header)


#: For `APIRouter(dependencies=[...])` and `dependencies=[...]` on a route.
Authorized = Depends(authorize)
Ingest = Depends(require(KeyScope.INGEST))
Read = Depends(require(KeyScope.READ))
Admin = Depends(require(KeyScope.ADMIN))


class CorsMiddleware:
    """CORS for the ingestion endpoints (any origin by default, or those of ingest_origins)
    and, for the origins of read_origins, for reads. Headers go on every answer, errors and
    429s included, so that a page can read why it was refused."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.ingest_origins = frozenset(settings.ingest_origins)
        self.read_origins = frozenset(settings.read_origins)

    def _headers(self, path: str, origin: str | None) -> tuple[list[tuple[str, str]], str] | None:
        """(CORS headers, methods a preflight may allow) for this request, or None."""
        methods = ingest_methods(path)
        if methods is not None:
            if not self.ingest_origins:
                return [("access-control-allow-origin", "*")], methods
            if origin in self.ingest_origins:
                return [("access-control-allow-origin", origin), ("vary", "Origin")], methods
            return [("vary", "Origin")], methods
        if origin is not None and origin in self.read_origins:
            return [("access-control-allow-origin", origin), ("vary", "Origin")], "GET"
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        root: str = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :] or "/"
        headers = Headers(scope=scope)
        origin = _origin(headers.get("origin"))
        found = self._headers(path, origin)
        if found is None:
            await self.app(scope, receive, send)
            return
        cors, methods = found
        allowed = any(name == "access-control-allow-origin" for name, _ in cors)
        if scope["method"] == "OPTIONS" and "access-control-request-method" in headers:
            await self._preflight(send, cors, methods, allowed, headers.get("origin"))
            return
        if allowed:
            cors = [*cors, ("access-control-expose-headers", "Retry-After")]
        await self._with_headers(scope, receive, send, cors)

    async def _preflight(
        self,
        send: Send,
        cors: list[tuple[str, str]],
        methods: str,
        allowed: bool,
        origin: str | None,
    ) -> None:
        if not allowed:
            body = orjson.dumps({"detail": f"origin {origin!r} may not send events here"})
            await _answer(send, 403, [*cors, ("content-type", "application/json")], body)
            return
        answer = [
            *cors,
            ("access-control-allow-methods", methods),
            ("access-control-allow-headers", ALLOW_HEADERS),
            ("access-control-max-age", MAX_AGE),
        ]
        await _answer(send, 204, answer, b"")

    async def _with_headers(
        self, scope: Scope, receive: Receive, send: Send, cors: list[tuple[str, str]]
    ) -> None:
        extra = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in cors]
        started = False

        async def send_with_cors(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_cors)
        except Exception:
            # An unhandled error becomes a 500 outside this middleware, without our headers;
            # answer it here so the page can see it, then let it be logged as usual.
            if not started:
                body = orjson.dumps({"detail": "internal server error"})
                await _answer(send, 500, [*cors, ("content-type", "application/json")], body)
            raise


async def _answer(send: Send, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
    raw = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers]
    raw.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
