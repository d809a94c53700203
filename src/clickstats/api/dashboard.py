"""The dashboard: one shell page for every view; its script routes by the URL (docs/DASHBOARD.md).

Every file it loads is served from the package, Chart.js included, so it works offline.
"""

from __future__ import annotations

import hashlib
from functools import cache
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Request, Response

from clickstats.api.web import JAVASCRIPT, asset
from clickstats.events import MAX_ID_LENGTH

# Open, like /health and the demo: pages and assets only; their data comes from /analytics/*,
# which needs a read key when keys are on (api/auth.py).
router = APIRouter(tags=["dashboard"])

HTML = "text/html; charset=utf-8"
CSS = "text/css; charset=utf-8"
#: Our own files have unversioned URLs: revalidate each time (an ETag makes that a 304).
REVALIDATE = "no-cache"
#: The page asks for Chart.js with its version in the query (?v=4.6.1): an upgrade is a new URL.
LONG = "public, max-age=604800"
#: name in /dashboard/assets/ -> (file under src/clickstats/web/, media type, Cache-Control)
ASSETS = {
    "dashboard.js": ("dashboard.js", JAVASCRIPT, REVALIDATE),
    "dashboard.css": ("dashboard.css", CSS, REVALIDATE),
    "chart.umd.min.js": ("vendor/chart.umd.min.js", JAVASCRIPT, LONG),
    "chart.js.LICENSE.md": ("vendor/chart.js.LICENSE.md", "text/plain; charset=utf-8", LONG),
}


@cache
def _etag(path: str) -> str:
    return '"' + hashlib.sha256(asset(path)).hexdigest()[:20] + '"'


def _file(request: Request, path: str, media_type: str, cache_control: str) -> Response:
    etag = _etag(path)
    headers = {"Cache-Control": cache_control, "ETag": etag}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(asset(path), media_type=media_type, headers=headers)


def _shell(request: Request) -> Response:
    return _file(request, "dashboard.html", HTML, REVALIDATE)


@router.get("/", response_class=Response, summary="Dashboard: overview")
def overview(request: Request) -> Response:
    """The dashboard (docs/DASHBOARD.md): searches, CTR, click positions, latency by day."""
    return _shell(request)


@router.get("/dashboard", response_class=Response, include_in_schema=False)
def dashboard(request: Request) -> Response:
    return _shell(request)


@router.get("/dashboard/queries", response_class=Response, summary="Dashboard: queries")
def queries(request: Request) -> Response:
    """Top, zero-result and no-click queries; the most clicked products."""
    return _shell(request)


@router.get("/dashboard/experiments", response_class=Response, summary="Dashboard: experiments")
def experiments(request: Request) -> Response:
    """Each experiment's verdict, its intervals and health checks."""
    return _shell(request)


@router.get("/dashboard/users/{user_id}", response_class=Response, summary="Dashboard: a user")
def user(
    request: Request, user_id: Annotated[str, Path(min_length=1, max_length=MAX_ID_LENGTH)]
) -> Response:
    """One user's searches, clicks and click positions."""
    return _shell(request)


@router.get("/dashboard/assets/{name:path}", response_class=Response, include_in_schema=False)
def dashboard_asset(request: Request, name: str) -> Response:
    if name not in ASSETS:
        raise HTTPException(404, detail=f"no dashboard file {name!r}; there are {sorted(ASSETS)}")
    return _file(request, *ASSETS[name])
