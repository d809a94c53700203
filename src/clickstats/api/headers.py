"""Security headers: a strict Content-Security-Policy on our own pages, nosniff on every answer.

The dashboard and the demo load only files of this server (Chart.js included) and have no
inline script or style, so the policy allows nothing else: an injected script tag or a framing
site gets nothing. /docs and /redoc are FastAPI's pages, built on inline script and a CDN, so
they keep their own behaviour (no policy).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
#: On the dashboard's and the demo's pages and files (their 304s too: a cache keeps the headers
#: of the 304 that revalidated it).
PAGE_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-frame-options": "DENY",  # frame-ancestors for browsers that predate CSP 2
    "referrer-policy": "no-referrer",  # a dashboard URL names users and queries
}
#: Every answer: a browser takes a JSON error for JSON, never for a script or a page.
ALL_HEADERS = {"x-content-type-options": "nosniff"}


def is_page(path: str) -> bool:
    """The dashboard (/ and /dashboard...) and the demo (/demo...)."""
    return path == "/" or any(
        path == prefix or path.startswith(prefix + "/") for prefix in ("/dashboard", "/demo")
    )


class SecurityHeaders:
    """Pure ASGI (no BaseHTTPMiddleware): adds headers to the start of the answer, nothing else."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = ALL_HEADERS | PAGE_HEADERS if is_page(scope["path"]) else ALL_HEADERS

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [
                    (name.encode(), value.encode())
                    for name, value in extra.items()
                    if name.encode() not in present
                ]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
